//! The CRDs: the committed YAML is what the binary prints, each CRD fits a client-side
//! `kubectl apply`, and the real API server accepts them. What they reject, schema violations and
//! CEL rules, is tabled per kind in tests/bad_input.rs.

mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::cluster::{TestNamespace, ensure_cluster};
use support::operator::install_crds;

const COMMITTED: &str = include_str!("../crds/identity.operator.dev.yaml");

fn printed() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
        .arg("crds")
        .output()
        .expect("identity-operator crds");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn crds() -> Vec<Value> {
    printed()
        .split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_yaml::from_str(doc).expect("CRD YAML"))
        .collect()
}

#[test]
fn committed_crds_are_current() {
    assert!(
        printed() == COMMITTED,
        "crds/identity.operator.dev.yaml is stale: run `cargo run -- crds > crds/identity.operator.dev.yaml`"
    );
}

#[test]
fn every_kind_has_printer_columns_category_and_short_name() {
    let crds = crds();
    assert_eq!(crds.len(), 7);
    for crd in &crds {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        let size = serde_json::to_string(crd).unwrap().len();
        // kubectl's client-side apply keeps the object in an annotation limited to 256 KiB.
        assert!(size < 200 * 1024, "{kind} CRD is {size} bytes");
        assert_eq!(
            crd["spec"]["names"]["categories"],
            json!(["identity"]),
            "{kind}"
        );
        assert!(crd["spec"]["names"]["shortNames"][0].is_string(), "{kind}");
        let version = &crd["spec"]["versions"][0];
        assert!(version["subresources"]["status"].is_object(), "{kind}");
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert!(
            columns.contains(&"Ready") && columns.contains(&"Age"),
            "{kind}: {columns:?}"
        );
        if !kind.ends_with("IdentityApi") {
            assert!(
                columns.contains(&"Synced") && columns.contains(&"External-ID"),
                "{kind}"
            );
        }
        assert!(
            version["schema"]["openAPIV3Schema"]["properties"]["spec"]["description"].is_string(),
            "{kind} spec needs a description for kubectl explain"
        );
    }
}

fn managed(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "identity.operator.dev/v1alpha1", "kind": kind,
        "metadata": {"name": "x"}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_server_accepts_the_crds() {
    let cluster = ensure_cluster();
    install_crds(cluster);
    let ns = TestNamespace::new(cluster, "crd-schema");
    let good = managed(
        "IdentityBackend",
        json!({"apiRef": {"name": "a"}, "name": "n", "passwordHashingAlg": "argon2"}),
    );
    cluster.kubectl_stdin_ok(&["apply", "-n", &ns.name, "-f", "-"], &good.to_string());
    let explain = cluster.kubectl_ok(&[
        "explain",
        "identitybackends.spec.ldapMasterPasswordSecretRef",
    ]);
    assert!(explain.contains("LDAP bind password"), "{explain}");
    let listed = cluster.kubectl_ok(&["get", "identity", "-n", &ns.name]);
    assert!(listed.contains("identitybackend"), "{listed}");
}
