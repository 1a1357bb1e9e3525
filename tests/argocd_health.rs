//! Argo CD: the one Lua health check of every kind, laid out as Argo CD keeps its built-in
//! ones (`resource_customizations/identity.operator.dev/_/`: `health.lua`, `health_test.yaml`,
//! `testdata/`), run by a real Lua 5.1 interpreter (Argo CD's gopher-lua is Lua 5.1) on its
//! test cases, on every condition reason the operator can set and on live objects; the
//! argocd-cm snippet generated from it; and nothing that would make Argo CD report OutOfSync
//! (the API server defaults no field of a spec, and the operator never writes one).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use identity_operator::engine::conditions::{Meaning, Reason};
use serde_json::{Value, json};
use support::boruta::{self, backend};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{KINDS, Operator, apply, get_json, install_crds, wait_condition};

/// Argo CD's `_` is a wildcard: this script serves every kind of the group.
const CUSTOMIZATION: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/identity-operator/argocd/resource_customizations/identity.operator.dev/_"
);
const ARGOCD_CM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/identity-operator/argocd/argocd-cm.yaml"
);
/// The argocd-cm key: Argo CD matches wildcards only in `resource.customizations` (a
/// ConfigMap key cannot hold `*`, so `resource.customizations.health.<group>_<kind>` cannot).
const WILDCARD_KEY: &str = "identity.operator.dev/*";

fn lua() -> &'static Path {
    static LUA: OnceLock<PathBuf> = OnceLock::new();
    LUA.get_or_init(|| support::tools::install("install-lua.sh"))
}

fn script_path() -> PathBuf {
    Path::new(CUSTOMIZATION).join("health.lua")
}

fn script() -> String {
    std::fs::read_to_string(script_path()).expect("health.lua")
}

/// A Lua 5.1 string literal (decimal escapes for everything but printable ASCII).
fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// The Lua table Argo CD hands the script as `obj` (JSON null becomes nil, as there).
fn lua_value(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_value).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_value(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

/// Runs the health script on `obj` the way Argo CD does: `obj` a global, only the base,
/// string, table and math libraries in reach (no io, no os). Returns (status, message).
fn health(obj: &Value) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let harness = dir.path().join("harness.lua");
    let program = format!(
        r#"local env = {{
  obj = {obj},
  ipairs = ipairs, pairs = pairs, next = next, type = type, tostring = tostring,
  tonumber = tonumber, error = error, pcall = pcall, select = select, unpack = unpack,
  string = string, table = table, math = math,
}}
local check = assert(loadfile({path}))
setfenv(check, env)
local hs = check()
io.write(tostring(hs.status), "\n", tostring(hs.message))
"#,
        obj = lua_value(obj),
        path = lua_string(script_path().to_str().unwrap()),
    );
    std::fs::write(&harness, program).unwrap();
    let out = Command::new(lua())
        .arg(&harness)
        .output()
        .expect("lua runs");
    assert!(
        out.status.success(),
        "health.lua failed on {obj}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').expect("status and message");
    (status.to_owned(), message.to_owned())
}

/// The cases of `health_test.yaml`, as Argo CD's own test runs them: (input, status, message).
fn cases() -> Vec<(String, Value, String, String)> {
    let dir = Path::new(CUSTOMIZATION);
    let text = std::fs::read_to_string(dir.join("health_test.yaml")).expect("health_test.yaml");
    let tests: Value = serde_yaml::from_str(&text).expect("health_test.yaml is YAML");
    tests["tests"]
        .as_array()
        .expect("a list of tests")
        .iter()
        .map(|t| {
            let input = t["inputPath"].as_str().expect("inputPath").to_owned();
            let yaml = std::fs::read_to_string(dir.join(&input))
                .unwrap_or_else(|e| panic!("{input}: {e}"));
            let obj: Value = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{input}: {e}"));
            let expected = &t["healthStatus"];
            (
                input,
                obj,
                expected["status"].as_str().expect("status").to_owned(),
                expected["message"].as_str().expect("message").to_owned(),
            )
        })
        .collect()
}

fn resource(kind: &str, generation: i64, status: Value) -> Value {
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": kind,
        "metadata": {"name": "sample", "namespace": "team", "generation": generation},
        "spec": {"apiRef": {"name": "api"}},
        "status": status,
    })
}

fn ready(status: &str, reason: &str, generation: i64) -> Value {
    json!({
        "observedGeneration": generation,
        "conditions": [
            {"type": "Ready", "status": status, "reason": reason, "message": format!("{reason} happened"),
             "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": generation},
            {"type": "Synced", "status": status, "reason": reason, "message": format!("{reason} happened"),
             "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": generation},
        ],
    })
}

#[test]
fn health_test_yaml_cases_pass() {
    let cases = cases();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    for (input, obj, status, message) in cases {
        let got = health(&obj);
        assert_eq!(got, (status, message), "{input}");
    }
}

/// One script serves every kind: each kind has a Healthy case, every testdata file is a case,
/// and every outcome is covered.
#[test]
fn the_cases_cover_every_kind_and_outcome() {
    let cases = cases();
    let healthy: BTreeSet<&str> = cases
        .iter()
        .filter(|c| c.2 == "Healthy")
        .map(|c| c.1["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        healthy,
        KINDS.into_iter().collect(),
        "a Healthy case per kind"
    );
    let outcomes: BTreeSet<&str> = cases.iter().map(|c| c.2.as_str()).collect();
    assert_eq!(
        outcomes,
        BTreeSet::from(["Degraded", "Healthy", "Progressing", "Suspended"])
    );
    let inputs: BTreeSet<String> = cases.iter().map(|c| c.0.clone()).collect();
    for file in std::fs::read_dir(Path::new(CUSTOMIZATION).join("testdata")).unwrap() {
        let name = format!("testdata/{}", file.unwrap().file_name().to_string_lossy());
        assert!(
            inputs.contains(&name),
            "{name} is no case of health_test.yaml"
        );
    }
}

#[test]
fn the_argocd_cm_snippet_carries_the_script() {
    let script = script();
    let expected = argocd_cm(&script);
    if std::env::var_os("UPDATE_ARGOCD_CM").is_some() {
        std::fs::write(ARGOCD_CM, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(ARGOCD_CM).unwrap_or_default();
    assert!(
        committed == expected,
        "{ARGOCD_CM} is stale: run `UPDATE_ARGOCD_CM=1 cargo test --test argocd_health`"
    );
    // What Argo CD will read: one wildcard entry whose health.lua is the script exactly.
    let parsed: Value = serde_yaml::from_str(&committed).unwrap();
    let data = parsed["data"].as_object().unwrap();
    assert_eq!(data.len(), 1, "{data:?}");
    let customizations: Value =
        serde_yaml::from_str(data["resource.customizations"].as_str().unwrap()).unwrap();
    assert_eq!(
        customizations,
        json!({WILDCARD_KEY: {"health.lua": script}})
    );
}

/// The snippet works as documented: a merge patch of an existing argocd-cm.
#[test]
fn the_argocd_cm_snippet_patches_argocd_cm() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "argocd-cm");
    ns.kubectl_ok(&[
        "create",
        "configmap",
        "argocd-cm",
        "--from-literal=url=https://argocd.example",
    ]);
    ns.kubectl_ok(&[
        "patch",
        "configmap",
        "argocd-cm",
        "--type",
        "merge",
        "--patch-file",
        ARGOCD_CM,
    ]);
    let cm = get_json(&ns, cluster, "configmap/argocd-cm").unwrap();
    assert_eq!(
        cm["data"]["url"], "https://argocd.example",
        "other keys are kept"
    );
    let customizations: Value =
        serde_yaml::from_str(cm["data"]["resource.customizations"].as_str().unwrap()).unwrap();
    assert_eq!(customizations[WILDCARD_KEY]["health.lua"], json!(script()));
}

fn argocd_cm(script: &str) -> String {
    let mut out = format!(
        "# Argo CD health check for every identity-operator kind, as `data` of the argocd-cm ConfigMap.\n\
         # Merge it into Argo CD's configuration with\n\
         #   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm.yaml\n\
         # or put the `{WILDCARD_KEY}` entry into your own `resource.customizations` (a merge patch\n\
         # replaces that whole key). Wildcards work in this key from Argo CD 2.6 on.\n\
         # Generated from resource_customizations/identity.operator.dev/_/health.lua:\n\
         #   UPDATE_ARGOCD_CM=1 cargo test --test argocd_health\n\
         data:\n  resource.customizations: |\n    {WILDCARD_KEY}:\n      health.lua: |\n",
    );
    for line in script.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            out.push_str(&format!("        {line}\n"));
        }
    }
    out
}

#[test]
fn every_condition_reason_is_classified() {
    for reason in Reason::ALL {
        let expected = match reason.meaning() {
            Meaning::Transient => "Progressing",
            Meaning::NeedsChange => "Degraded",
            // Success reasons never come with Ready=False, and Paused is the annotation's.
            Meaning::Success | Meaning::Paused => continue,
        };
        let obj = resource("OrgConnection", 1, ready("False", reason.as_str(), 1));
        let (status, message) = health(&obj);
        assert_eq!(status, expected, "{}", reason.as_str());
        assert_eq!(message, format!("{0}: {0} happened", reason.as_str()));
    }
    // A reason the script does not know yet counts as needing a change.
    let obj = resource("LdapSettings", 1, ready("False", "SomethingNew", 1));
    assert_eq!(health(&obj).0, "Degraded");
}

/// The script's list of reasons that clear by themselves is the operator's.
#[test]
fn script_and_operator_agree_on_transient_reasons() {
    let script = script();
    let block = &script[script.find("local transient = {").unwrap()..];
    let block = &block[..block.find('}').unwrap()];
    let listed: BTreeSet<&str> = block
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(" = true"))
        .map(|(name, _)| name)
        .collect();
    let transient: BTreeSet<&str> = Reason::ALL
        .iter()
        .filter(|r| r.meaning() == Meaning::Transient)
        .map(|r| r.as_str())
        .collect();
    assert_eq!(listed, transient);
}

/// Managers other than `applier` that own a field under `spec`.
fn spec_writers(obj: &Value, applier: &str) -> Vec<String> {
    let managers = obj["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("no managedFields in {obj}"));
    assert!(
        managers.len() >= 2,
        "the operator's status write is missing: {managers:?}"
    );
    managers
        .iter()
        .filter(|m| m["manager"] != applier)
        .filter(|m| m["fieldsV1"].get("f:spec").is_some())
        .map(|m| m["manager"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn live_objects_get_the_health_argo_cd_would_show() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "argocd-health");
    let _sim = boruta::good_and_broken(cluster, &ns, json!({}));
    let good = backend("good", json!({}));
    // Before any operator ran: never reconciled.
    let fresh = get_json(&ns, cluster, "identitybackend/good").unwrap();
    assert_eq!(health(&fresh).0, "Progressing");

    let mut op = Operator::start(cluster, &ns, &[]);
    let timeout = Duration::from_secs(45);
    let api = wait_condition(
        cluster,
        &ns,
        "identityapi/boruta",
        "Ready",
        "True",
        None,
        timeout,
    )
    .await;
    assert_eq!(health(&api).0, "Healthy");
    let live = wait_condition(
        cluster,
        &ns,
        "identitybackend/good",
        "Ready",
        "True",
        None,
        timeout,
    )
    .await;
    assert_eq!(health(&live).0, "Healthy");
    let failed = wait_condition(
        cluster,
        &ns,
        "identitybackend/broken",
        "Ready",
        "False",
        Some("SecretNotFound"),
        timeout,
    )
    .await;
    let (status, message) = health(&failed);
    assert_eq!(status, "Degraded");
    assert!(message.starts_with("SecretNotFound: "), "{message}");

    // Argo CD stays in sync: the live spec is the manifest, and nobody but the applier owns a
    // field of it (the operator writes status and its finalizer only).
    assert_eq!(live["spec"], good["spec"]);
    let with_managers = ns.kubectl_ok(&[
        "get",
        "identitybackend/good",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let with_managers: Value = serde_json::from_str(&with_managers).unwrap();
    let managers = spec_writers(&with_managers, "kubectl-client-side-apply");
    assert!(managers.is_empty(), "spec fields written by {managers:?}");

    // A spec change the operator has not seen yet, and a pause.
    op.kill();
    let edited = backend("good", json!({"isDefault": false}));
    apply(cluster, &ns, &edited.to_string());
    let pending = get_json(&ns, cluster, "identitybackend/good").unwrap();
    let (status, message) = health(&pending);
    assert_eq!(status, "Progressing", "{message}");
    ns.kubectl_ok(&[
        "annotate",
        "identitybackend/good",
        "identity.operator.dev/paused=true",
    ]);
    let paused = get_json(&ns, cluster, "identitybackend/good").unwrap();
    assert_eq!(health(&paused).0, "Suspended");
    ns.kubectl_ok(&[
        "annotate",
        "identitybackend/good",
        "identity.operator.dev/paused-",
    ]);

    // Back to Healthy once the operator has reconciled the new generation.
    let _op = Operator::start(cluster, &ns, &[]);
    let live = wait_condition(
        cluster,
        &ns,
        "identitybackend/good",
        "Ready",
        "True",
        None,
        timeout,
    )
    .await;
    assert_eq!(live["metadata"]["generation"], 2);
    assert_eq!(health(&live).0, "Healthy");
    // Deleted while the operator runs, so no finalizer keeps the namespace.
    ns.kubectl_ok(&["delete", "identitybackends", "--all", "--timeout=60s"]);
}

/// Every kind, with many of its optional fields set, applied as Argo CD would apply it: the
/// stored spec is exactly the manifest's (no schema defaults, nothing pruned), so Argo CD's diff
/// finds nothing to sync.
#[test]
fn the_api_server_defaults_no_spec_field() {
    let cluster = ensure_cluster();
    install_crds(cluster);
    let ns = TestNamespace::new(cluster, "argocd-defaults");
    let mut manifests = full_manifests();
    manifests.extend(example_manifests());
    let kinds: std::collections::BTreeSet<&str> = manifests
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), KINDS.len(), "{kinds:?}");
    for manifest in &manifests {
        // No operator runs here: only the API server touches the objects.
        apply_for_argocd(cluster, &ns, manifest);
        let kind = manifest["kind"].as_str().unwrap();
        let name = manifest["metadata"]["name"].as_str().unwrap();
        let live = get_json(&ns, cluster, &format!("{kind}/{name}")).unwrap();
        assert_eq!(live["spec"], manifest["spec"], "{kind}/{name}");
    }
}

fn apply_for_argocd(cluster: &Cluster, ns: &TestNamespace, manifest: &Value) {
    // Argo CD applies with kubectl's client-side apply by default.
    cluster.kubectl_stdin_ok(&["apply", "-n", &ns.name, "-f", "-"], &manifest.to_string());
}

/// The identity.operator.dev documents of examples/*.yaml.
fn example_manifests() -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| support::chart::documents(&std::fs::read_to_string(f).unwrap()))
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("identity.operator.dev/"))
        })
        .map(|mut d| {
            // Our own names, so the examples never clash with the full manifests.
            let name = format!("example-{}", d["metadata"]["name"].as_str().unwrap());
            d["metadata"] = json!({"name": name});
            d
        })
        .collect()
}

fn full_manifests() -> Vec<Value> {
    let doc = |kind: &str, spec: Value| {
        json!({
            "apiVersion": "identity.operator.dev/v1alpha1", "kind": kind,
            "metadata": {"name": format!("full-{}", kind.to_lowercase())},
            "spec": spec,
        })
    };
    let secret = |name: &str, key: &str| json!({"name": name, "key": key});
    vec![
        doc(
            "IdentityApi",
            json!({
                "provider": "auth0", "url": "https://tenant.example/",
                "auth": {"oauth2ClientCredentials": {
                    "tokenUrl": "oauth/token", "clientId": "id", "audience": "https://tenant.example/api/v2/",
                    "clientSecretRef": secret("auth0", "secret"), "scopes": ["read:organizations"]}},
                "tls": {"caSecretRef": secret("ca", "ca.crt"), "insecureSkipVerify": false},
                "rateLimit": {"requestsPerSecond": 10, "burst": 20, "maxConcurrent": 4},
                "timeoutSeconds": 30,
            }),
        ),
        doc(
            "IdentityBackend",
            json!({
                "apiRef": {"name": "boruta"}, "name": "Corporate LDAP", "type": "Ldap",
                "passwordHashingAlg": "argon2", "passwordHashingOpts": {"t_cost": 3},
                "roles": [{"id": "8d3e4f20-1c2b-4a5d-9e6f-7a8b9c0d1e2f", "name": "employee"}],
                "ldapHost": "ldap.example.com", "ldapUserRdnAttribute": "uid", "ldapBaseDn": "dc=example",
                "ldapMasterDn": "cn=admin,dc=example", "ldapMasterPasswordSecretRef": secret("ldap", "pw"),
                "ldapPoolSize": 5, "smtpPort": 587, "smtpTls": "if_available", "smtpSsl": false,
                "isDefault": false, "createDefaultOrganization": true,
                "metadataFields": [{"attribute_name": "department"}],
                "managementPolicy": "Apply", "deletionPolicy": "Orphan",
            }),
        ),
        doc(
            "OrgConnection",
            json!({
                "apiRef": {"name": "auth0"}, "organizationId": "org_acme", "connectionId": "con_saml",
                "assignMembershipOnLogin": true, "showAsButton": false, "isSignupEnabled": false,
                "organizationAccessLevel": "readonly", "isEnabled": true,
                "managementPolicy": "Observe",
            }),
        ),
        doc(
            "LdapSettings",
            json!({
                "apiRef": {"name": "vcd"}, "enabled": true, "settingsSource": "DEFINED",
                "definedSettings": {
                    "hostName": "ldap.acme", "port": 636, "ssl": true, "searchBase": "dc=acme",
                    "userName": "cn=admin", "passwordSecretRef": secret("vcd-ldap", "pw"),
                    "pageSize": 200, "userAttributes": {"userName": "uid", "email": "mail"},
                },
            }),
        ),
        doc(
            "AdminApiApp",
            json!({
                "apiRef": {"name": "entrust"}, "name": "ci", "description": "CI pipelines",
                "allowLongLivedToken": false, "roleId": "role-1",
                "sharedSecretTarget": {"name": "ci-credentials"}, "rotateSharedSecret": "2025-01",
            }),
        ),
        doc(
            "AuthenticationSettings",
            json!({
                "apiRef": {"name": "xelion"}, "securityDomain": "corp", "synchronizeDomainTime": true,
                "tokenRetentionDays": 30, "minimumPasswordLength": 12, "maxNumberOfFalseLogins": 5,
                "openIdConnections": [{"oid": "1", "openIdId": "google", "openIdProvider": "Google", "liveSyncOn": false}],
            }),
        ),
    ]
}
