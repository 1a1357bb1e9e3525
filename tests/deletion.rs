//! Deleting things together, the way `kubectl delete -f`, Argo CD's prune or a namespace
//! deletion do, in no particular order: the connection a resource needs to delete its remote
//! object (its IdentityApi and the Secret holding its credentials) is protected by the in-use
//! finalizer until the last such resource is gone, so nothing is left behind in the identity
//! system, every Orphan is kept, and nothing stays stuck. The real operator binary, the real
//! API server and the simulator; namespace deletion at scale, and an operator restart in the
//! middle of one, are scenarios of `tests/reliability.rs`.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, IN_USE_FINALIZER, TestNamespace, ensure_cluster};
use support::manifests::{document, finalizers, identity_api, secret};
use support::operator::{
    Operator, apply, condition, get_json, install_crds, wait_condition, wait_for,
};
use support::operator::{events_of, wait_event};
use support::sim::{SimOptions, SimProcess};

const WAIT: Duration = Duration::from_secs(60);

/// `kind/name` of every managed resource the examples hold, and whether the operator creates
/// (and so deletes) a remote object for it.
const EXAMPLE_RESOURCES: [(&str, bool); 5] = [
    ("identitybackend/corporate-ldap", true),
    ("orgconnection/acme-corporate-sso", true),
    ("adminapiapp/ci-pipeline", true),
    ("ldapsettings/acme-ldap", false),
    ("authenticationsettings/master-authentication", false),
];

/// The examples, their IdentityApis pointed at `sim`, in a directory of their own.
fn examples_for(sim: &SimProcess) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for entry in std::fs::read_dir(&examples).expect("examples/") {
        let path = entry.expect("an example").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("example text");
            let text = text.replace("http://127.0.0.1:18080", sim.base_url());
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).expect("copy");
        }
    }
    dir
}

/// The simulator the examples expect: client `demo`, seeded with `examples/sim-seed/`.
async fn example_sim() -> SimProcess {
    let sim = SimProcess::start(SimOptions {
        client_id: "demo".into(),
        client_secret: "demo-secret".into(),
        ..SimOptions::default()
    });
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sim-seed");
    for entry in std::fs::read_dir(seeds).expect("examples/sim-seed/") {
        let text = std::fs::read_to_string(entry.expect("a seed").path()).expect("seed text");
        sim.seed(serde_json::from_str(&text).expect("seed JSON"))
            .await;
    }
    sim
}

/// The remote objects the examples' creatable resources stand for.
fn example_remotes(state: &Value) -> Vec<String> {
    let list = |api: &str, items: &str| state[api][items].as_array().cloned().unwrap_or_default();
    let mut found = Vec::new();
    for b in list("boruta", "backends") {
        if b["name"] == "Corporate LDAP" {
            found.push("boruta backend Corporate LDAP".into());
        }
    }
    for c in list("auth0", "organizationConnections") {
        if c["organization_id"] == "org_acme" && c["connection_id"] == "con_corporate_saml" {
            found.push("auth0 org_acme/con_corporate_saml".into());
        }
    }
    for a in list("entrust", "applications") {
        if a["name"] == "ci-pipeline" {
            found.push("entrust application ci-pipeline".into());
        }
    }
    found
}

async fn ready(cluster: &Cluster, ns: &TestNamespace, what: &str) -> Value {
    wait_condition(cluster, ns, what, "Ready", "True", None, WAIT).await
}

/// Waits until `what` carries the in-use finalizer (`held`) or not.
async fn in_use(cluster: &Cluster, ns: &TestNamespace, what: &str, held: bool) -> Value {
    let desc = format!("{what} in use: {held}");
    wait_for(WAIT, &desc, || async {
        let obj = get_json(ns, cluster, what)?;
        let has = finalizers(&obj).iter().any(|f| f == IN_USE_FINALIZER);
        (has == held).then_some(obj)
    })
    .await
}

async fn gone(cluster: &Cluster, ns: &TestNamespace, what: &str) {
    wait_for(WAIT, &format!("{what} gone"), || async {
        get_json(ns, cluster, what).is_none().then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_delete_of_the_whole_example_directory_leaves_nothing_behind() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "delete-examples");
    let sim = example_sim().await;
    let dir = examples_for(&sim);
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    let _op = Operator::start(cluster, &ns, &[]);
    ns.kubectl_ok(&["apply", "-f", dir_arg]);
    for (what, _) in EXAMPLE_RESOURCES {
        ready(cluster, &ns, what).await;
    }
    let created = example_remotes(&sim.state().await);
    assert_eq!(created.len(), 3, "{created:?}");
    // The connections of the resources that delete something on deletion are protected; those
    // whose deletion leaves the remote settings alone are not.
    for (api, protected) in [
        ("boruta", true),
        ("auth0", true),
        ("entrust", true),
        ("vcd-acme", false),
        ("xelion-master", false),
    ] {
        in_use(cluster, &ns, &format!("identityapi/{api}"), protected).await;
    }
    in_use(cluster, &ns, "secret/boruta-admin-client", true).await;

    // kubectl deletes in file order: Secrets and IdentityApis before the resources using them.
    ns.kubectl_ok(&["delete", "-f", dir_arg, "--timeout=120s"]);

    assert_eq!(example_remotes(&sim.state().await), Vec::<String>::new());
    let left = ns.kubectl_ok(&["get", "identity,secrets,configmaps", "-o", "name"]);
    let left: Vec<&str> = left
        .lines()
        .filter(|l| !l.contains("default-token") && !l.contains("kube-root-ca"))
        .collect();
    assert!(left.is_empty(), "left over: {left:?}");
    for (what, creates) in EXAMPLE_RESOURCES {
        let name = what.split('/').nth(1).unwrap();
        let events = events_of(&ns, name);
        assert!(
            !events.iter().any(|e| e.starts_with("Orphaned")),
            "{what}: {events:?}"
        );
        if creates {
            assert!(
                events.iter().any(|e| e.starts_with("Deleted")),
                "{what}: {events:?}"
            );
        }
    }
}

/// A Secret, an IdentityApi and three backends against Boruta: two the operator creates, one
/// with `deletionPolicy: Orphan`. Returns the operator once all are Ready.
async fn boruta_world(cluster: &Cluster, ns: &TestNamespace, sim: &SimProcess) -> Operator {
    install_crds(cluster);
    let value = sim.options.client_secret.as_str();
    let docs = [
        secret("boruta-client", "secret", value),
        identity_api(sim, "boruta", "boruta", "boruta-client", "secret"),
        backend("made-1", json!({})),
        backend("made-2", json!({})),
        backend("kept", json!({"deletionPolicy": "Orphan"})),
    ];
    for doc in docs {
        apply(cluster, ns, &doc.to_string());
    }
    let op = Operator::start(cluster, ns, &[]);
    for name in ["made-1", "made-2", "kept"] {
        ready(cluster, ns, &format!("identitybackend/{name}")).await;
    }
    op
}

fn backend(name: &str, extra: Value) -> Value {
    let mut spec =
        json!({"apiRef": {"name": "boruta"}, "name": name, "passwordHashingAlg": "argon2"});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    document("IdentityBackend", name, spec)
}

/// Names of the backends in Boruta, but its built-in `Default`.
async fn backends(sim: &SimProcess) -> Vec<String> {
    let state = sim.state().await;
    let mut names: Vec<String> = state["boruta"]["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["name"].as_str().map(str::to_owned))
        .filter(|name| name != "Default")
        .collect();
    names.sort();
    names
}

fn delete_backends(ns: &TestNamespace) {
    let names = ["made-1", "made-2", "kept"].map(|n| format!("identitybackend/{n}"));
    let mut args = vec!["delete", "--wait=false"];
    args.extend(names.iter().map(String::as_str));
    ns.kubectl_ok(&args);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_identity_api_deleted_first_serves_its_users_until_they_are_gone() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "delete-api-first");
    let sim = SimProcess::start(SimOptions::default());
    let _op = boruta_world(cluster, &ns, &sim).await;
    // The Orphan one does not hold the connection: two resources do.
    in_use(cluster, &ns, "identityapi/boruta", true).await;
    in_use(cluster, &ns, "secret/boruta-client", true).await;

    ns.kubectl_ok(&["delete", "identityapi/boruta", "--wait=false"]);
    let desc = "identityapi/boruta Deleting=True InUse";
    let held = wait_for(WAIT, desc, || async {
        let obj = get_json(&ns, cluster, "identityapi/boruta")?;
        let (status, reason, message) = condition(&obj, "Deleting")?;
        (status == "True" && reason == "InUse").then_some(message)
    })
    .await;
    assert!(held.contains("waiting for 2 resources"), "{held}");
    assert!(held.contains("IdentityBackend"), "{held}");
    assert!(
        held.contains("/made-1") && held.contains("/made-2"),
        "{held}"
    );
    assert!(!held.contains("/kept"), "{held}");
    wait_event(&ns, "boruta", "InUse", "waiting for 2 resources").await;

    // Still usable while it waits: an edit reaches Boruta.
    let edited = backend("made-1", json!({"smtpPort": 2525}));
    apply(cluster, &ns, &edited.to_string());
    wait_for(WAIT, "the edit in Boruta", || async {
        let state = sim.state().await;
        let found = state["boruta"]["backends"]
            .as_array()?
            .iter()
            .any(|b| b["name"] == "made-1" && b["smtp_port"] == 2525);
        found.then_some(())
    })
    .await;

    delete_backends(&ns);
    gone(cluster, &ns, "identityapi/boruta").await;
    for name in ["made-1", "made-2", "kept"] {
        gone(cluster, &ns, &format!("identitybackend/{name}")).await;
    }
    assert_eq!(backends(&sim).await, vec!["kept".to_owned()]);
    // The Secret was not deleted: it stays, without the finalizer.
    in_use(cluster, &ns, "secret/boruta-client", false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_secret_deleted_first_serves_until_its_users_are_gone() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "delete-secret-first");
    let sim = SimProcess::start(SimOptions::default());
    let _op = boruta_world(cluster, &ns, &sim).await;
    in_use(cluster, &ns, "secret/boruta-client", true).await;

    ns.kubectl_ok(&["delete", "secret/boruta-client", "--wait=false"]);
    let event = wait_event(&ns, "boruta-client", "InUse", "IdentityApi boruta needs it").await;
    assert!(event.contains("2 resources"), "{event}");
    let secret = get_json(&ns, cluster, "secret/boruta-client").expect("held");
    assert!(
        secret["metadata"]["deletionTimestamp"].is_string(),
        "{secret}"
    );
    // The connection still works: it stays Ready, and so do its users.
    tokio::time::sleep(Duration::from_secs(3)).await;
    ready(cluster, &ns, "identityapi/boruta").await;
    ready(cluster, &ns, "identitybackend/made-1").await;

    delete_backends(&ns);
    gone(cluster, &ns, "secret/boruta-client").await;
    for name in ["made-1", "made-2", "kept"] {
        gone(cluster, &ns, &format!("identitybackend/{name}")).await;
    }
    assert_eq!(backends(&sim).await, vec!["kept".to_owned()]);
    in_use(cluster, &ns, "identityapi/boruta", false).await;
    for name in ["made-1", "made-2"] {
        let events = events_of(&ns, name);
        assert!(
            events.iter().any(|e| e.starts_with("Deleted")),
            "{name}: {events:?}"
        );
    }
}
