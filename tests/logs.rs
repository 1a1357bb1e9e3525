//! The operator's text logs, as a log collector or `kubectl logs` receives them: through a pipe.

use std::process::{Command, Stdio};

/// The text format colours its lines on a terminal only: piped, a line must be plain text.
#[test]
fn text_logs_have_no_colour_codes_when_piped() {
    let dir = tempfile::tempdir().expect("temp dir");
    // No cluster to talk to: the operator logs why and stops, which is all this test needs.
    let output = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
        .args([
            "run",
            "--log-format",
            "text",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("identity-operator runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "it cannot run without a cluster");
    assert!(
        text.contains("ERROR") && text.contains("operator stopped"),
        "the failure is logged: {text:?}"
    );
    assert!(
        !output.stdout.contains(&0x1b) && !output.stderr.contains(&0x1b),
        "ANSI escape codes in piped logs: {text:?}"
    );
}
