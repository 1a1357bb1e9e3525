//! The Helm chart (`charts/identity-operator`), rendered with the real `helm` CLI.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::cluster::Cluster;

pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/identity-operator");

/// `image.repository` has no default (nothing is published); any name renders.
pub const TEST_IMAGE: &str = "registry.example/identity-operator";

/// A values file holding `values` over the required test image, for helm's `-f`. The file
/// lives as long as the returned directory.
pub fn values_file(values: &Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("values.json");
    let mut all = json!({"image": {"repository": TEST_IMAGE}});
    merge(&mut all, values);
    // JSON is YAML: helm reads it as a values file.
    std::fs::write(&file, all.to_string()).expect("values file");
    (dir, file)
}

/// `helm template <release> CHART --namespace <ns>` with `values` (merged over the chart's
/// defaults and the required test image) and `extra` flags. `Err` holds helm's message.
pub fn render(
    cluster: &Cluster,
    release: &str,
    namespace: &str,
    values: &Value,
    extra: &[&str],
) -> Result<String, String> {
    let (_dir, file) = values_file(values);
    let file = file.to_str().expect("UTF-8 temp path");
    let mut args = vec![
        "template",
        release,
        CHART,
        "--namespace",
        namespace,
        "-f",
        file,
    ];
    args.extend_from_slice(extra);
    let out = cluster.helm(&args);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("UTF-8 manifests"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `render` that panics with helm's message.
pub fn render_ok(
    cluster: &Cluster,
    release: &str,
    namespace: &str,
    values: &Value,
    extra: &[&str],
) -> String {
    render(cluster, release, namespace, values, extra)
        .unwrap_or_else(|e| panic!("helm template {release} with {values} failed:\n{e}"))
}

/// The documents of a multi-document YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The YAML stream of `docs`, for `kubectl apply -f -`.
pub fn stream(docs: &[Value]) -> String {
    docs.iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).expect("YAML")))
        .collect()
}

/// Deep merge of `overlay` into `base` (objects merged key by key, everything else replaced).
pub fn merge(base: &mut Value, overlay: &Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// 64-bit FNV-1a: a stable fingerprint (std's hasher may change between Rust releases).
pub fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
