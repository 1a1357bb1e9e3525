//! Manifests the end-to-end tests share: an IdentityApi of any provider against the simulator,
//! a Secret, and the Events the operator wrote about an object.

use serde_json::{Value, json};

use super::sim::{AUTH0_AUDIENCE, SimProcess};

pub const GROUP_VERSION: &str = "identity.operator.dev/v1alpha1";

/// The VCD organisation the IdentityApis of [`identity_api`] log in to.
pub const VCD_ORG: &str = "acme";

/// An IdentityApi of `provider` against the simulator, its credential in `secret[key]`.
pub fn identity_api(
    sim: &SimProcess,
    name: &str,
    provider: &str,
    secret: &str,
    key: &str,
) -> Value {
    let secret_ref = json!({"name": secret, "key": key});
    let client_id = sim.options.client_id.as_str();
    let (auth, tenant) = match provider {
        "boruta" => (
            json!({"oauth2ClientCredentials": {"tokenUrl": "oauth/token", "clientId": client_id,
                "clientSecretRef": secret_ref, "scopes": ["identity-providers:manage:all"]}}),
            None,
        ),
        "auth0" => (
            json!({"oauth2ClientCredentials": {"tokenUrl": "oauth/token", "clientId": client_id,
                "clientSecretRef": secret_ref, "audience": AUTH0_AUDIENCE}}),
            None,
        ),
        "vcd" => (
            json!({"vcdSession": {"org": VCD_ORG, "username": client_id, "passwordSecretRef": secret_ref}}),
            None,
        ),
        "entrust" => (
            json!({"entrustAdminApi": {"applicationId": client_id, "sharedSecretRef": secret_ref}}),
            None,
        ),
        "xelion" => (
            json!({"xelionLogin": {"userName": client_id, "passwordSecretRef": secret_ref,
                "userSpace": "identity-operator"}}),
            Some("master"),
        ),
        other => panic!("unknown provider {other}"),
    };
    let mut spec = json!({"provider": provider, "url": sim.url(provider), "auth": auth});
    if let Some(tenant) = tenant {
        spec["tenant"] = json!(tenant);
    }
    json!({"apiVersion": GROUP_VERSION, "kind": "IdentityApi", "metadata": {"name": name}, "spec": spec})
}

pub fn secret(name: &str, key: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
           "stringData": {key: value}})
}

/// A resource of `kind` named `name` with `spec`.
pub fn document(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": GROUP_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// The finalizers of `obj`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

/// The project's `examples/`.
pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
/// The simulator address the examples name (the quick start's).
const QUICKSTART_SIM: &str = "http://127.0.0.1:18080";

/// A simulator seeded as the quick start seeds it (`examples/sim-seed/`), with the examples'
/// client id and secret.
pub async fn quickstart_sim() -> SimProcess {
    let sim = SimProcess::start(super::sim::SimOptions {
        client_id: "demo".into(),
        client_secret: "demo-secret".into(),
        ..super::sim::SimOptions::default()
    });
    for seed in sorted_files(&std::path::Path::new(EXAMPLES).join("sim-seed"), "json") {
        let text = std::fs::read_to_string(&seed).expect("seed file");
        sim.seed(serde_json::from_str(&text).expect("seed JSON"))
            .await;
    }
    sim
}

/// Every document of the examples, pointed at `sim`.
pub fn examples(sim: &SimProcess) -> Vec<Value> {
    sorted_files(std::path::Path::new(EXAMPLES), "yaml")
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("example");
            super::chart::documents(&text.replace(QUICKSTART_SIM, sim.base_url()))
        })
        .collect()
}

fn sorted_files(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}
