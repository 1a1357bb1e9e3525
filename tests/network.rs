//! End to end: the operator behind a network that loses, cuts short and replaces answers, and in
//! front of identity APIs that lag, hold duplicates or are down, on a real Kubernetes API
//! server and the simulator. A create whose outcome is unknown is never repeated blindly, a
//! 409 after the operator's own lost create is adoption, duplicates are named, unreadable
//! answers are transient and quote nothing, and a dead API is not stormed.

mod support;

use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};
use support::apis::{
    ORG, admin_app, backend, creating_apis, org_connection, secret, seed_connections,
};
use support::cluster::{Cluster, TestNamespace};
use support::operator::{
    Operator, apply, condition, get_json, wait_condition, wait_event, wait_for,
};
use support::sim::SimProcess;

const READY: Duration = Duration::from_secs(60);
/// The paths the three kinds create on, after each API's prefix.
const BACKENDS: &str = "/api/backends";
const CONNECTIONS: &str = "/api/v2/organizations";
const APPS: &str = "/api/web/v1/applications/adminapi";

struct Env {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    op: Option<Operator>,
    ldap_password: String,
}

impl Env {
    /// The three IdentityApis (2 s timeout), tenant connections `con_0`..`con_9`, and a bind
    /// password no output may ever show.
    async fn new(prefix: &str) -> Env {
        let (cluster, ns) = support::env::namespace(prefix);
        let sim = SimProcess::start(support::kinds::identity_backend::options());
        seed_connections(&sim, 0..10).await;
        let ldap_password = format!("bind-{:032x}", rand::rng().random::<u128>());
        let env = Env {
            cluster,
            ns,
            sim,
            op: None,
            ldap_password,
        };
        let mut docs = creating_apis(&env.sim, 2);
        docs.push(secret("ldap-bind", "password", &env.ldap_password));
        for doc in docs {
            env.apply(&doc);
        }
        env
    }

    fn start_operator(&mut self) {
        self.op = Some(Operator::start(self.cluster, &self.ns, &[]));
    }

    fn apply(&self, doc: &Value) {
        apply(self.cluster, &self.ns, &doc.to_string());
    }

    fn get(&self, what: &str) -> Option<Value> {
        get_json(&self.ns, self.cluster, what)
    }

    async fn ready(&self, what: &str) -> Value {
        wait_condition(self.cluster, &self.ns, what, "Ready", "True", None, READY).await
    }

    /// Waits until `what` reports `Synced=False` with `reason` for its generation.
    async fn synced_false(&self, what: &str, reason: &str) -> Value {
        wait_condition(
            self.cluster,
            &self.ns,
            what,
            "Synced",
            "False",
            Some(reason),
            READY,
        )
        .await
    }

    fn events(&self) -> String {
        self.ns.kubectl_ok(&["get", "events", "-o", "json"])
    }

    /// Calls of `api` with `method` on paths starting with `prefix` (after the API's own).
    async fn calls(&self, api: &str, method: &str, prefix: &str) -> usize {
        let path = format!("/{api}{prefix}");
        self.sim.log_since(api, 0).await["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                e["method"] == method && e["path"].as_str().is_some_and(|p| p.starts_with(&path))
            })
            .count()
    }

    /// The simulator's objects of one kind: Boruta backends, the organization connections of
    /// [`ORG`], Entrust applications.
    async fn remotes(&self, api: &str) -> Vec<Value> {
        let state = self.sim.state().await;
        let all = match api {
            "boruta" => &state["boruta"]["backends"],
            "auth0" => &state["auth0"]["organizationConnections"],
            _ => &state["entrust"]["applications"],
        };
        all.as_array().cloned().unwrap_or_default()
    }

    /// Neither the bind password nor an Entrust shared secret in any Event, status or log line.
    async fn assert_nothing_leaked(&self) {
        let mut secrets = vec![self.ldap_password.clone()];
        secrets.extend(
            self.remotes("entrust")
                .await
                .iter()
                .filter_map(|a| a["sharedSecret"].as_str().map(str::to_owned)),
        );
        let statuses = self.ns.kubectl_ok(&[
            "get",
            "identitybackends,orgconnections,adminapiapps",
            "-o",
            "json",
        ]);
        let log = self.op.as_ref().map(Operator::log).unwrap_or_default();
        for secret in secrets {
            for (what, text) in [
                ("Events", self.events()),
                ("status", statuses.clone()),
                ("log", log.clone()),
            ] {
                assert!(!text.contains(&secret), "a secret value in the {what}");
            }
        }
    }
}

fn three_of_each() -> Vec<(String, Value)> {
    let mut docs = vec![];
    for i in 0..3 {
        docs.push((
            format!("identitybackend/b{i}"),
            backend(&format!("b{i}"), &format!("Lost {i}"), 25),
        ));
        docs.push((
            format!("orgconnection/c{i}"),
            org_connection(&format!("c{i}"), i, true, &format!("lost-{i}")),
        ));
        docs.push((
            format!("adminapiapp/a{i}"),
            admin_app(&format!("a{i}"), &format!("lost-{i}"), "v1"),
        ));
    }
    docs
}

/// Every create's answer is lost after the API made the object (connection dropped, JSON cut
/// short): each is created once, found again by the next lookup, and owned as the operator's
/// creation (so deleting the resources deletes them).
#[tokio::test(flavor = "multi_thread")]
async fn lost_creates_are_found_again_never_repeated() {
    let mut env = Env::new("net-lost").await;
    env.sim
        .faults(json!([
            {"api": "boruta", "method": "POST", "path": BACKENDS, "dropAfterApplyRate": 1},
            {"api": "auth0", "method": "POST", "path": CONNECTIONS, "truncateRate": 1},
            {"api": "entrust", "method": "POST", "path": APPS, "dropAfterApplyRate": 1},
        ]))
        .await;
    env.start_operator();
    let docs = three_of_each();
    for (_, doc) in &docs {
        env.apply(doc);
    }
    for (what, _) in &docs {
        let obj = env.ready(what).await;
        assert_eq!(
            obj["status"]["created"], true,
            "{what} is the operator's creation"
        );
    }
    for (api, prefix) in [
        ("boruta", BACKENDS),
        ("auth0", CONNECTIONS),
        ("entrust", APPS),
    ] {
        assert_eq!(
            env.calls(api, "POST", prefix).await,
            3,
            "one create each on {api}"
        );
        assert_eq!(
            env.remotes(api).await.len() - usize::from(api == "boruta"),
            3,
            "{api}"
        );
    }
    // The application's shared secret was in the lost answer: a new one reached its Secret.
    let credentials = env
        .get("secret/a0-credentials")
        .expect("shared-secret Secret");
    assert!(credentials["data"]["sharedSecret"].is_string());
    env.assert_nothing_leaked().await;

    env.sim.clear_faults().await;
    for (what, _) in &docs {
        env.ns.kubectl_ok(&["delete", what, "--wait=false"]);
    }
    wait_for(
        READY,
        "the remote objects deleted with their resources",
        || async {
            let left: usize = [
                env.remotes("boruta").await.len() - 1,
                env.remotes("auth0").await.len(),
                env.remotes("entrust").await.len(),
            ]
            .iter()
            .sum();
            (left == 0).then_some(())
        },
    )
    .await;
}

/// Answers that are not the API's JSON (a captive portal's page, a PUT answer cut short that
/// would hold the bind password in plain text) fail the reconcile for a passing reason: the
/// resource stays Ready while it matched its spec, the condition describes the answer without
/// quoting it, and the work goes on once the answers are whole again.
#[tokio::test(flavor = "multi_thread")]
async fn unreadable_answers_keep_ready_and_quote_nothing() {
    let mut env = Env::new("net-unreadable").await;
    env.start_operator();
    env.apply(&backend("portal", "Portal", 25));
    env.ready("identitybackend/portal").await;

    env.sim
        .faults(json!({"api": "boruta", "method": "GET", "htmlRate": 1, "htmlStatus": 200}))
        .await;
    let obj = env
        .synced_false("identitybackend/portal", "IdentityApiError")
        .await;
    let (ready, _, _) = condition(&obj, "Ready").unwrap();
    assert_eq!(ready, "True", "a passing failure leaves Ready alone");
    let (_, _, message) = condition(&obj, "Synced").unwrap();
    assert!(
        message.contains(r#"an HTML page titled "200 OK""#),
        "{message}"
    );

    // Boruta answers a PUT with the whole backend, bind password included; the list a new
    // backend is looked up in is decoded as it arrives. Cut short, both fail the same way.
    for (method, name, title, port) in [
        ("PUT", "portal", "Portal", 587),
        ("GET", "second", "Second", 25),
    ] {
        env.sim
            .faults(json!({"api": "boruta", "method": method, "path": BACKENDS, "truncateRate": 1}))
            .await;
        env.apply(&backend(name, title, port));
        let obj = env
            .synced_false(&format!("identitybackend/{name}"), "IdentityApiError")
            .await;
        let (_, _, message) = condition(&obj, "Synced").unwrap();
        assert!(
            message.contains("JSON cut short after"),
            "{method}: {message}"
        );
    }
    env.assert_nothing_leaked().await;

    env.sim.clear_faults().await;
    env.ready("identitybackend/portal").await;
    env.ready("identitybackend/second").await;
    let remote = env.remotes("boruta").await;
    assert!(
        remote
            .iter()
            .any(|b| b["name"] == "Portal" && b["smtp_port"] == 587)
    );
}

/// The first create's answer is lost, and the API's reads lag behind its writes: the next
/// lookup misses the object and the create is refused as a duplicate (409; Boruta: 422 for the
/// id the operator chose). After the operator's own attempt that is adoption, not `Rejected`.
#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_after_its_own_lost_create_is_adoption() {
    let mut env = Env::new("net-own-conflict").await;
    let lag = |api: &str, prefix: &str| json!({"api": api, "method": "POST", "path": prefix, "dropAfterApplyRate": 1, "readLagMs": 8000});
    env.sim
        .faults(json!([
            lag("boruta", BACKENDS),
            lag("auth0", CONNECTIONS),
            lag("entrust", APPS)
        ]))
        .await;
    env.start_operator();
    env.apply(&backend("b0", "Lagging", 25));
    env.apply(&org_connection("c0", 0, true, "lagging"));
    env.apply(&admin_app("a0", "lagging", "v1"));
    wait_for(READY, "the first create of each kind", || async {
        let mut firsts = 0;
        for (api, prefix) in [
            ("boruta", BACKENDS),
            ("auth0", CONNECTIONS),
            ("entrust", APPS),
        ] {
            firsts += usize::from(env.calls(api, "POST", prefix).await > 0);
        }
        (firsts == 3).then_some(())
    })
    .await;
    // From now on answers arrive; reads still lag.
    let lag_only = |api: &str| json!({"api": api, "readLagMs": 8000});
    env.sim
        .faults(json!([
            lag_only("boruta"),
            lag_only("auth0"),
            lag_only("entrust")
        ]))
        .await;
    for what in ["identitybackend/b0", "orgconnection/c0", "adminapiapp/a0"] {
        let obj = env.ready(what).await;
        assert_eq!(obj["status"]["created"], true, "{what}");
    }
    for api in ["boruta", "auth0", "entrust"] {
        assert_eq!(
            env.remotes(api).await.len() - usize::from(api == "boruta"),
            1,
            "{api}"
        );
    }
    let events = env.events();
    assert!(!events.contains("\"Rejected\""), "never Rejected: {events}");
    assert!(
        events.contains("earlier attempt of the operator"),
        "{events}"
    );
}

/// Someone else makes the object between the operator's lookup (a lagging read) and its
/// create: the 409 is a conflict saying so, then the object is adopted as theirs (left in place
/// when the resource is deleted).
#[tokio::test(flavor = "multi_thread")]
async fn a_conflict_with_someone_elses_object_is_reported_then_adopted_as_theirs() {
    let mut env = Env::new("net-their-conflict").await;
    env.start_operator();
    env.ready("identityapi/auth0").await;
    env.ready("identityapi/entrust").await;
    env.sim
        .faults(json!([{"api": "auth0", "readLagMs": 8000}, {"api": "entrust", "readLagMs": 8000}]))
        .await;
    // Made through the vendors' APIs just now, by someone else.
    let http = reqwest::Client::new();
    let enabled = http
        .post(format!(
            "{}{CONNECTIONS}/{ORG}/connections",
            env.sim.url("auth0")
        ))
        .bearer_auth(env.sim.token("auth0").await)
        .json(&json!({"connection_id": "con_1"}))
        .send()
        .await
        .unwrap();
    assert!(enabled.status().is_success());
    let made = http
        .post(format!("{}{APPS}", env.sim.url("entrust")))
        .header("authorization", env.sim.token("entrust").await)
        .json(&json!({"name": "theirs", "roleId": "role-admin"}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success());
    env.apply(&org_connection("c1", 1, false, "theirs"));
    env.apply(&admin_app("theirs", "theirs", "v1"));
    for (what, name) in [("orgconnection/c1", "c1"), ("adminapiapp/theirs", "theirs")] {
        // The condition lasts only until the read catches up; its Event stays.
        wait_event(&env.ns, name, "Conflict", "the operator did not create it").await;
        let obj = env.ready(what).await;
        assert_eq!(
            obj["status"]["created"], false,
            "{what} is adopted, not created"
        );
    }
    env.sim.clear_faults().await;
    env.ns.kubectl_ok(&[
        "delete",
        "orgconnection/c1",
        "adminapiapp/theirs",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert_eq!(env.remotes("auth0").await.len(), 1, "left in place");
    assert_eq!(env.remotes("entrust").await.len(), 1, "left in place");
}

/// Several remote objects with the resource's name: the condition names every one, and the
/// operator neither picks one nor creates another.
#[tokio::test(flavor = "multi_thread")]
async fn duplicates_are_reported_with_every_id() {
    let mut env = Env::new("net-duplicates").await;
    let twin = |id: &str| json!({"id": id, "name": "Twin", "type": "Elixir.BorutaIdentity.Accounts.Internal"});
    let (b1, b2) = (
        "7d9a1f3e-0000-4000-8000-000000000001",
        "7d9a1f3e-0000-4000-8000-000000000002",
    );
    let (a1, a2) = ("app-twin-1", "app-twin-2");
    env.sim
        .seed(json!({
            "boruta": {"backends": [twin(b1), twin(b2)]},
            "entrust": {"applications": [{"id": a1, "name": "twin", "roleId": "role-admin"},
                                         {"id": a2, "name": "twin", "roleId": "role-admin"}]},
        }))
        .await;
    env.start_operator();
    env.apply(&backend("twin", "Twin", 25));
    env.apply(&admin_app("twin", "twin", "v1"));
    for (what, ids) in [
        ("identitybackend/twin", [b1, b2]),
        ("adminapiapp/twin", [a1, a2]),
    ] {
        let obj = wait_condition(
            env.cluster,
            &env.ns,
            what,
            "Ready",
            "False",
            Some("Conflict"),
            READY,
        )
        .await;
        let (_, _, message) = condition(&obj, "Ready").unwrap();
        for id in ids {
            assert!(message.contains(id), "{id} in {message:?}");
        }
    }
    // A few drift checks later, still nothing created.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.calls("boruta", "POST", BACKENDS).await, 0);
    assert_eq!(env.calls("entrust", "POST", APPS).await, 0);
    assert!(env.events().contains("\"Conflict\""));
}

/// The API fails (the load balancer's 503 page) or nothing listens at all, under an operator
/// holding a token and under a fresh one with a dozen resources to check: the connection backs
/// off as a whole, a handful of token requests in half a minute, the resources synced before stay Ready with
/// `Synced=False, reason=IdentityApiUnavailable`, and they are synced again within one backoff
/// period of the API's return.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_api_is_not_stormed() {
    let mut env = Env::new("net-dead").await;
    // An IdentityApi nothing answers: a port just closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut nowhere = creating_apis(&env.sim, 2)[1].clone();
    nowhere["metadata"]["name"] = json!("nowhere");
    nowhere["spec"]["url"] = json!(format!("http://{closed}/boruta"));
    env.apply(&nowhere);
    let names: Vec<String> = (0..12).map(|i| format!("d{i}")).collect();
    env.start_operator();
    for name in &names {
        env.apply(&backend(name, name, 25));
    }
    for name in &names {
        env.ready(&format!("identitybackend/{name}")).await;
    }
    // Down while the operator holds a valid token: its drift checks meet the 503 page, and
    // calls without an answer in a row make the connection back off too.
    env.sim
        .faults(json!({"api": "boruta", "htmlRate": 1, "htmlStatus": 503}))
        .await;
    for name in &names {
        env.synced_false(&format!("identitybackend/{name}"), "IdentityApiUnavailable")
            .await;
    }
    env.op.as_mut().unwrap().kill();
    let since = env.sim.last_seq().await;
    let down = Instant::now();
    env.start_operator();
    for i in 0..3 {
        let mut lost = backend(&format!("n{i}"), &format!("Nowhere {i}"), 25);
        lost["spec"]["apiRef"]["name"] = json!("nowhere");
        env.apply(&lost);
    }
    for name in &names {
        let obj = env
            .synced_false(&format!("identitybackend/{name}"), "IdentityApiUnavailable")
            .await;
        let (ready, _, _) = condition(&obj, "Ready").unwrap();
        assert_eq!(ready, "True", "{name} keeps Ready");
    }
    for i in 0..3 {
        let what = format!("identitybackend/n{i}");
        wait_condition(
            env.cluster,
            &env.ns,
            &what,
            "Ready",
            "False",
            Some("IdentityApiUnavailable"),
            READY,
        )
        .await;
    }
    wait_condition(
        env.cluster,
        &env.ns,
        "identityapi/boruta",
        "Ready",
        "False",
        Some("IdentityApiUnavailable"),
        READY,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(25).saturating_sub(down.elapsed())).await;
    let window = down.elapsed();
    let tokens = env.sim.log_since("boruta", since).await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["path"] == "/boruta/oauth/token")
        .count();
    let metrics = env.op.as_ref().unwrap().metrics().await;
    // 2 s, 4 s, 8 s, 16 s apart (±20 %): at most five attempts in 25 s, and one more for the
    // IdentityApi's own check racing the first.
    assert!(tokens <= 6, "{tokens} token requests in {window:?}");
    let refused: u64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("identity_operator_identity_api_calls_total")
                && l.contains("method=\"LOGIN\"")
                && l.contains("status=\"error\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        (1..=6).contains(&refused),
        "{refused} logins to a closed port in {window:?}"
    );
    let ns = &env.ns.name;
    for api in ["boruta", "nowhere"] {
        let line =
            format!("identity_operator_identity_api_unavailable{{connection=\"{ns}/{api}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    env.sim.clear_faults().await;
    let back = Instant::now();
    for name in &names {
        wait_condition(
            env.cluster,
            &env.ns,
            &format!("identitybackend/{name}"),
            "Synced",
            "True",
            None,
            READY,
        )
        .await;
    }
    assert!(
        back.elapsed() < Duration::from_secs(46),
        "synced {:?} after the API returned",
        back.elapsed()
    );
}
