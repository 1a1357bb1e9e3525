//! The reliability suite: the operator under injected identity-API faults (lost, cut-short and
//! replaced answers among them), SIGKILLs at random moments, a Kubernetes API server outage,
//! identity APIs down for a minute, a leader failover and namespace deletions (one with a
//! SIGKILL halfway), on the real local API server and the simulator. Every scenario checks what
//! a user cares about (no duplicate remote object, no lost update, no stuck resource or
//! finalizer, no leaked secret) and the run ends with one summary table.
//!
//! `scripts/test.sh` runs it at CI scale (30 resources, 60 under faults and with the APIs down,
//! 5 kills, teardowns of 300). The long run:
//!
//!     RELIABILITY_SCALE=full cargo test --release --test reliability
//!
//! (500 resources, 10 000 with the APIs down, 20 kills, teardowns of 1,000). `cargo test --test
//! reliability -- faults crashes` runs only the scenarios named; `RELIABILITY_WHILE_DOWN=N` sets
//! the number of resources while the APIs are down.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use rand::Rng;
use serde_json::{Value, json};
use support::apis::{
    GROUP_VERSION, ORG, admin_app, backend, creating_apis, org_connection, secret, seed_connections,
};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{Operator, condition, events_of};
use support::sim::{SimOptions, SimProcess};

#[derive(Clone, Copy, Debug)]
struct Scale {
    resources: usize,
    kills: usize,
    /// Resources in the namespace a teardown deletes.
    teardown: usize,
    converge: Duration,
    /// Resources of the faults scenario.
    under_faults: usize,
    /// Resources while the identity APIs are down.
    while_down: usize,
}

impl Scale {
    fn from_env() -> Scale {
        let scale = match std::env::var("RELIABILITY_SCALE").as_deref() {
            Ok("full") => Scale {
                resources: 500,
                kills: 20,
                teardown: 1000,
                converge: Duration::from_secs(1800),
                under_faults: 500,
                while_down: 10_000,
            },
            _ => Scale {
                resources: 30,
                kills: 5,
                teardown: 300,
                converge: Duration::from_secs(150),
                under_faults: 60,
                while_down: 60,
            },
        };
        // A size between the two for the api-down scenario, when looking into it.
        match std::env::var("RELIABILITY_WHILE_DOWN").map(|n| n.parse()) {
            Ok(Ok(while_down)) => Scale {
                while_down,
                converge: scale.converge.max(Duration::from_secs(1800)),
                ..scale
            },
            _ => scale,
        }
    }
}

/// How long the identity APIs stay down in the `api_down` scenario.
const DOWN_FOR: Duration = Duration::from_secs(60);
/// What a user may wait for everything to be in place under 25 % faults: create, edit and
/// delete a third, each to convergence.
const UNDER_FAULTS_WITHIN: Duration = Duration::from_secs(180);
/// The connection breaker's longest wait, jitter included (`identity::breaker::MAX_WAIT`
/// + 20 %): how late an operator may notice that its API is back.
const BACKOFF_PERIOD: Duration = Duration::from_secs(36);

// --- the managed resources: a mix of three kinds over three APIs ---------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Backend,
    OrgConnection,
    App,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Backend, Kind::OrgConnection, Kind::App];

    fn of(i: usize) -> Kind {
        Kind::ALL[i % 3]
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Backend => "IdentityBackend",
            Kind::OrgConnection => "OrgConnection",
            Kind::App => "AdminApiApp",
        }
    }

    fn resource(self) -> ApiResource {
        let plural = match self {
            Kind::Backend => "identitybackends",
            Kind::OrgConnection => "orgconnections",
            Kind::App => "adminapiapps",
        };
        ApiResource {
            group: "identity.operator.dev".into(),
            version: "v1alpha1".into(),
            api_version: GROUP_VERSION.into(),
            kind: self.name().into(),
            plural: plural.into(),
        }
    }
}

/// Resource `i` at spec version `version` (each edit bumps it and changes one remote field).
fn manifest(i: usize, version: u32) -> Value {
    let meta = format!("r{i}");
    match Kind::of(i) {
        Kind::Backend => backend(&meta, &format!("Reliability {i}"), 2000 + version),
        Kind::OrgConnection => {
            org_connection(&meta, i, version % 2 == 1, &format!("conn-{i}-v{version}"))
        }
        Kind::App => admin_app(
            &meta,
            &format!("reliability-{i}"),
            &format!("version {version}"),
        ),
    }
}

/// The remote objects of resource `i` in the simulator's state (more than one is a duplicate).
fn remote_objects(state: &Value, i: usize) -> Vec<Value> {
    let all = |api: &str, list: &str| state[api][list].as_array().cloned().unwrap_or_default();
    match Kind::of(i) {
        Kind::Backend => all("boruta", "backends")
            .into_iter()
            .filter(|b| b["name"] == format!("Reliability {i}"))
            .collect(),
        Kind::OrgConnection => all("auth0", "organizationConnections")
            .into_iter()
            .filter(|c| c["organization_id"] == ORG && c["connection_id"] == format!("con_{i}"))
            .collect(),
        Kind::App => all("entrust", "applications")
            .into_iter()
            .filter(|a| a["name"] == format!("reliability-{i}"))
            .collect(),
    }
}

/// Whether a remote object carries spec version `version` of resource `i`.
fn remote_matches(remote: &Value, i: usize, version: u32) -> bool {
    match Kind::of(i) {
        Kind::Backend => remote["smtp_port"] == 2000 + version,
        Kind::OrgConnection => remote["assign_membership_on_login"] == (version % 2 == 1),
        Kind::App => remote["description"] == format!("version {version}"),
    }
}

// --- one scenario's world: a namespace, a simulator, the resources -------------------------

struct World {
    cluster: &'static Cluster,
    ns: Arc<TestNamespace>,
    sim: SimProcess,
    client: kube::Client,
    /// Values that must never appear in anything the operator writes or prints.
    secrets: Vec<String>,
    /// Logs and metrics of every operator process of this world, gathered as they stop.
    outputs: Vec<String>,
    /// Spec version per resource index; `None`: deleted.
    desired: BTreeMap<usize, Option<u32>>,
    /// Resources applied with `deletionPolicy: Orphan`.
    orphans: BTreeSet<usize>,
}

impl World {
    /// `timeout_seconds`: the IdentityApis' `timeoutSeconds`.
    async fn new(prefix: &str, n: usize, timeout_seconds: u32) -> World {
        let cluster = ensure_cluster();
        // The CRDs before the first apply: on a fresh cluster no operator has installed them.
        support::operator::install_crds(cluster);
        let ns = Arc::new(TestNamespace::new(cluster, prefix));
        let unique = || format!("{:032x}", rand::rng().random::<u128>());
        let client_secret = format!("client-{}", unique());
        let ldap_password = format!("ldap-{}", unique());
        let sim = SimProcess::start(SimOptions {
            client_secret: client_secret.clone(),
            extra_args: vec!["--boruta-oauth-rate-limit".into(), "0".into()],
            ..SimOptions::default()
        });
        seed_connections(&sim, (0..n).filter(|i| Kind::of(*i) == Kind::OrgConnection)).await;
        let world = World {
            cluster,
            client: cluster.client().await,
            ns,
            sim,
            secrets: vec![client_secret.clone(), ldap_password.clone()],
            outputs: vec![],
            desired: BTreeMap::new(),
            orphans: BTreeSet::new(),
        };
        let mut docs = creating_apis(&world.sim, timeout_seconds);
        docs.push(secret("ldap-bind", "password", &ldap_password));
        let stream: Vec<String> = docs.iter().map(Value::to_string).collect();
        world.cluster.kubectl_stdin_ok(
            &["apply", "-n", &world.ns.name, "-f", "-"],
            &stream.join("\n"),
        );
        world
    }

    fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns.name, &kind.resource())
    }

    fn start_operator(&self, extra: &[&str]) -> Operator {
        start_operator(self.cluster, &self.ns, extra)
    }

    /// Keeps what a stopping operator printed, for the leak check. Returns when it was killed
    /// (its metrics are read first, which takes a while on a busy machine).
    async fn stop_operator(&mut self, mut op: Operator) -> Instant {
        if let Ok(Ok(metrics)) =
            tokio::time::timeout(Duration::from_secs(5), reqwest::get(&op.metrics_url)).await
        {
            self.outputs.push(metrics.text().await.unwrap_or_default());
        }
        op.kill();
        let killed = Instant::now();
        let log = op.log();
        if let Some(dir) = std::env::var_os("RELIABILITY_LOGS") {
            let path = std::path::Path::new(&dir).join(format!(
                "{}-{}.log",
                self.ns.name,
                self.outputs.len()
            ));
            let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(path, &log));
        }
        self.outputs.push(log);
        killed
    }

    /// Server-side applies resources `indices` at `version` (16 at a time).
    async fn apply(&mut self, indices: impl IntoIterator<Item = usize>, version: u32) {
        let indices: Vec<usize> = indices.into_iter().collect();
        let results: Vec<_> = stream::iter(indices.iter().copied())
            .map(|i| {
                let api = self.api(Kind::of(i));
                let mut manifest = manifest(i, version);
                if self.orphans.contains(&i) {
                    manifest["spec"]["deletionPolicy"] = json!("Orphan");
                }
                async move {
                    let doc: DynamicObject = serde_json::from_value(manifest).unwrap();
                    let params = PatchParams::apply("reliability-test").force();
                    api.patch(&format!("r{i}"), &params, &Patch::Apply(&doc))
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("applying r{i}: {e}"))
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r.expect("the API server takes the resource");
        }
        for i in indices {
            self.desired.insert(i, Some(version));
        }
    }

    async fn delete(&mut self, indices: impl IntoIterator<Item = usize>) {
        for i in indices {
            let res = self
                .api(Kind::of(i))
                .delete(&format!("r{i}"), &DeleteParams::default())
                .await;
            if let Err(e) = res {
                assert!(format!("{e}").contains("NotFound"), "deleting r{i}: {e}");
            }
            self.desired.insert(i, None);
        }
    }

    async fn list(&self) -> BTreeMap<String, Value> {
        let mut all = BTreeMap::new();
        for kind in Kind::ALL {
            let items = self
                .api(kind)
                .list(&ListParams::default())
                .await
                .expect("list")
                .items;
            for item in items {
                let name = item.metadata.name.clone().unwrap_or_default();
                all.insert(name, serde_json::to_value(item).unwrap());
            }
        }
        all
    }

    /// Resources that are not yet where they should be: present and not `done` (Ready for their
    /// generation), or deleted and still there.
    async fn pending_by(&self, done: fn(&Value) -> bool) -> Vec<String> {
        let live = self.list().await;
        let mut pending = vec![];
        for (i, want) in &self.desired {
            let name = format!("r{i}");
            match (want, live.get(&name)) {
                (Some(_), Some(obj)) if done(obj) => {}
                (Some(_), _) => pending.push(name),
                (None, Some(_)) => pending.push(format!("{name} (deleted)")),
                (None, None) => {}
            }
        }
        pending
    }

    async fn pending(&self) -> Vec<String> {
        self.pending_by(is_ready).await
    }

    /// Waits until every resource is Ready for its generation and every deleted one is gone.
    async fn converge(&self, timeout: Duration) -> Result<Duration, String> {
        self.converge_by(timeout, is_ready).await
    }

    /// Waits until every resource is `done` and every deleted one is gone.
    async fn converge_by(
        &self,
        timeout: Duration,
        done: fn(&Value) -> bool,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        // Listing ten thousand objects four times a second would load the API server more
        // than the operator does.
        let poll = Duration::from_millis(250.max(self.desired.len() as u64 / 10));
        loop {
            let pending = self.pending_by(done).await;
            if pending.is_empty() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                let live = self.list().await;
                let sample: Vec<String> = pending
                    .iter()
                    .take(5)
                    .map(|n| {
                        let n = n.split(' ').next().unwrap();
                        format!(
                            "{n}: {}",
                            live.get(n).map_or(json!(null), |o| o["status"].clone())
                        )
                    })
                    .collect();
                return Err(format!(
                    "{} of {} resources not converged after {timeout:?}, e.g. {sample:?}",
                    pending.len(),
                    self.desired.len()
                ));
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Compares the simulator's state with the resources: duplicates, lost updates (a remote
    /// object not at its resource's spec), missing and leftover remote objects, finalizers
    /// still held by deleted resources.
    async fn verify(&self, report: &mut Report) {
        report.stuck = self.pending().await.len();
        let state = self.sim.state().await;
        let live = self.list().await;
        for (i, want) in &self.desired {
            let remotes = remote_objects(&state, *i);
            match want {
                Some(version) => {
                    report.duplicates += remotes.len().saturating_sub(1);
                    match remotes.first() {
                        None => report.fail(format!("r{i}: remote object missing")),
                        Some(r) if !remote_matches(r, *i, *version) => {
                            report.lost_updates += 1;
                            report.fail(format!(
                                "r{i}: remote is not at spec version {version}: {r}"
                            ));
                        }
                        Some(_) => {}
                    }
                }
                None => {
                    if !remotes.is_empty() {
                        report.leftovers += remotes.len();
                        let events = events_of(&self.ns, &format!("r{i}")).join(" | ");
                        report.fail(format!(
                            "r{i} was deleted but its remote object is left; its Events: {events}"
                        ));
                    }
                    if live.contains_key(&format!("r{i}")) {
                        report.stuck_finalizers += 1;
                        report.fail(format!("r{i} was deleted but is still held"));
                    }
                }
            }
        }
        if report.duplicates > 0 {
            report.fail(format!("{} duplicate remote objects", report.duplicates));
        }
    }

    /// Every secret value this world used, or that the simulator generated (Entrust shared
    /// secrets), searched for in the operators' logs and metrics, the Events, and the status of
    /// every resource.
    async fn leaks(&mut self, report: &mut Report) {
        let state = self.sim.state().await;
        let mut secrets = self.secrets.clone();
        secrets.extend(
            state["entrust"]["applications"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["sharedSecret"].as_str().map(str::to_owned)),
        );
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns.name);
        let events = events.list(&ListParams::default()).await.expect("events");
        let mut haystacks = self.outputs.clone();
        haystacks.push(serde_json::to_string(&events.items).unwrap());
        let statuses: Vec<Value> = self
            .list()
            .await
            .into_values()
            .map(|o| o["status"].clone())
            .collect();
        haystacks.push(serde_json::to_string(&statuses).unwrap());
        for secret in secrets.iter().filter(|s| s.len() >= 8) {
            if haystacks.iter().any(|h| h.contains(secret.as_str())) {
                report.leaked += 1;
            }
        }
        report.secrets_checked += secrets.len();
        if report.leaked > 0 {
            report.fail(format!("{} secret values leaked", report.leaked));
        }
    }

    /// The end of every scenario: the last operator stopped, the leak check, the namespace
    /// released.
    async fn finish(mut self, op: Operator, mut report: Report) -> Report {
        self.stop_operator(op).await;
        self.leaks(&mut report).await;
        self.release().await;
        report
    }

    /// With no operator left to run them, the finalizers of the remaining resources would keep
    /// the test namespace Terminating: they are dropped, as a user uninstalling would.
    async fn release(&self) {
        let live = self.list().await;
        let patch = json!({"metadata": {"finalizers": null}});
        stream::iter(live.into_values())
            .map(|obj| {
                let kind = Kind::ALL
                    .into_iter()
                    .find(|k| obj["kind"] == k.name())
                    .expect("one of our kinds");
                let api = self.api(kind);
                let patch = patch.clone();
                async move {
                    let name = obj["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }

    /// While the APIs are down: waits (at most `timeout`) until every resource says why
    /// nothing syncs (`Synced=False, reason=IdentityApiUnavailable`: every one is reconciled
    /// when the new operator starts), and checks that each synced before (not `edited` since)
    /// is still Ready.
    async fn wait_while_down(&self, edited: &[usize], timeout: Duration, report: &mut Report) {
        let deadline = Instant::now() + timeout;
        let poll = Duration::from_millis(250.max(self.desired.len() as u64 / 10));
        loop {
            let live = self.list().await;
            let says = |obj: &Value| {
                condition(obj, "Synced")
                    .is_some_and(|(_, reason, _)| reason == "IdentityApiUnavailable")
            };
            let unavailable = live.values().filter(|obj| says(obj)).count();
            if unavailable == live.len() || Instant::now() > deadline {
                let lost_ready = (0..self.desired.len())
                    .filter(|i| !edited.contains(i))
                    .filter_map(|i| live.get(&format!("r{i}")))
                    .filter(|obj| !is_ready(obj))
                    .count();
                if lost_ready > 0 {
                    report.fail(format!(
                        "{lost_ready} resources synced before lost Ready while the APIs were down"
                    ));
                }
                if unavailable < live.len() {
                    report.fail(format!(
                        "{unavailable} of {} resources say Synced=False, reason=IdentityApiUnavailable",
                        live.len()
                    ));
                }
                return;
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Requests to the three APIs' token endpoints after log entry `since`.
    async fn token_requests_since(&self, since: u64) -> usize {
        let mut count = 0;
        for api in ["boruta", "auth0", "entrust"] {
            let log = self.sim.log_since(api, since).await;
            count += log["entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| {
                    let path = e["path"].as_str().unwrap_or_default();
                    path.ends_with("/oauth/token") || path.ends_with("/adminapi/authenticate")
                })
                .count();
        }
        count
    }

    async fn identity_calls(&self) -> u64 {
        let calls = self.sim.calls().await;
        calls
            .as_object()
            .into_iter()
            .flat_map(|apis| apis.values())
            .flat_map(|methods| methods.as_object().into_iter().flat_map(|m| m.values()))
            .flat_map(|statuses| statuses.as_object().into_iter().flat_map(|s| s.values()))
            .filter_map(Value::as_u64)
            .sum()
    }
}

/// The operator with a drift check every minute: the calls counted are those the scenario
/// causes (and their retries), not periodic reads.
fn start_operator(cluster: &Cluster, ns: &TestNamespace, extra: &[&str]) -> Operator {
    let mut args = vec![];
    if !extra.contains(&"--resync-interval") {
        args.extend(["--resync-interval", "60s"]);
    }
    // The default grace period's order of magnitude, not the suites' 3 s: under a quarter of
    // calls failing, a deletion whose few calls all fail for 3 s is not an API that is gone.
    args.extend(["--deletion-grace-period", "2m"]);
    args.extend_from_slice(extra);
    Operator::start(cluster, ns, &args)
}

/// Ready for its generation, and the last reconcile succeeded.
fn is_synced(obj: &Value) -> bool {
    is_ready(obj) && condition(obj, "Synced").is_some_and(|(status, _, _)| status == "True")
}

fn is_ready(obj: &Value) -> bool {
    let current = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
    let ready = obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    current && ready
}

// --- reports ---------------------------------------------------------------------------------

#[derive(Default)]
struct Report {
    scenario: &'static str,
    resources: usize,
    faults: String,
    calls: u64,
    duplicates: usize,
    lost_updates: usize,
    leftovers: usize,
    leaked: usize,
    secrets_checked: usize,
    /// Resources not where they should be when the scenario ends.
    stuck: usize,
    stuck_finalizers: usize,
    /// Token requests per connection and minute while the identity APIs were down.
    token_rate: Option<f64>,
    figure: String,
    seconds: f64,
    failures: Vec<String>,
}

impl Report {
    fn new(scenario: &'static str, resources: usize) -> Report {
        Report {
            scenario,
            resources,
            ..Report::default()
        }
    }

    fn fail(&mut self, why: String) {
        eprintln!("  [{}] {why}", self.scenario);
        self.failures.push(why);
    }

    fn check(&mut self, what: Result<Duration, String>) -> Duration {
        what.unwrap_or_else(|e| {
            self.fail(e);
            Duration::ZERO
        })
    }
}

/// Deletes every third resource of the first `n` (a mix of the three kinds).
fn doomed(n: usize) -> impl Iterator<Item = usize> {
    (0..n).filter(|i| (i / 3) % 3 == 0)
}

// --- scenarios -------------------------------------------------------------------------------

/// A quarter of the identity-API calls go wrong the ways a real network makes them: 5xx, a
/// proxy's HTML page, a 2xx cut short, a connection dropped after the change was applied,
/// timeouts before and after the change, and a burst of 429s. Every resource still converges
/// through create, edit and delete, with no duplicate and no leftover, within three minutes.
async fn faults(scale: Scale) -> Report {
    let n = scale.under_faults;
    let mut report = Report::new("faults", n);
    let mut world = World::new("rel-faults", n, 2).await;
    // 19 % by one draw, and 3.5 % slow and 3.5 % late on top: 25 % of the calls in all.
    let fault = |api: &str| {
        json!({"api": api, "errorRate": 0.04, "errorStatus": 503,
               "htmlRate": 0.05, "htmlStatus": 502, "truncateRate": 0.05, "dropAfterApplyRate": 0.05,
               "slowRate": 0.035, "slowMs": 2500, "lateRate": 0.035, "lateMs": 2500,
               "burst429": 10})
    };
    world
        .sim
        .faults(json!([fault("boruta"), fault("auth0"), fault("entrust")]))
        .await;
    // The default drift-check interval: the calls counted are those the changes and their
    // retries cost.
    let op = world.start_operator(&["--resync-interval", "10m"]);
    world.apply(0..n, 0).await;
    let created = report.check(world.converge(scale.converge).await);
    world.apply(0..n, 1).await;
    let edited = report.check(world.converge(scale.converge).await);
    world.delete(doomed(n)).await;
    let deleted = report.check(world.converge(scale.converge).await);
    let injected = world.sim.get_faults().await;
    let sum = |field: &str| -> u64 {
        ["boruta", "auth0", "entrust"]
            .iter()
            .filter_map(|api| injected[api]["injected"][field].as_u64())
            .sum()
    };
    world.sim.clear_faults().await;
    world.verify(&mut report).await;
    report.calls = world.identity_calls().await;
    report.faults = format!(
        "{} 5xx, {} HTML pages, {} cut short, {} dropped after the change, {} 429, {} timeouts",
        sum("errors"),
        sum("html"),
        sum("truncated"),
        sum("dropped"),
        sum("tooManyRequests"),
        sum("slow") + sum("late")
    );
    // 3 operations per resource (create, edit, delete), about 2 calls each when nothing fails.
    let per_op = report.calls as f64 / (2 * n + n / 3) as f64;
    let total = created + edited + deleted;
    report.figure = format!(
        "{per_op:.1} calls per operation; create, edit, delete converged in {:.0}, {:.0}, {:.0} s ({:.0} s in all)",
        created.as_secs_f64(),
        edited.as_secs_f64(),
        deleted.as_secs_f64(),
        total.as_secs_f64(),
    );
    if per_op > 12.0 {
        report.fail(format!(
            "backoff did not bound the calls: {per_op:.1} per operation"
        ));
    }
    if total > UNDER_FAULTS_WITHIN {
        report.fail(format!(
            "converging took {total:?} in all (target {UNDER_FAULTS_WITHIN:?})"
        ));
    }
    world.finish(op, report).await
}

/// The identity APIs go down for a minute (longer if the new operator needs more to go through
/// every resource) under many resources (every call, token requests included, gets the load
/// balancer's 503 page), and a new operator starts meanwhile, without a token, with every
/// resource to check and a tenth of them edited. The connections must not
/// storm the APIs (token requests per connection and minute, target ≤ 10), the resources synced
/// before stay Ready with `Synced=False, reason=IdentityApiUnavailable`, and once the APIs are
/// back everything converges within one backoff period plus the normal convergence time.
async fn api_down(scale: Scale) -> Report {
    let n = scale.while_down;
    let mut report = Report::new("api down", n);
    // Not about timeouts: lists of thousands of objects take a while on a busy machine.
    let mut world = World::new("rel-down", n, 10).await;
    // The normal convergence: an operator starting on resources already applied, as the one
    // after the outage finds them (not timed from the last apply while an operator runs: that
    // leaves out whatever it did during the applies, most of the work at 10,000).
    world.apply(0..n, 0).await;
    let op = world.start_operator(&[]);
    let normal = report.check(world.converge(scale.converge).await);
    world.stop_operator(op).await;

    let down = |api: &str| json!({"api": api, "htmlRate": 1, "htmlStatus": 503});
    world
        .sim
        .faults(json!([down("boruta"), down("auth0"), down("entrust")]))
        .await;
    let since = world.sim.last_seq().await;
    let went_down = Instant::now();
    let op = world.start_operator(&[]);
    let edited: Vec<usize> = (0..n).step_by(10).collect();
    world.apply(edited.iter().copied(), 1).await;
    tokio::time::sleep(DOWN_FOR.saturating_sub(went_down.elapsed())).await;
    // Down for a minute, or until the new operator has been through every resource.
    world
        .wait_while_down(&edited, scale.converge, &mut report)
        .await;
    let tokens = world.token_requests_since(since).await;
    let outage = went_down.elapsed();
    world.sim.clear_faults().await;

    let back = report.check(world.converge_by(scale.converge, is_synced).await);
    let rate = tokens as f64 / 3.0 / (outage.as_secs_f64() / 60.0);
    report.token_rate = Some(rate);
    let within = BACKOFF_PERIOD + normal;
    if rate > 10.0 {
        report.fail(format!(
            "{tokens} token requests in {outage:?}: {rate:.1} per connection and minute (target ≤ 10)"
        ));
    }
    if back > within {
        report.fail(format!(
            "converged {back:?} after the APIs returned (target ≤ {within:?}: one backoff period + the normal {normal:?})"
        ));
    }
    world.verify(&mut report).await;
    report.calls = world.identity_calls().await;
    report.faults = format!(
        "APIs down {:.0} s, operator restarted meanwhile",
        outage.as_secs_f64()
    );
    report.figure = format!(
        "{tokens} token requests while down; converged {:.1} s after the APIs returned (target ≤ {:.0} s: backoff {:.0} s + normal {:.1} s)",
        back.as_secs_f64(),
        within.as_secs_f64(),
        BACKOFF_PERIOD.as_secs_f64(),
        normal.as_secs_f64()
    );
    world.finish(op, report).await
}

/// SIGKILL at random moments while resources are created, edited and deleted: each round
/// starts an operator, changes some resources under it, and kills it a random moment later.
async fn crashes(scale: Scale) -> Report {
    let n = scale.resources;
    let kills = scale.kills.max(2);
    let mut report = Report::new("crashes", n);
    let mut world = World::new("rel-crashes", n, 2).await;
    // Each call takes a while, so that kills land between a call and its status write.
    world.sim.faults(json!({"api": "*", "latencyMs": 30})).await;
    let doomed: BTreeSet<usize> = doomed(n).collect();
    let creating_rounds = kills.div_ceil(2);
    let chunk = n.div_ceil(creating_rounds);
    for round in 0..kills {
        let op = world.start_operator(&[]);
        if round < creating_rounds {
            world
                .apply(round * chunk..((round + 1) * chunk).min(n), 0)
                .await;
        }
        // Edit what exists (so some edits land on resources still being created), and in the
        // second half delete a share of the doomed ones.
        let live: Vec<usize> = world
            .desired
            .iter()
            .filter(|(i, v)| v.is_some() && *i % 2 == round % 2)
            .map(|(i, _)| *i)
            .collect();
        world.apply(live.iter().copied(), round as u32 + 1).await;
        if round >= creating_rounds {
            let share: Vec<usize> = doomed
                .iter()
                .copied()
                .filter(|i| world.desired.get(i).is_some_and(Option::is_some))
                .filter(|i| i % (kills - creating_rounds) == round - creating_rounds)
                .collect();
            world.delete(share).await;
        }
        let wait = Duration::from_millis(rand::rng().random_range(100..2500));
        tokio::time::sleep(wait).await;
        world.stop_operator(op).await;
    }
    let op = world.start_operator(&[]);
    let took = report.check(world.converge(scale.converge).await);
    world.verify(&mut report).await;
    report.calls = world.identity_calls().await;
    report.faults = format!("{kills} SIGKILLs");
    report.figure = format!(
        "converged {:.1} s after the last restart",
        took.as_secs_f64()
    );
    world.finish(op, report).await
}

/// The Kubernetes API server stops for 10 s and comes back: the same operator process
/// reconnects its watches and converges the changes made after the outage.
async fn outage(scale: Scale) -> Report {
    let n = scale.resources.min(60);
    let mut report = Report::new("outage", n);
    let mut world = World::new("rel-outage", n, 2).await;
    let op = world.start_operator(&[]);
    let first = n / 2;
    world.apply(0..first, 0).await;
    report.check(world.converge(scale.converge).await);
    local_kube("stop-apiserver");
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    local_kube("start");
    let outage = down.elapsed();
    world.apply(first..n, 0).await;
    world.apply(0..first, 1).await;
    let took = report.check(world.converge(scale.converge).await);
    if !op.log().contains("\"level\":\"WARN\"") && !op.log().contains("\"level\":\"ERROR\"") {
        report.fail("the operator never noticed the outage".into());
    }
    world.verify(&mut report).await;
    report.calls = world.identity_calls().await;
    report.faults = format!("API server down {:.0} s", outage.as_secs_f64());
    report.figure = format!(
        "converged {:.1} s after it came back, same process",
        took.as_secs_f64()
    );
    world.finish(op, report).await
}

fn local_kube(command: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/local-kube.sh");
    let out = Command::new("bash")
        .args([script, command])
        .output()
        .expect("local-kube.sh runs");
    assert!(
        out.status.success(),
        "local-kube.sh {command} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two replicas with leader election; the leader is killed while it works: the other takes
/// over within the lease duration, and the simulator never sees both write.
async fn failover(scale: Scale) -> Report {
    const LEASE_SECONDS: u64 = 6;
    let n = scale.resources.min(90);
    let mut report = Report::new("failover", n);
    let mut world = World::new("rel-failover", n, 2).await;
    // Calls slow enough that the leader is still working when it is killed.
    world
        .sim
        .faults(json!({"api": "*", "latencyMs": 100}))
        .await;
    let lease = LEASE_SECONDS.to_string();
    let replica = |name: &str| {
        world.start_operator(&[
            "--leader-election",
            "--lease-duration-seconds",
            &lease,
            "--instance",
            name,
        ])
    };
    let leads = |op: &Operator| op.log().contains("became the leader");
    let a = replica("replica-a");
    let started = Instant::now();
    while !leads(&a) && started.elapsed() < Duration::from_secs(3 * LEASE_SECONDS) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = replica("replica-b");
    let (leader, follower) = if leads(&a) { (a, b) } else { (b, a) };
    tokio::time::sleep(Duration::from_secs(1)).await;
    if leads(&follower) {
        report.fail("both replicas say they lead".into());
    }
    world.apply(0..n, 0).await;
    // Kill the leader mid-work: as soon as the first resources are Ready.
    let deadline = Instant::now() + scale.converge;
    while world.pending().await.len() > n * 9 / 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = world.stop_operator(leader).await;
    while !leads(&follower) && killed.elapsed() < Duration::from_secs(4 * LEASE_SECONDS) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = killed.elapsed();
    if !leads(&follower) || takeover > Duration::from_secs(LEASE_SECONDS + 1) {
        report.fail(format!(
            "the follower took over after {takeover:?} (lease {LEASE_SECONDS} s)"
        ));
    }
    // Work only the new leader can do.
    world.apply(0..n, 1).await;
    report.check(world.converge(scale.converge).await);
    world.verify(&mut report).await;
    // Writes per replica, in the simulator's order: all of the first before any of the second.
    let log = world.sim.log().await;
    let writers: Vec<String> = log["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["method"] != "GET")
        .filter_map(|e| e["client"].as_str())
        .filter_map(|c| {
            c.split_once('(')
                .map(|(_, r)| r.trim_end_matches(')').to_owned())
        })
        .collect();
    let mut switches = writers.windows(2).filter(|w| w[0] != w[1]).count();
    let distinct: BTreeSet<&String> = writers.iter().collect();
    if distinct.len() < 2 {
        report.fail(format!("the follower wrote nothing: writers {distinct:?}"));
    }
    if distinct.len() > 1 && switches != 1 {
        report.fail(format!(
            "the replicas' writes interleave ({switches} switches)"
        ));
    }
    if writers.is_empty() {
        report.fail("the simulator log names no writer".into());
        switches = 0;
    }
    report.calls = world.identity_calls().await;
    report.faults = "leader SIGKILLed".into();
    report.figure = format!(
        "takeover {:.1} s (lease {LEASE_SECONDS} s), {} writers, {switches} switch",
        takeover.as_secs_f64(),
        distinct.len()
    );
    world.finish(follower, report).await
}

/// `kubectl delete namespace` with hundreds of resources of three kinds in it, a fifth of them
/// `deletionPolicy: Orphan` and some adopted: every remote object the operator created is
/// deleted, every Orphan kept, and the namespace goes (its IdentityApis and credential Secrets
/// wait for the last resource that needs them). With `restart`, the operator is SIGKILLed when
/// half the deletions are done and a new one finishes the teardown.
async fn teardown(scale: Scale, restart: bool) -> Report {
    let n = scale.teardown;
    let name = if restart {
        "teardown-restart"
    } else {
        "teardown"
    };
    let mut report = Report::new(name, n);
    let mut world = World::new(&format!("rel-{name}"), n, 2).await;
    world.orphans = (0..n).filter(|i| i % 5 == 4).collect();
    // Backends that exist already are adopted, and kept by default.
    let adopted: BTreeSet<usize> = (0..n)
        .filter(|i| Kind::of(*i) == Kind::Backend && i % 5 == 3)
        .collect();
    let existing: Vec<Value> = adopted
        .iter()
        .map(|i| json!({"name": format!("Reliability {i}")}))
        .collect();
    world
        .sim
        .seed(json!({"boruta": {"backends": existing}}))
        .await;
    let mut op = world.start_operator(&[]);
    world.apply(0..n, 0).await;
    report.check(world.converge(scale.converge).await);
    let kept: BTreeSet<usize> = world.orphans.union(&adopted).copied().collect();
    let doomed: Vec<usize> = (0..n).filter(|i| !kept.contains(i)).collect();
    let since = world.sim.log().await["lastSeq"].as_u64().unwrap_or(0);

    let namespace = world.ns.name.clone();
    let started = Instant::now();
    world
        .cluster
        .kubectl_ok(&["delete", "namespace", &namespace, "--wait=false"]);
    if restart {
        let half = doomed.len() / 2;
        while remaining(&world.sim.state().await, &doomed) > half
            && started.elapsed() < scale.converge
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        world.stop_operator(op).await;
        op = world.start_operator(&[]);
        report.faults = format!("SIGKILL with {half} of {} deletions left", doomed.len());
    }
    let gone_at = namespace_gone(world.cluster, &namespace, scale.converge).await;
    let state = world.sim.state().await;
    for i in 0..n {
        let remotes = remote_objects(&state, i).len();
        match (kept.contains(&i), remotes) {
            (true, 1) | (false, 0) => {}
            (true, _) => report.fail(format!("r{i} should have been kept: {remotes} remote")),
            (false, _) => {
                report.leftovers += remotes;
                report.fail(format!("r{i} was deleted but its remote object is left"));
            }
        }
    }
    match gone_at {
        Some(gone) => {
            let last = last_deletion(&world.sim, since).await;
            report.figure = format!(
                "namespace gone {:.1} s after the last remote deletion; {} deleted, {} kept in {:.0} s",
                gone.duration_since(last).unwrap_or_default().as_secs_f64(),
                doomed.len(),
                kept.len(),
                started.elapsed().as_secs_f64()
            );
        }
        None => {
            report.stuck_finalizers = world.list().await.len();
            report.fail(format!(
                "namespace {namespace} still there after {:?}",
                scale.converge
            ));
        }
    }
    report.calls = world.identity_calls().await;
    world.stop_operator(op).await;
    world.leaks(&mut report).await;
    report
}

/// How many of `indices` still have a remote object.
fn remaining(state: &Value, indices: &[usize]) -> usize {
    indices
        .iter()
        .filter(|i| !remote_objects(state, **i).is_empty())
        .count()
}

/// When `namespace` was seen gone; `None` if it is still there after `timeout`.
async fn namespace_gone(
    cluster: &Cluster,
    namespace: &str,
    timeout: Duration,
) -> Option<std::time::SystemTime> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let out = cluster.kubectl(&[
            "get",
            "namespace",
            namespace,
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        if out.status.success() && out.stdout.is_empty() {
            return Some(std::time::SystemTime::now());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// When the simulator answered the last deletion made after log entry `since`.
async fn last_deletion(sim: &SimProcess, since: u64) -> std::time::SystemTime {
    let log = sim.log().await;
    let last_ms = log["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["seq"].as_u64() > Some(since) && e["method"] == "DELETE")
        .filter_map(|e| Some(e["timestampMs"].as_u64()? + e["durationMs"].as_u64()?))
        .max()
        .unwrap_or_default();
    std::time::UNIX_EPOCH + Duration::from_millis(last_ms)
}

// --- the runner --------------------------------------------------------------------------------

type Scenario = fn(Scale) -> Pin<Box<dyn Future<Output = Report> + Send>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scenarios: [(&str, Scenario); 7] = [
        ("faults", |s| Box::pin(faults(s))),
        ("crashes", |s| Box::pin(crashes(s))),
        ("outage", |s| Box::pin(outage(s))),
        ("api_down", |s| Box::pin(api_down(s))),
        ("failover", |s| Box::pin(failover(s))),
        ("teardown", |s| Box::pin(teardown(s, false))),
        ("teardown-restart", |s| Box::pin(teardown(s, true))),
    ];
    if args.iter().any(|a| a == "--list") {
        for (name, _) in scenarios {
            println!("reliability::{name}: test");
        }
        return;
    }
    // Names (or parts of names) pick scenarios, `--skip NAME` leaves one out, as libtest does.
    let mut filters: Vec<&str> = vec![];
    let mut skipped: Vec<&str> = vec![];
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--skip" => skipped.extend(words.next().map(String::as_str)),
            w if !w.starts_with('-') => filters.push(w),
            _ => {}
        }
    }
    let selected: Vec<_> = scenarios
        .into_iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .filter(|(name, _)| !skipped.iter().any(|s| name.contains(s)))
        .collect();
    let scale = Scale::from_env();
    println!(
        "\nrunning {} reliability scenarios ({} resources, {} under faults, {} with the APIs down, {} kills, teardowns of {})",
        selected.len(),
        scale.resources,
        scale.under_faults,
        scale.while_down,
        scale.kills,
        scale.teardown
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut reports = vec![];
    let started = Instant::now();
    for (name, scenario) in selected {
        let t0 = Instant::now();
        let outcome = runtime.block_on(async move { tokio::spawn(scenario(scale)).await });
        let mut report = outcome.unwrap_or_else(|e| {
            let mut r = Report::new(name_static(name), 0);
            let why = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            r.fail(format!("panicked: {why}"));
            r
        });
        report.seconds = t0.elapsed().as_secs_f64();
        let verdict = if report.failures.is_empty() {
            "ok"
        } else {
            "FAILED"
        };
        println!("test reliability::{name} ... {verdict}");
        reports.push(report);
    }
    print_summary(&reports);
    let failed = reports.iter().filter(|r| !r.failures.is_empty()).count();
    println!(
        "\ntest result: {}. {} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        if failed == 0 { "ok" } else { "FAILED" },
        reports.len() - failed,
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        for r in &reports {
            for f in &r.failures {
                eprintln!("{}: {f}", r.scenario);
            }
        }
        std::process::exit(1);
    }
}

fn name_static(name: &str) -> &'static str {
    Box::leak(name.to_owned().into_boxed_str())
}

fn print_summary(reports: &[Report]) {
    println!();
    println!(
        "| scenario | resources | faults injected | identity calls | duplicates | lost updates | leftover remotes | stuck resources | leaked secrets | stuck finalizers | token requests per API and min while down | figure | s | result |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|");
    for r in reports {
        let token_rate = r
            .token_rate
            .map_or_else(|| "—".to_owned(), |rate| format!("{rate:.1}"));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} of {} | {} | {token_rate} | {} | {:.0} | {} |",
            r.scenario,
            r.resources,
            r.faults,
            r.calls,
            r.duplicates,
            r.lost_updates,
            r.leftovers,
            r.stuck,
            r.leaked,
            r.secrets_checked,
            r.stuck_finalizers,
            r.figure,
            r.seconds,
            if r.failures.is_empty() {
                "ok"
            } else {
                "FAILED"
            }
        );
    }
}
