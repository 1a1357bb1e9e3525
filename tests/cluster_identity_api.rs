//! ClusterIdentityApi end to end, the way a platform team uses it: one Boruta connection whose
//! credentials live in the operator's namespace, used by the namespaces its `allowedNamespaces`
//! names or selects, refused (with zero identity-API calls) everywhere else, re-evaluated when a
//! namespace is relabelled, narrowed by kind and read-only, and held while in use. The real
//! operator binary under the chart's RBAC, the real API server and the simulator.
//!
//! Every operator of the test suite sees every ClusterIdentityApi; each test's operator manages
//! only its own (`--cluster-identity-api-selector`), the others only read them.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, IN_USE_FINALIZER, TestNamespace, ensure_cluster};
use support::manifests::{document, finalizers, secret};
use support::operator::{
    E2E_NAMESPACE, Operator, apply, condition, get_json, install_crds, wait_condition, wait_for,
};
use support::operator::{events_of, operator_kubeconfig, wait_event};
use support::sim::{SimOptions, SimProcess};

const WAIT: Duration = Duration::from_secs(60);
const SELECT: &str = "identity-operator.dev/e2e-cidapi";

/// One test's world: its connection, its namespaces and its operator.
struct World {
    cluster: &'static Cluster,
    sim: SimProcess,
    /// Name of the ClusterIdentityApi, of its Secret, and the value of the test's label.
    name: String,
    /// Allowed by name.
    team_a: TestNamespace,
    /// Allowed by its label `team=<name>`.
    team_b: TestNamespace,
    /// Neither.
    other: TestNamespace,
    _operator: Operator,
}

impl World {
    /// A Boruta ClusterIdentityApi allowing `team_a` by name and namespaces labelled
    /// `team=<name>` (`team_b`), plus `extra` in its spec.
    async fn new(prefix: &str, extra: Value) -> World {
        World::with_operator(prefix, extra, &[]).await
    }

    /// `new`, the operator started with `operator_args` too.
    async fn with_operator(prefix: &str, extra: Value, operator_args: &[&str]) -> World {
        let cluster = ensure_cluster();
        install_crds(cluster);
        let sim = SimProcess::start(SimOptions::default());
        let team_a = TestNamespace::new(cluster, &format!("{prefix}-a"));
        let team_b = TestNamespace::new(cluster, &format!("{prefix}-b"));
        let other = TestNamespace::new(cluster, &format!("{prefix}-x"));
        let name = team_a.name.replace("-a-", "-");
        relabel(cluster, &team_b, &format!("team={name}"));
        let value = sim.options.client_secret.as_str();
        // The credentials namespace is the operator's own, made with its identity: on a fresh
        // cluster it does not exist before that.
        operator_kubeconfig(cluster);
        cluster.kubectl_stdin_ok(
            &["apply", "-n", E2E_NAMESPACE, "-f", "-"],
            &secret(&name, "secret", value).to_string(),
        );
        let mut spec = json!({
            "provider": "boruta", "url": sim.url("boruta"),
            "auth": {"oauth2ClientCredentials": {"tokenUrl": "oauth/token",
                "clientId": sim.options.client_id, "scopes": ["identity-providers:manage:all"],
                "clientSecretRef": {"name": name, "key": "secret"}}},
            "allowedNamespaces": {"names": [team_a.name],
                "selector": {"matchLabels": {"team": name}}},
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let mut api = document("ClusterIdentityApi", &name, spec);
        api["metadata"]["labels"] = json!({SELECT: name});
        cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &api.to_string());
        let selector = format!("{SELECT}={name}");
        let mut args = vec![
            "--namespace",
            &team_b.name,
            "--namespace",
            &other.name,
            "--manage-cluster-identity-apis",
            "--cluster-identity-api-selector",
            &selector,
        ];
        args.extend_from_slice(operator_args);
        let operator = Operator::start(cluster, &team_a, &args);
        World {
            cluster,
            sim,
            name,
            team_a,
            team_b,
            other,
            _operator: operator,
        }
    }

    /// An IdentityBackend in `ns` using the ClusterIdentityApi.
    fn backend(&self, ns: &TestNamespace, name: &str, extra: Value) {
        let mut spec = json!({"apiRef": {"kind": "ClusterIdentityApi", "name": self.name},
                              "name": name, "passwordHashingAlg": "argon2"});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        apply(
            self.cluster,
            ns,
            &document("IdentityBackend", name, spec).to_string(),
        );
    }

    /// Rewrites the credential Secret in the credentials namespace.
    fn rotate(&self, value: &str) {
        self.cluster.kubectl_stdin_ok(
            &["apply", "-n", E2E_NAMESPACE, "-f", "-"],
            &secret(&self.name, "secret", value).to_string(),
        );
    }

    /// Waits for the ClusterIdentityApi's Ready to be `status`.
    async fn connection_ready(&self, status: &str) -> Value {
        let desc = format!("ClusterIdentityApi Ready={status}");
        wait_for(WAIT, &desc, || async {
            let api = self.connection()?;
            (condition(&api, "Ready")?.0 == status).then_some(api)
        })
        .await
    }

    async fn ready(&self, ns: &TestNamespace, name: &str) -> Value {
        let what = format!("identitybackend/{name}");
        wait_condition(self.cluster, ns, &what, "Ready", "True", None, WAIT).await
    }

    /// Waits for `ConnectionNotAllowed`; returns its message.
    async fn refused(&self, ns: &TestNamespace, name: &str) -> String {
        let what = format!("identitybackend/{name}");
        let reason = Some("ConnectionNotAllowed");
        let obj = wait_condition(self.cluster, ns, &what, "Ready", "False", reason, WAIT).await;
        condition(&obj, "Ready").expect("Ready").2
    }

    fn connection(&self) -> Option<Value> {
        get_json(
            &self.team_a,
            self.cluster,
            &format!("clusteridentityapi/{}", self.name),
        )
    }

    fn credential(&self) -> Option<Value> {
        let out = self.cluster.kubectl(&[
            "get",
            "secret",
            &self.name,
            "-n",
            E2E_NAMESPACE,
            "-o",
            "json",
        ]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).expect("Secret JSON"))
    }

    /// Identity-API calls so far but the logins (the connection's own Ready check logs in).
    async fn calls(&self) -> usize {
        let log = self.sim.log().await;
        log["entries"].as_array().map_or(0, Vec::len) - self.logins().await
    }

    async fn logins(&self) -> usize {
        let log = self.sim.log().await;
        let entries = log["entries"].as_array().cloned().unwrap_or_default();
        let token = |e: &&Value| {
            e["path"]
                .as_str()
                .unwrap_or_default()
                .contains("oauth/token")
        };
        entries.iter().filter(token).count()
    }

    async fn backends(&self) -> Vec<String> {
        let state = self.sim.state().await;
        let mut names: Vec<String> = state["boruta"]["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["name"].as_str().map(str::to_owned))
            .filter(|n| n != "Default")
            .collect();
        names.sort();
        names
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let api = format!("clusteridentityapi/{}", self.name);
        let _ = self.cluster.kubectl(&["delete", &api, "--wait=false"]);
        let secret = format!("secret/{}", self.name);
        let _ = self
            .cluster
            .kubectl(&["delete", &secret, "-n", E2E_NAMESPACE, "--wait=false"]);
        // Whatever the operator could not release any more (it stops with the test).
        let release = r#"{"metadata":{"finalizers":null}}"#;
        for (what, ns) in [(api.as_str(), "default"), (secret.as_str(), E2E_NAMESPACE)] {
            let _ = self
                .cluster
                .kubectl(&["patch", what, "-n", ns, "--type", "merge", "-p", release]);
        }
    }
}

/// Sets (`key=value`) or removes (`key-`) a label of `ns`.
fn relabel(cluster: &Cluster, ns: &TestNamespace, label: &str) {
    cluster.kubectl_ok(&["label", "namespace", &ns.name, label, "--overwrite"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_namespaces_share_one_connection_and_the_others_are_refused_without_a_call() {
    let w = World::new("cidapi-share", json!({})).await;
    // Refused first: not one of its calls reaches the identity API.
    w.backend(&w.other, "intruder", json!({}));
    let why = w.refused(&w.other, "intruder").await;
    assert!(
        why.contains(&w.other.name) && why.contains("allowedNamespaces"),
        "{why}"
    );
    wait_event(
        &w.other,
        "intruder",
        "ConnectionNotAllowed",
        "allowedNamespaces",
    )
    .await;
    assert_eq!(w.calls().await, 0, "a refused resource calls nothing");

    // By name and by selector: both work through one client (one login).
    w.backend(&w.team_a, "team-a", json!({}));
    w.backend(&w.team_b, "team-b", json!({}));
    w.ready(&w.team_a, "team-a").await;
    w.ready(&w.team_b, "team-b").await;
    assert_eq!(w.backends().await, ["team-a", "team-b"]);
    assert_eq!(w.logins().await, 1, "one token for every namespace");

    // Its status: Ready, and its users per namespace (the refused one names it too).
    let desc = "ClusterIdentityApi Ready with its users";
    let users = wait_for(WAIT, desc, || async {
        let api = w.connection()?;
        let (status, _, _) = condition(&api, "Ready")?;
        let users = api["status"]["users"].clone();
        (status == "True" && users.as_object()?.len() == 3).then_some(users)
    })
    .await;
    for ns in [&w.team_a, &w.team_b, &w.other] {
        assert_eq!(users[&ns.name], 1, "{users}");
    }

    // Relabelled both ways, no restart: the outsider gets in, team B is shut out.
    relabel(w.cluster, &w.other, &format!("team={}", w.name));
    w.ready(&w.other, "intruder").await;
    relabel(w.cluster, &w.team_b, "team-");
    // Shut out from now on: the next edit is refused before any call.
    w.backend(&w.team_b, "team-b", json!({"smtpPort": 2525}));
    let why = w.refused(&w.team_b, "team-b").await;
    assert!(why.contains(&w.team_b.name), "{why}");
    let state = w.sim.state().await;
    let edited = state["boruta"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["name"] == "team-b" && b["smtp_port"] == 2525);
    assert!(!edited, "a refused edit reached Boruta");
}

#[tokio::test(flavor = "multi_thread")]
async fn kinds_and_read_only_narrow_who_may_use_it() {
    // Only OrgConnections may use the first connection.
    let w = World::new("cidapi-kinds", json!({"allowedKinds": ["OrgConnection"]})).await;
    w.backend(&w.team_a, "not-a-kind", json!({}));
    let why = w.refused(&w.team_a, "not-a-kind").await;
    assert!(why.contains("allowedKinds"), "{why}");
    assert_eq!(w.calls().await, 0);
    drop(w);

    // A read-only one: Apply is refused, Observe reads.
    let w = World::new("cidapi-ro", json!({"readOnly": true})).await;
    w.backend(&w.team_a, "writer", json!({}));
    let why = w.refused(&w.team_a, "writer").await;
    assert!(why.contains("readOnly"), "{why}");
    assert_eq!(w.calls().await, 0);
    // Boruta's built-in backend, observed.
    let observe = json!({"name": "Default", "managementPolicy": "Observe"});
    w.backend(&w.team_a, "observer", observe);
    // Whatever it finds, it is let through: a Ready condition for another reason than access.
    let reason = wait_for(WAIT, "the Observe resource reconciled", || async {
        let obj = get_json(&w.team_a, w.cluster, "identitybackend/observer")?;
        condition(&obj, "Ready").map(|(_, reason, _)| reason)
    })
    .await;
    assert_ne!(reason, "ConnectionNotAllowed");
    assert_eq!(w.backends().await, Vec::<String>::new(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_it_waits_for_its_users() {
    let w = World::new("cidapi-held", json!({})).await;
    w.backend(&w.team_a, "held-a", json!({}));
    w.backend(&w.team_b, "held-b", json!({}));
    w.ready(&w.team_a, "held-a").await;
    w.ready(&w.team_b, "held-b").await;
    let held = |obj: Option<Value>| {
        obj.is_some_and(|o| finalizers(&o).iter().any(|f| f == IN_USE_FINALIZER))
    };
    wait_for(WAIT, "connection and Secret in use", || async {
        (held(w.connection()) && held(w.credential())).then_some(())
    })
    .await;

    let api = format!("clusteridentityapi/{}", w.name);
    w.cluster.kubectl_ok(&["delete", &api, "--wait=false"]);
    let message = wait_for(WAIT, "Deleting=True InUse", || async {
        let (status, reason, message) = condition(&w.connection()?, "Deleting")?;
        (status == "True" && reason == "InUse").then_some(message)
    })
    .await;
    assert!(message.contains("waiting for 2 resources"), "{message}");
    assert!(
        message.contains(&format!("{}/held-a", w.team_a.name)),
        "{message}"
    );
    // And an Event says so, in `kube-system`, where the Events of cluster-scoped objects go.
    let about = format!("involvedObject.name={}", w.name);
    wait_for(WAIT, "an InUse Event", || async {
        let args = [
            "get",
            "events",
            "-n",
            "kube-system",
            "--field-selector",
            &about,
        ];
        let out = w.cluster.kubectl(&[&args[..], &["-o", "json"]].concat());
        let events: Value = serde_json::from_slice(&out.stdout).ok()?;
        let in_use = |e: &Value| e["reason"] == "InUse";
        events["items"].as_array()?.iter().any(in_use).then_some(())
    })
    .await;

    // Still usable: its users delete their remote objects through it, then it goes.
    for (ns, name) in [(&w.team_a, "held-a"), (&w.team_b, "held-b")] {
        ns.kubectl_ok(&["delete", &format!("identitybackend/{name}"), "--wait=false"]);
    }
    wait_for(WAIT, "the ClusterIdentityApi gone", || async {
        w.connection().is_none().then_some(())
    })
    .await;
    assert_eq!(w.backends().await, Vec::<String>::new());
    for (ns, name) in [(&w.team_a, "held-a"), (&w.team_b, "held-b")] {
        let events = events_of(ns, name);
        assert!(
            events.iter().any(|e| e.starts_with("Deleted")),
            "{events:?}"
        );
    }
    wait_for(WAIT, "the Secret released", || async {
        (!held(w.credential())).then_some(())
    })
    .await;
}

/// A credential Secret rotated in the credentials namespace, which the operator's namespaces do
/// not include, is taken at once: the resync is an hour, so only the Secret's own change can
/// requeue the connection and the resources its old value failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_credential_is_taken_at_once() {
    let resync = ["--resync-interval", "1h"];
    let w = World::with_operator("cidapi-rotate", json!({}), &resync).await;
    w.connection_ready("True").await;

    // A wrong value: the connection says so, and a new resource fails to authenticate.
    w.rotate("not-the-client-secret");
    let api = w.connection_ready("False").await;
    let (_, reason, _) = condition(&api, "Ready").expect("Ready");
    assert_eq!(reason, "AuthenticationFailed", "{api}");
    w.backend(&w.team_a, "rotated", json!({}));
    let what = "identitybackend/rotated";
    let failed = Some("AuthenticationFailed");
    wait_condition(w.cluster, &w.team_a, what, "Ready", "False", failed, WAIT).await;

    // The right value again: both recover well within the resync.
    w.rotate(&w.sim.options.client_secret);
    w.connection_ready("True").await;
    w.ready(&w.team_a, "rotated").await;
    assert_eq!(w.backends().await, ["rotated"]);
}

/// Resources of kind IdentityBackend in `ns` whose Ready is True.
fn ready_backends(w: &World, ns: &TestNamespace) -> usize {
    let list = get_json(ns, w.cluster, "identitybackends").unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|b| condition(b, "Ready").is_some_and(|c| c.0 == "True"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_namespace_does_not_starve_a_small_one() {
    // Two calls at once and a second each: 40 backends in one namespace take 20 s, more than
    // kubectl takes to create them, so most of them are queued when the small namespace's are.
    let w = World::new("cidapi-fair", json!({"rateLimit": {"maxConcurrent": 2}})).await;
    w.connection_ready("True").await;
    w.sim
        .faults(json!({"api": "boruta", "latencyMs": 1000}))
        .await;
    let spec = |name: &str| {
        json!({"apiRef": {"kind": "ClusterIdentityApi", "name": w.name},
               "name": name, "passwordHashingAlg": "argon2"})
    };
    let many = |prefix: &str, n: usize| -> String {
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let name = format!("{prefix}-{i}");
                document("IdentityBackend", &name, spec(&name))
            })
            .collect();
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    };
    apply(w.cluster, &w.team_a, &many("big", 40));
    let started = std::time::Instant::now();
    apply(w.cluster, &w.team_b, &many("small", 3));

    // The small namespace is served beside the big one, not after it.
    let big_ready = wait_for(
        Duration::from_secs(120),
        "the small namespace Ready",
        || async { (ready_backends(&w, &w.team_b) == 3).then(|| ready_backends(&w, &w.team_a)) },
    )
    .await;
    let small = started.elapsed();
    assert!(
        big_ready <= 30,
        "the small namespace waited for the big one: {big_ready} of its 40 were Ready first"
    );
    wait_for(
        Duration::from_secs(180),
        "the big namespace Ready",
        || async { (ready_backends(&w, &w.team_a) == 40).then_some(()) },
    )
    .await;
    eprintln!(
        "the small namespace was Ready {:.1} s after it was applied, with {big_ready} of the \
         big one's 40; the big one {:.1} s after it",
        small.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    // Turns are put off without a call: every backend was created once.
    assert_eq!(w.backends().await.len(), 43);
}
