//! The CRDs: the committed YAML is what the binary prints, each CRD fits a client-side
//! `kubectl apply`, the real API server accepts them and enforces the schema, and the CEL rules
//! (which Kubernetes 1.20 cannot enforce) hold when evaluated client-side.

mod support;

use std::process::Command;

use kube::core::cel::Validator;
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

fn schema(kind: &str) -> Value {
    crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))["spec"]["versions"][0]["schema"]
        ["openAPIV3Schema"]
        .clone()
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
    assert_eq!(crds.len(), 6);
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
        if kind != "IdentityApi" {
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

fn cel_errors(kind: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
    match Validator::new().validate(&schema(kind), object, old) {
        Ok(()) => vec![],
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

fn api(auth: Value) -> Value {
    json!({"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
        "metadata": {"name": "a"},
        "spec": {"provider": "boruta", "url": "https://boruta.example", "auth": auth}})
}

#[test]
fn cel_identity_api_needs_exactly_one_auth_method() {
    let token = json!({"secretRef": {"name": "s", "key": "k"}});
    assert!(cel_errors("IdentityApi", &api(json!({"bearerToken": token})), None).is_empty());
    let none = cel_errors("IdentityApi", &api(json!({})), None);
    assert!(
        none.iter()
            .any(|e| e.contains("exactly one authentication method")),
        "{none:?}"
    );
    let two = api(
        json!({"bearerToken": token, "entrustAdminApi": {"applicationId": "x", "sharedSecretRef": {"name": "s", "key": "k"}}}),
    );
    assert!(!cel_errors("IdentityApi", &two, None).is_empty());
    let mut xelion = api(json!({"bearerToken": token}));
    xelion["spec"]["provider"] = json!("xelion");
    let errs = cel_errors("IdentityApi", &xelion, None);
    assert!(errs.iter().any(|e| e.contains("tenant")), "{errs:?}");
    let mut ftp = api(json!({"bearerToken": token}));
    ftp["spec"]["url"] = json!("ftp://x");
    assert!(!cel_errors("IdentityApi", &ftp, None).is_empty());
}

fn managed(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "identity.operator.dev/v1alpha1", "kind": kind,
        "metadata": {"name": "x"}, "spec": spec})
}

#[test]
fn cel_immutable_references_and_ids() {
    let old = managed(
        "IdentityBackend",
        json!({"apiRef": {"name": "a"}, "name": "n", "passwordHashingAlg": "argon2", "backendId": "b1"}),
    );
    assert!(cel_errors("IdentityBackend", &old, Some(&old)).is_empty());
    let mut moved = old.clone();
    moved["spec"]["apiRef"]["name"] = json!("other");
    let errs = cel_errors("IdentityBackend", &moved, Some(&old));
    assert!(
        errs.iter().any(|e| e.contains("apiRef is immutable")),
        "{errs:?}"
    );
    let mut readopted = old.clone();
    readopted["spec"]["backendId"] = json!("b2");
    let errs = cel_errors("IdentityBackend", &readopted, Some(&old));
    assert!(
        errs.iter().any(|e| e.contains("backendId is immutable")),
        "{errs:?}"
    );
    let mut dropped = old.clone();
    dropped["spec"].as_object_mut().unwrap().remove("backendId");
    assert!(!cel_errors("IdentityBackend", &dropped, Some(&old)).is_empty());

    let conn = managed(
        "OrgConnection",
        json!({"apiRef": {"name": "a"}, "organizationId": "org_1", "connectionId": "con_1"}),
    );
    let mut changed = conn.clone();
    changed["spec"]["connectionId"] = json!("con_2");
    let errs = cel_errors("OrgConnection", &changed, Some(&conn));
    assert!(
        errs.iter().any(|e| e.contains("connectionId is immutable")),
        "{errs:?}"
    );
}

#[test]
fn cel_cross_field_rules() {
    let ldap = managed(
        "IdentityBackend",
        json!({"apiRef": {"name": "a"}, "name": "n", "passwordHashingAlg": "argon2", "type": "Ldap"}),
    );
    let errs = cel_errors("IdentityBackend", &ldap, None);
    assert!(errs.iter().any(|e| e.contains("ldapHost")), "{errs:?}");

    let app = |extra: Value| {
        let mut spec =
            json!({"apiRef": {"name": "a"}, "name": "n", "sharedSecretTarget": {"name": "s"}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        managed("AdminApiApp", spec)
    };
    assert!(cel_errors("AdminApiApp", &app(json!({"roleId": "r"})), None).is_empty());
    assert!(!cel_errors("AdminApiApp", &app(json!({})), None).is_empty());
    assert!(
        !cel_errors(
            "AdminApiApp",
            &app(json!({"roleId": "r", "spRoleId": "s"})),
            None
        )
        .is_empty()
    );

    let defined = managed(
        "LdapSettings",
        json!({"apiRef": {"name": "a"}, "enabled": true, "settingsSource": "DEFINED"}),
    );
    let errs = cel_errors("LdapSettings", &defined, None);
    assert!(
        errs.iter().any(|e| e.contains("definedSettings")),
        "{errs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_server_accepts_the_crds_and_enforces_the_schema() {
    let cluster = ensure_cluster();
    install_crds(cluster);
    let ns = TestNamespace::new(cluster, "crd-schema");
    let bad = [
        // wrong type
        json!({"apiRef": {"name": "a"}, "name": "n", "passwordHashingAlg": "argon2", "smtpPort": "twenty-five"}),
        // enum value
        json!({"apiRef": {"name": "a"}, "name": "n", "passwordHashingAlg": "md5"}),
        // missing required field
        json!({"apiRef": {"name": "a"}, "passwordHashingAlg": "argon2"}),
        // range
        json!({"apiRef": {"name": "a"}, "name": "n", "passwordHashingAlg": "argon2", "ldapPoolSize": 51}),
    ];
    for spec in bad {
        let doc = managed("IdentityBackend", spec.clone());
        let out = cluster.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], &doc.to_string());
        assert!(!out.status.success(), "accepted invalid {spec}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("spec"), "readable message: {stderr}");
    }
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
