//! Tools the tests need beside kubectl and helm, each installed by a script of the project.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs `scripts/<script>`, which installs a tool (idempotently) and prints its path.
pub fn install(script: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new("bash")
        .arg(&path)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(out.status.success(), "scripts/{script} failed");
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}
