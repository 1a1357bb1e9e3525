//! End to end: `identity-operator export` (docs/export.md), the real binary against a
//! simulator seeded with a varied tenant (lists beyond one page, names that are not DNS-safe,
//! values at their limits, write-only values) for each of the five APIs, and the local API
//! server: the output is accepted by the API server (server-side dry run), applying it makes no
//! identity-API write, `plan` then finds nothing to do, and switching the resources from
//! Observe to Apply makes no write either.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use support::chart::{documents, stream};
use support::env::{Env, quickstart};
use support::manifests::examples;
use support::operator::{Operator, count_writes, wait_for};
use support::sim::{SimOptions, SimProcess};

/// The examples' IdentityApis, by simulator API.
const APIS: [(&str, &str); 5] = [
    ("boruta", "boruta"),
    ("auth0", "auth0"),
    ("vcd", "vcd-acme"),
    ("entrust", "entrust"),
    ("xelion", "xelion-master"),
];
const KINDS: &str =
    "identitybackends,orgconnections,ldapsettings,adminapiapps,authenticationsettings";
/// Values the API holds that must never appear in an export.
const SECRET_VALUES: [&str; 4] = ["s3cret-bind", "smtp-s3cret", "google-s3cret", "ci-s3cret"];
/// Organization connections of one organization: more than Auth0's largest page (100).
const CONNECTIONS: usize = 101;
/// Organizations: more than one page too.
const ORGANIZATIONS: usize = 102;

/// A tenant as a team would bring it: varied objects for each API, on top of the examples'
/// seeds.
fn tenant() -> Value {
    let role = "8d3e4f20-1c2b-4a5d-9e6f-7a8b9c0d1e2f";
    let backends = json!([
        {"id": "11111111-1111-4111-8111-111111111111", "name": "Corp LDAP",
         "type": "Elixir.BorutaIdentity.Accounts.Ldap", "ldap_host": "ldap.corp",
         "ldap_user_rdn_attribute": "uid", "ldap_base_dn": "dc=corp", "ldap_master_dn": "cn=admin",
         "ldap_master_password": "s3cret-bind", "ldap_pool_size": 50, "smtp_from": "it@corp",
         "smtp_password": "smtp-s3cret", "smtp_port": 65535, "smtp_tls": "always",
         "roles": [{"id": role}],
         "federated_servers": [{"name": "google", "client_id": "cid", "client_secret": "google-s3cret",
             "base_url": "https://accounts.google.com",
             "discovery_path": "/.well-known/openid-configuration"}]},
        // The same DNS name as the one above: both get a suffix.
        {"id": "22222222-2222-4222-8222-222222222222", "name": "corp-ldap",
         "type": "Elixir.BorutaIdentity.Accounts.Internal", "password_hashing_alg": "bcrypt",
         "password_hashing_opts": {"log_rounds": 12}, "create_default_organization": true},
        {"id": "33333333-3333-4333-8333-333333333333",
         "name": format!("Ünïcode Backend #2 {}", "x".repeat(230)),
         "type": "Elixir.BorutaIdentity.Accounts.Internal",
         "metadata_fields": [{"attribute_name": "dept", "user_editable": true, "scopes": ["profile"]}]},
    ]);
    let organizations: Vec<Value> = (0..ORGANIZATIONS)
        .map(|i| json!({"id": format!("org_{i:03}"), "name": format!("Org {i:03}")}))
        .collect();
    let connections: Vec<Value> = (0..CONNECTIONS)
        .map(|i| {
            json!({"id": format!("con_{i:03}"), "name": format!("conn-{i:03}"),
                        "strategy": if i % 2 == 0 { "auth0" } else { "samlp" }})
        })
        .collect();
    let mut enabled: Vec<Value> = (0..CONNECTIONS)
        .map(|i| {
            let mut oc = json!({"organization_id": "org_000", "connection_id": format!("con_{i:03}"),
                                "assign_membership_on_login": i % 3 == 0, "show_as_button": i % 5 != 0});
            if i % 7 == 0 {
                oc["organization_access_level"] = "full".into();
            }
            oc
        })
        .collect();
    let last = format!("org_{:03}", ORGANIZATIONS - 1);
    enabled.push(json!({"organization_id": last, "connection_id": "con_001",
                        "organization_connection_name": "x".repeat(50)}));
    json!({
        "boruta": {"roles": [{"id": role, "name": "employee"}], "backends": backends},
        "auth0": {"organizations": organizations, "connections": connections,
                  "organizationConnections": enabled},
        "entrust": {"applications": [
            {"id": "7a2b3c4d-0000-4000-8000-000000000002", "name": "CI pipeline",
             "description": "d".repeat(200), "roleId": "role-1", "allowLongLivedToken": true,
             "sharedSecret": "ci-s3cret"},
            {"id": "7a2b3c4d-0000-4000-8000-000000000003", "name": "Reporting",
             "spRoleId": "sp-2", "sharedSecret": "reporting-s3cret"}]},
        "vcd": {"orgs": [{"name": "acme", "ldap": {"enabled": true, "settingsSource": "DEFINED",
            "definedSettings": {"hostName": "ldap.acme", "port": 636, "ssl": true,
                                "searchBase": "dc=acme", "userName": "cn=bind", "pageSize": 200}}}]},
    })
}

impl Env {
    /// [`quickstart`]'s simulator with [`tenant`] on top.
    async fn with_tenant(prefix: &str) -> Env {
        let env = quickstart(prefix).await;
        env.sim.seed(tenant()).await;
        env
    }

    /// The examples' IdentityApis and Secrets (not their managed resources), pointed at this
    /// simulator.
    fn connections(&self) -> Vec<Value> {
        examples(&self.sim)
            .into_iter()
            .filter(|d| d["kind"] == "IdentityApi" || d["kind"] == "Secret")
            .collect()
    }

    /// `identity-operator export ARGS -n NS` as the cluster's administrator.
    fn export(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
            .arg("export")
            .args(args)
            .args(["-n", &self.ns.name])
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .output()
            .expect("identity-operator export runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for value in SECRET_VALUES {
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(value) && !stderr.contains(value),
                "export printed a secret value"
            );
        }
        out
    }

    fn export_ok(&self, args: &[&str]) -> String {
        let out = self.export(args);
        assert!(
            out.status.success(),
            "export {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// Every API exported from the cluster's IdentityApis with `args`.
    fn export_all(&self, args: &[&str]) -> String {
        APIS.iter()
            .map(|(_, api)| {
                let mut all = vec!["--api", api];
                all.extend(args);
                self.export_ok(&all)
            })
            .collect()
    }

    /// The managed resources of the namespace.
    fn resources(&self) -> Vec<Value> {
        let out = self.ns.kubectl_ok(&["get", KINDS, "-o", "json"]);
        let list: Value = serde_json::from_str(&out).expect("JSON");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `count` resources are Ready for their current generation.
    async fn all_ready(&self, count: usize) {
        wait_for(
            Duration::from_secs(180),
            "every exported resource Ready",
            || async {
                let items = self.resources();
                let ready = items.iter().filter(|r| is_current_and_ready(r)).count();
                (items.len() == count && ready == count).then_some(())
            },
        )
        .await;
    }

    async fn assert_no_write_since(&self, since: u64, when: &str) {
        for (api, _) in APIS {
            let log = self.sim.log_since(api, since).await;
            assert_eq!(count_writes(&log, api), 0, "{when}: writes to {api}: {log}");
        }
    }
}

fn is_current_and_ready(r: &Value) -> bool {
    let generation = &r["metadata"]["generation"];
    r["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Ready" && c["status"] == "True" && c["observedGeneration"] == *generation
        })
}

/// The number of documents of `kind` in a YAML stream.
fn count(yaml: &str, kind: &str) -> usize {
    documents(yaml).iter().filter(|d| d["kind"] == kind).count()
}

#[tokio::test]
async fn an_exported_tenant_is_managed_without_a_write() {
    let env = Env::with_tenant("export").await;
    env.ns
        .kubectl_stdin_ok(&["apply", "-f", "-"], &stream(&env.connections()));
    let _operator = Operator::start(env.cluster, &env.ns, &[]);
    // One object the team already manages, by hand: never exported a second time.
    let hand_written = json!({"apiVersion": "identity.operator.dev/v1alpha1",
        "kind": "OrgConnection", "metadata": {"name": "hand-written"},
        "spec": {"apiRef": {"name": "auth0"}, "managementPolicy": "Observe",
                 "organizationId": "org_000", "connectionId": "con_000"}});
    env.ns
        .kubectl_stdin_ok(&["apply", "-f", "-"], &stream(&[hand_written]));
    env.all_ready(1).await;

    let exported = env.export_all(&[]);
    // Every object of every API, each once; only the one already managed is skipped.
    assert_eq!(count(&exported, "IdentityBackend"), 4, "{exported}");
    assert_eq!(count(&exported, "OrgConnection"), CONNECTIONS);
    assert_eq!(count(&exported, "LdapSettings"), 1);
    assert_eq!(count(&exported, "AdminApiApp"), 2);
    assert_eq!(count(&exported, "AuthenticationSettings"), 1);
    assert_eq!(
        exported.matches("# Skipped: nothing.").count(),
        APIS.len() - 1
    );
    let managed = format!(
        "#   OrgConnection org_000/con_000: already managed by OrgConnection {}/hand-written",
        env.ns.name
    );
    assert!(exported.contains(&managed), "{exported}");
    // The IdentityApi from a file that names its namespace, without -n: the same check.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("auth0.yaml");
    let mut auth0: Vec<Value> = env
        .connections()
        .into_iter()
        .filter(|d| d["metadata"]["name"] == "auth0" || d["metadata"]["name"] == "auth0-client")
        .collect();
    for doc in &mut auth0 {
        doc["metadata"]["namespace"] = env.ns.name.clone().into();
    }
    std::fs::write(&file, stream(&auth0)).expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
        .args(["export", "-f", file.to_str().expect("UTF-8")])
        .env("KUBECONFIG", &env.cluster.kubeconfig)
        .output()
        .expect("export runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&managed), "{text}");
    // Stable, DNS-safe names; colliding ones told apart by their ids.
    let names: Vec<String> = documents(&exported)
        .iter()
        .filter(|d| d["kind"] == "IdentityBackend")
        .map(|d| {
            d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(names.iter().all(|n| n.len() <= 63), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("corp-ldap-")).count(),
        2,
        "{names:?}"
    );
    assert_eq!(env.export_all(&[]), exported, "export is not deterministic");
    // From a file, the same as from the cluster.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("boruta.yaml");
    let boruta: Vec<Value> = env
        .connections()
        .into_iter()
        .filter(|d| {
            d["metadata"]["name"] == "boruta" || d["metadata"]["name"] == "boruta-admin-client"
        })
        .collect();
    std::fs::write(&file, stream(&boruta)).expect("written");
    assert_eq!(
        env.export_ok(&["-f", file.to_str().expect("UTF-8")]),
        env.export_ok(&["--api", "boruta"])
    );

    env.ns
        .kubectl_stdin_ok(&["apply", "--dry-run=server", "-f", "-"], &exported);
    let since = env.last_seq().await;
    env.ns.kubectl_stdin_ok(&["apply", "-f", "-"], &exported);
    let total = 1 + CONNECTIONS + 4 + 1 + 2 + 1;
    env.all_ready(total).await;
    env.assert_no_write_since(since, "applying the export")
        .await;

    // The operator finds nothing to do.
    let plan = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
        .args(["plan", "--from-cluster", "-n", &env.ns.name])
        .env("KUBECONFIG", &env.cluster.kubeconfig)
        .output()
        .expect("plan runs");
    assert_eq!(
        plan.status.code(),
        Some(0),
        "plan after applying the export:\n{}\n{}",
        String::from_utf8_lossy(&plan.stdout),
        String::from_utf8_lossy(&plan.stderr)
    );

    // Observe → Apply. The shared secrets Entrust never returns are filled in by the team (the
    // operator takes those Secrets over); the other write-only values stay as the tenant has
    // them until their Secrets change.
    for (secret, value) in [
        ("ci-pipeline-shared-secret", "ci-s3cret"),
        ("reporting-shared-secret", "reporting-s3cret"),
    ] {
        let patch = json!({"stringData": {"sharedSecret": value}}).to_string();
        env.ns
            .kubectl_ok(&["patch", "secret", secret, "--type", "merge", "-p", &patch]);
    }
    let applied = env.export_all(&["--policy", "apply", "--secrets", "none"]);
    // The earlier export's own resources are exported again; the hand-written one is not.
    assert_eq!(count(&applied, "Secret"), 0);
    assert_eq!(count(&applied, "OrgConnection"), CONNECTIONS, "{applied}");
    env.ns.kubectl_stdin_ok(&["apply", "-f", "-"], &applied);
    env.all_ready(total).await;
    let observed: Vec<String> = env
        .resources()
        .iter()
        .filter(|r| r["spec"]["managementPolicy"] != "Apply")
        .map(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        observed,
        ["hand-written"],
        "every exported resource under Apply"
    );
    env.assert_no_write_since(since, "switching to Apply").await;
    let taken = env
        .ns
        .kubectl_ok(&["get", "secret", "ci-pipeline-shared-secret", "-o", "json"]);
    let taken: Value = serde_json::from_str(&taken).expect("JSON");
    assert_eq!(
        taken["metadata"]["ownerReferences"][0]["kind"], "AdminApiApp",
        "the AdminApiApp took its Secret over: {taken}"
    );
}

/// `export -f` with no cluster: what the CRD cannot express and what `--kinds` leaves out are
/// listed with the reason, and `--strict` fails on them.
#[tokio::test]
async fn what_is_not_emitted_is_listed_with_its_reason() {
    let sim = SimProcess::start(SimOptions::default());
    sim.seed(json!({"boruta": {"backends": [
        {"id": "44444444-4444-4444-8444-444444444444", "name": "odd",
         "type": "Elixir.BorutaIdentity.Accounts.Internal",
         "metadata_fields": [{"attribute_name": "dept", "unknown_to_the_crd": 1}]}]}}))
        .await;
    let api = json!({"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
        "metadata": {"name": "boruta", "namespace": "team"},
        "spec": {"provider": "boruta", "url": sim.url("boruta"),
                 "auth": {"oauth2ClientCredentials": {"tokenUrl": "oauth/token",
                     "clientId": sim.options.client_id,
                     "clientSecretRef": {"name": "client", "key": "secret"},
                     "scopes": ["identity-providers:manage:all"]}}}});
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "client", "namespace": "team"},
        "stringData": {"secret": sim.options.client_secret}});
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("api.yaml");
    std::fs::write(&file, stream(&[api, secret])).expect("written");
    let export = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_identity-operator"))
            .args(["export", "-f", file.to_str().expect("UTF-8")])
            .args(args)
            .env("KUBECONFIG", dir.path().join("none"))
            .output()
            .expect("export runs")
    };

    let out = export(&["--strict"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "#   IdentityBackend 44444444-4444-4444-8444-444444444444: the CRD cannot express it"
        ) && text.contains("metadataFields[dept].unknown_to_the_crd"),
        "{text}"
    );
    assert_eq!(
        count(&text, "IdentityBackend"),
        1,
        "the default backend only: {text}"
    );

    let out = export(&["--kinds", "OrgConnection", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    let skipped = listed["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 2, "{listed}");
    assert!(
        skipped
            .iter()
            .all(|s| s["reason"] == "--kinds leaves IdentityBackend out"),
        "{listed}"
    );

    let out = export(&["--kinds", "Nonsense"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown kind"));
}
