//! Argo CD: the Lua health checks of `charts/identity-operator/argocd/health/`, run by a real
//! Lua 5.1 interpreter (Argo CD's gopher-lua is Lua 5.1) against sample and live objects; the
//! argocd-cm snippet that carries them; and nothing that would make Argo CD report OutOfSync
//! (the API server defaults no field of a spec, and the operator never writes one).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{KINDS, Operator, apply, get_json, install_crds, wait_condition};
use support::sim::{SimOptions, SimProcess};

const HEALTH_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/identity-operator/argocd/health"
);
const ARGOCD_CM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/identity-operator/argocd/argocd-cm.yaml"
);

/// Ready=False reasons the operator retries by itself: Progressing. Every other reason needs
/// a change by someone: Degraded.
const TRANSIENT: [&str; 3] = ["RateLimited", "IdentityApiError", "KubernetesError"];
/// Ready=False reasons that need a change (spec, Secret, IdentityApi, identity system, or the
/// other resource of a singleton conflict): Degraded.
const NEEDS_A_CHANGE: [&str; 16] = [
    "IdentityApiNotFound",
    "WrongProvider",
    "SecretNotFound",
    "SecretKeyNotFound",
    "SecretNotText",
    "ConfigMapNotFound",
    "ConfigMapKeyNotFound",
    "InvalidSpec",
    "RemoteNotFound",
    "Conflict",
    "Rejected",
    "AuthenticationFailed",
    "Unauthorized",
    "CertificateNotTrusted",
    "Drifted",
    "WriteNotConverging",
];
/// Reasons of conditions that report no failure (Ready=True, Synced=True, or paused).
const NOT_A_FAILURE: [&str; 5] = [
    "Synced",
    "ReconcileSuccess",
    "Observed",
    "Authenticated",
    "Paused",
];

fn lua() -> &'static Path {
    static LUA: OnceLock<PathBuf> = OnceLock::new();
    LUA.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-lua.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("scripts/install-lua.sh runs");
        assert!(out.status.success(), "scripts/install-lua.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
    .as_path()
}

fn script_path(kind: &str) -> PathBuf {
    Path::new(HEALTH_DIR).join(format!("{kind}.lua"))
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

/// Runs the health script of `kind` on `obj` the way Argo CD does: `obj` a global, only the
/// base, string, table and math libraries in reach (no io, no os). Returns (status, message).
fn health(kind: &str, obj: &Value) -> (String, String) {
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
        path = lua_string(script_path(kind).to_str().unwrap()),
    );
    std::fs::write(&harness, program).unwrap();
    let out = Command::new(lua())
        .arg(&harness)
        .output()
        .expect("lua runs");
    assert!(
        out.status.success(),
        "{kind}.lua failed on {obj}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').expect("status and message");
    (status.to_owned(), message.to_owned())
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
fn every_kind_has_the_same_script_and_the_argocd_cm_snippet_carries_it() {
    let scripts: Vec<String> = KINDS
        .iter()
        .map(|k| {
            std::fs::read_to_string(script_path(k))
                .unwrap_or_else(|e| panic!("{}: {e}", script_path(k).display()))
        })
        .collect();
    for (kind, script) in KINDS.iter().zip(&scripts) {
        // The operator reports the same conditions on every kind: one logic, six copies.
        assert!(
            script == &scripts[0],
            "{kind}.lua differs from {}.lua",
            KINDS[0]
        );
    }
    let expected = argocd_cm(&scripts[0]);
    if std::env::var_os("UPDATE_ARGOCD_CM").is_some() {
        std::fs::write(ARGOCD_CM, &expected).unwrap();
    }
    let committed = std::fs::read_to_string(ARGOCD_CM).unwrap_or_default();
    assert!(
        committed == expected,
        "{ARGOCD_CM} is stale: run `UPDATE_ARGOCD_CM=1 cargo test --test argocd_health`"
    );
    // What Argo CD will read: each key holds the script exactly.
    let parsed: Value = serde_yaml::from_str(&committed).unwrap();
    let data = parsed["data"].as_object().unwrap();
    assert_eq!(data.len(), KINDS.len());
    for kind in KINDS {
        let key = format!("resource.customizations.health.identity.operator.dev_{kind}");
        assert_eq!(data[&key], json!(scripts[0]), "{key}");
    }
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
    let script = std::fs::read_to_string(script_path("AdminApiApp")).unwrap();
    assert_eq!(
        cm["data"]["resource.customizations.health.identity.operator.dev_AdminApiApp"],
        json!(script)
    );
}

fn argocd_cm(script: &str) -> String {
    let mut out = String::from(
        "# Argo CD health checks for identity-operator's kinds, as `data` of the argocd-cm ConfigMap.\n\
         # Merge them into Argo CD's configuration with\n\
         #   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file argocd-cm.yaml\n\
         # or paste the keys under `data:` of argocd-cm (`configs.cm` of the argo-cd Helm chart).\n\
         # Generated from health/*.lua: UPDATE_ARGOCD_CM=1 cargo test --test argocd_health\n\
         data:\n",
    );
    let mut kinds = KINDS;
    kinds.sort();
    for kind in kinds {
        out.push_str(&format!(
            "  resource.customizations.health.identity.operator.dev_{kind}: |\n"
        ));
        for line in script.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

#[test]
fn health_follows_ready_for_the_current_generation() {
    for kind in KINDS {
        let cases = [
            (json!(null), "Progressing"),
            (json!({}), "Progressing"),
            (json!({"observedGeneration": 3}), "Progressing"),
            (ready("True", "Synced", 3), "Healthy"),
            // Ready for an older spec says nothing about this one.
            (ready("True", "Synced", 2), "Progressing"),
            (ready("False", "Rejected", 2), "Progressing"),
            (ready("Unknown", "Reconciling", 3), "Progressing"),
            (ready("False", "Rejected", 3), "Degraded"),
            (ready("False", "RateLimited", 3), "Progressing"),
            (ready("False", "SomethingNew", 3), "Degraded"),
        ];
        for (status, expected) in cases {
            let obj = resource(kind, 3, status.clone());
            let (got, message) = health(kind, &obj);
            assert_eq!(got, expected, "{kind} with status {status}: {message}");
        }
    }

    // The condition's own observedGeneration counts, not only the status's.
    let mut stale = ready("True", "Synced", 3);
    stale["conditions"][0]["observedGeneration"] = json!(2);
    let (got, _) = health("IdentityBackend", &resource("IdentityBackend", 3, stale));
    assert_eq!(got, "Progressing");
    // A condition without observedGeneration falls back to the status's.
    let mut bare = ready("True", "Authenticated", 3);
    bare["conditions"][0]
        .as_object_mut()
        .unwrap()
        .remove("observedGeneration");
    let (got, message) = health("IdentityApi", &resource("IdentityApi", 3, bare));
    assert_eq!(
        (got.as_str(), message.as_str()),
        ("Healthy", "Authenticated: Authenticated happened")
    );

    let mut paused = resource("IdentityBackend", 4, ready("True", "Synced", 3));
    paused["metadata"]["annotations"] = json!({"identity.operator.dev/paused": "true"});
    assert_eq!(health("IdentityBackend", &paused).0, "Suspended");
    let mut deleting = resource("IdentityBackend", 3, ready("True", "Synced", 3));
    deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    assert_eq!(health("IdentityBackend", &deleting).0, "Progressing");
}

#[test]
fn every_failure_reason_is_classified() {
    for reason in TRANSIENT {
        let obj = resource("OrgConnection", 1, ready("False", reason, 1));
        let (status, message) = health("OrgConnection", &obj);
        assert_eq!(status, "Progressing", "{reason}");
        assert_eq!(message, format!("{reason}: {reason} happened"));
    }
    for reason in NEEDS_A_CHANGE {
        let obj = resource("LdapSettings", 1, ready("False", reason, 1));
        assert_eq!(health("LdapSettings", &obj).0, "Degraded", "{reason}");
    }
    // Every reason the engine can put in a condition was decided on here.
    let reasons = identity_operator::engine::conditions::Reason::ALL;
    for reason in reasons.iter().map(|r| r.as_str()) {
        assert!(
            TRANSIENT.contains(&reason)
                || NEEDS_A_CHANGE.contains(&reason)
                || NOT_A_FAILURE.contains(&reason),
            "reason {reason} of src/engine/conditions.rs: decide whether Argo CD shows it as \
             Progressing (TRANSIENT in the health scripts) or Degraded"
        );
    }
}

/// The script's list of transient reasons is the test's.
#[test]
fn script_and_test_agree_on_transient_reasons() {
    let script = std::fs::read_to_string(script_path("IdentityApi")).unwrap();
    let block = &script[script.find("local transient = {").unwrap()..];
    let block = &block[..block.find('}').unwrap()];
    let mut listed: Vec<&str> = block
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().split_once(" = true"))
        .map(|(name, _)| name)
        .collect();
    listed.sort();
    let mut expected = TRANSIENT.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
}

fn boruta_api(sim: &SimProcess) -> Value {
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
        "metadata": {"name": "boruta"},
        "spec": {
            "provider": "boruta",
            "url": sim.url("boruta"),
            "auth": {"oauth2ClientCredentials": {
                "tokenUrl": "oauth/token",
                "clientId": sim.options.client_id,
                "clientSecretRef": {"name": "boruta-client", "key": "secret"},
                "scopes": ["identity-providers:manage:all"],
            }},
        },
    })
}

fn backend(name: &str, extra: Value) -> Value {
    let mut spec =
        json!({"apiRef": {"name": "boruta"}, "name": name, "passwordHashingAlg": "argon2"});
    support::chart::merge(&mut spec, &extra);
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityBackend",
        "metadata": {"name": name},
        "spec": spec,
    })
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
    let sim = SimProcess::start(SimOptions {
        extra_args: vec!["--boruta-oauth-rate-limit".into(), "0".into()],
        ..SimOptions::default()
    });
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "boruta-client"},
        "stringData": {"secret": sim.options.client_secret},
    });
    let good = backend("good", json!({}));
    let broken = backend(
        "broken",
        json!({"type": "Ldap", "ldapHost": "ldap.example.com", "ldapUserRdnAttribute": "uid",
               "ldapBaseDn": "dc=example", "ldapMasterDn": "cn=admin,dc=example",
               "ldapMasterPasswordSecretRef": {"name": "absent", "key": "password"}}),
    );
    for doc in [&secret, &boruta_api(&sim), &good, &broken] {
        apply(cluster, &ns, &doc.to_string());
    }
    // Before any operator ran: never reconciled.
    let fresh = get_json(&ns, cluster, "identitybackend/good").unwrap();
    assert_eq!(health("IdentityBackend", &fresh).0, "Progressing");

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
    assert_eq!(health("IdentityApi", &api).0, "Healthy");
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
    assert_eq!(health("IdentityBackend", &live).0, "Healthy");
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
    let (status, message) = health("IdentityBackend", &failed);
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
    let (status, message) = health("IdentityBackend", &pending);
    assert_eq!(status, "Progressing", "{message}");
    ns.kubectl_ok(&[
        "annotate",
        "identitybackend/good",
        "identity.operator.dev/paused=true",
    ]);
    let paused = get_json(&ns, cluster, "identitybackend/good").unwrap();
    assert_eq!(health("IdentityBackend", &paused).0, "Suspended");
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
    assert_eq!(health("IdentityBackend", &live).0, "Healthy");
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
