//! The operator's performance, measured end to end and printed as one table beside the
//! targets. Run by hand (not part of the test suite):
//!
//!     cargo bench --bench operator                       # every scenario, N = 1000
//!     cargo bench --bench operator -- --n 200 --runs 1 convergence steady
//!     cargo bench --bench operator -- --rate-n 100 ratelimit
//!     cargo bench --bench operator -- --memory-n 1000,10000,30000 memory
//!
//! Convergence runs three times (`--runs`) and reports the median ratio to the floor. The
//! memory scenario measures peak RSS at each size of `--memory-n` and the slope between them;
//! at 10,000 it also times 100 reactions and three resyncs of the steady state.
//! `BENCH_OPERATOR_BIN` runs another build of the operator (for an A/B comparison), and
//! `BENCH_OPERATOR_WRAPPER` runs it under a profiler.
//!     cargo bench --bench operator -- --n 1000 plan
//!     cargo bench --bench operator -- --n 1000 fairness
//!
//! It starts the local Kubernetes API server and the identity API simulator (20 ms latency per
//! call), creates the resources, then drives the release build of the operator and reads the
//! figures from the simulator's call counters, the API server's request metrics and /proc.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::install_crds;
use support::sim::{AUTH0_AUDIENCE, SimOptions, SimProcess};

const LATENCY_MS: u64 = 20;
/// Auth0 connections per seeded organisation: OrgConnection i enables connection `i % 50` in
/// organisation `i / 50`, so every resource has its own (organisation, connection) pair.
const CONNECTIONS_PER_ORG: usize = 50;

/// The managed kinds the benchmark creates; resource `i` of a mix is `mix[i % mix.len()]`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Backend,
    OrgConnection,
    AdminApp,
}

const MIX: [Kind; 3] = [Kind::Backend, Kind::OrgConnection, Kind::AdminApp];

impl Kind {
    fn resource(self) -> kube::api::ApiResource {
        kube::api::ApiResource {
            group: "identity.operator.dev".into(),
            version: "v1alpha1".into(),
            api_version: "identity.operator.dev/v1alpha1".into(),
            kind: self.kind().into(),
            plural: self.plural().into(),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Kind::Backend => "IdentityBackend",
            Kind::OrgConnection => "OrgConnection",
            Kind::AdminApp => "AdminApiApp",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Backend => "identitybackends",
            Kind::OrgConnection => "orgconnections",
            Kind::AdminApp => "adminapiapps",
        }
    }

    fn name(self, i: usize) -> String {
        match self {
            Kind::Backend => format!("backend-{i}"),
            Kind::OrgConnection => format!("orgconn-{i}"),
            Kind::AdminApp => format!("app-{i}"),
        }
    }

    /// The resource's spec; `i` is its index in the whole mix.
    fn spec(self, i: usize) -> Value {
        match self {
            Kind::Backend => json!({"apiRef": {"name": "boruta"}, "name": format!("Backend {i}"),
                "passwordHashingAlg": "argon2", "smtpPort": 2525}),
            Kind::OrgConnection => json!({"apiRef": {"name": "auth0"},
                "organizationId": format!("org_{}", i / CONNECTIONS_PER_ORG),
                "connectionId": format!("con_{}", i % CONNECTIONS_PER_ORG),
                "assignMembershipOnLogin": true}),
            Kind::AdminApp => json!({"apiRef": {"name": "entrust"}, "name": format!("app-{i}"),
                "roleId": "role-admin", "sharedSecretTarget": {"name": format!("app-{i}-credentials")}}),
        }
    }
}

fn describe(mix: &[Kind]) -> String {
    mix.iter().map(|k| k.kind()).collect::<Vec<_>>().join(" + ")
}

struct Row {
    scenario: &'static str,
    figure: String,
    value: String,
    target: String,
    holds: Option<bool>,
}

struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        scenario: &'static str,
        figure: &str,
        value: String,
        target: &str,
        holds: Option<bool>,
    ) {
        println!("  {scenario:<12} {figure:<44} {value:>14}   {target}");
        self.0.push(Row {
            scenario,
            figure: figure.into(),
            value,
            target: target.into(),
            holds,
        });
    }

    fn print(&self) {
        println!();
        println!("| scenario | figure | value | target | holds |");
        println!("|---|---|---:|---|---|");
        for r in &self.0 {
            let holds = match r.holds {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            println!(
                "| {} | {} | {} | {} | {} |",
                r.scenario, r.figure, r.value, r.target, holds
            );
        }
    }
}

/// A release-build operator process watching one namespace, logging at warn level.
struct OperatorProcess {
    child: Child,
}

impl OperatorProcess {
    fn start(cluster: &Cluster, ns: &str, resync: &str, extra: &[&str]) -> Self {
        let log = std::fs::File::create(format!("/tmp/identity-operator-bench-{ns}.log")).unwrap();
        // BENCH_OPERATOR_WRAPPER runs the operator under a profiler (e.g. `heaptrack -o
        // /tmp/op`); the figures of such a run are the profiler's, not the operator's.
        // BENCH_OPERATOR_BIN runs another build of the operator (an A/B comparison).
        let wrapper = std::env::var("BENCH_OPERATOR_WRAPPER").unwrap_or_default();
        let binary = std::env::var("BENCH_OPERATOR_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_identity-operator").to_owned());
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let child = command
            .args([
                "run",
                "--namespace",
                ns,
                "--metrics-addr",
                "127.0.0.1:0",
                "--resync-interval",
                resync,
            ])
            .args(extra)
            .env("KUBECONFIG", &cluster.kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("operator starts");
        OperatorProcess { child }
    }

    fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Peak resident memory in MiB.
    fn peak_rss_mib(&self) -> f64 {
        self.proc_status("VmHWM:") as f64 / 1024.0
    }

    /// User + system CPU seconds used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after_comm = stat.rsplit(')').next().unwrap_or_default();
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
        ticks / 100.0
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Write requests the API server has served for `resource`, by verb (from its /metrics).
fn apiserver_writes(cluster: &Cluster, resource: &str) -> BTreeMap<String, f64> {
    let metrics = cluster.kubectl_ok(&["get", "--raw", "/metrics"]);
    let mut out = BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_owned()
        };
        if label("resource") != resource {
            continue;
        }
        let verb = label("verb");
        // The operator only patches (finalizers) and applies (status); creations are the
        // benchmark's own and deletions the namespace controller's.
        let ours = matches!(verb.as_str(), "PATCH" | "APPLY" | "PUT")
            || (resource == "events" && verb == "POST");
        if !ours {
            continue;
        }
        let key = match label("subresource").as_str() {
            "" => verb,
            sub => format!("{verb}/{sub}"),
        };
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry(key).or_insert(0.0) += value;
    }
    out
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> f64 {
    after
        .iter()
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0.0))
        .sum()
}

/// Vendor calls the simulator received (authentication left out), split into reads and writes.
fn sim_calls(calls: &Value) -> (u64, u64) {
    let mut reads = 0;
    let mut writes = 0;
    for (_api, methods) in calls.as_object().into_iter().flatten() {
        for (method, statuses) in methods.as_object().into_iter().flatten() {
            let n: u64 = statuses
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(_, v)| v.as_u64())
                .sum();
            match method.as_str() {
                "GET" => reads += n,
                _ => writes += n,
            }
        }
    }
    (reads, writes)
}

/// Authentication calls (logins) among the simulator's log entries.
fn is_auth_call(entry: &Value) -> bool {
    let path = entry["path"].as_str().unwrap_or_default();
    path.contains("/oauth/") || path.ends_with("/adminapi/authenticate")
}

async fn auth_calls(sim: &SimProcess) -> u64 {
    let log = sim.log().await;
    log["entries"]
        .as_array()
        .map(|e| e.iter().filter(|e| is_auth_call(e)).count() as u64)
        .unwrap_or(0)
}

struct Setup {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    client: kube::Client,
}

/// A namespace with one IdentityApi per API the mix uses (boruta, auth0, entrust), and a
/// simulator whose Auth0 tenant has the organisations and connections for `n` resources.
async fn setup(prefix: &str, n: usize) -> Setup {
    let cluster = ensure_cluster();
    install_crds(cluster);
    let ns = TestNamespace::new(cluster, prefix);
    let sim = SimProcess::start(SimOptions {
        latency_ms: LATENCY_MS,
        extra_args: vec![
            "--boruta-oauth-rate-limit".into(),
            "0".into(),
            "--log-capacity".into(),
            "200000".into(),
        ],
        ..SimOptions::default()
    });
    let orgs: Vec<Value> = (0..=n / CONNECTIONS_PER_ORG)
        .map(|o| json!({"id": format!("org_{o}"), "name": format!("org-{o}")}))
        .collect();
    let connections: Vec<Value> = (0..CONNECTIONS_PER_ORG)
        .map(
            |c| json!({"id": format!("con_{c}"), "name": format!("conn-{c}"), "strategy": "samlp"}),
        )
        .collect();
    sim.seed(json!({"auth0": {"organizations": orgs, "connections": connections}}))
        .await;
    let client = cluster.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "api-client"},
        "stringData": {"secret": sim.options.client_secret},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let id = &sim.options.client_id;
    let secret_ref = json!({"name": "api-client", "key": "secret"});
    let apis = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
         "metadata": {"name": "boruta"},
         "spec": {"provider": "boruta", "url": sim.url("boruta"), "auth": {"oauth2ClientCredentials": {
             "tokenUrl": "oauth/token", "clientId": id, "clientSecretRef": secret_ref,
             "scopes": ["identity-providers:manage:all"]}}}},
        {"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
         "metadata": {"name": "auth0"},
         "spec": {"provider": "auth0", "url": sim.url("auth0"), "auth": {"oauth2ClientCredentials": {
             "tokenUrl": "oauth/token", "clientId": id, "clientSecretRef": secret_ref,
             "audience": AUTH0_AUDIENCE}}}},
        {"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
         "metadata": {"name": "entrust"},
         "spec": {"provider": "entrust", "url": sim.url("entrust"), "auth": {"entrustAdminApi": {
             "applicationId": id, "sharedSecretRef": secret_ref}}}},
    ]});
    cluster.kubectl_stdin_ok(&["apply", "-n", &ns.name, "-f", "-"], &apis.to_string());
    Setup {
        cluster,
        ns,
        sim,
        client,
    }
}

/// The operator's default cap on calls in flight per IdentityApi (`rateLimit.maxConcurrent`).
const MAX_CONCURRENT: usize = 32;
/// The operator's default number of concurrent reconciles per kind (`--concurrency`).
const CONCURRENCY: usize = 64;

fn kind_api(s: &Setup, kind: Kind) -> Api<kube::api::DynamicObject> {
    Api::namespaced_with(s.client.clone(), &s.ns.name, &kind.resource())
}

fn backends_api(s: &Setup) -> Api<kube::api::DynamicObject> {
    kind_api(s, Kind::Backend)
}

fn doc(kind: Kind, i: usize) -> kube::api::DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": kind.kind(),
        "metadata": {"name": kind.name(i)},
        "spec": kind.spec(i),
    }))
    .unwrap()
}

/// Creates `n` resources, resource `i` of kind `mix[i % mix.len()]`.
async fn create_resources(s: &Setup, mix: &[Kind], n: usize) {
    let docs = (0..n).map(|i| {
        let kind = mix[i % mix.len()];
        (kind_api(s, kind), doc(kind, i))
    });
    create_all(docs.collect()).await;
}

/// Creates each object through its API, 32 at a time.
async fn create_all(docs: Vec<(Api<kube::api::DynamicObject>, kube::api::DynamicObject)>) {
    stream::iter(docs)
        .map(|(api, doc)| async move { api.create(&PostParams::default(), &doc).await.map(|_| ()) })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create resources");
}

/// Whether the object's Ready condition is True.
fn is_ready(o: &kube::api::DynamicObject) -> bool {
    o.data["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Time until `n` resources of `mix` are Ready. Watched, not polled: listing every resource ten
/// times a second loaded the API server the operator shares (and the floor does not).
async fn wait_all_ready(s: &Setup, mix: &[Kind], n: usize, timeout: Duration) -> Duration {
    use kube::ResourceExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let start = Instant::now();
    let streams = MIX.iter().filter(|k| mix.contains(k)).map(|&kind| {
        watcher(kind_api(s, kind), watcher::Config::default())
            .default_backoff()
            .map(move |event| (kind.plural(), event))
            .boxed()
    });
    let mut events = stream::select_all(streams);
    let mut ready = std::collections::HashSet::new();
    while ready.len() < n {
        let (plural, event) =
            tokio::time::timeout(timeout.saturating_sub(start.elapsed()), events.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "not all {n} resources Ready within {timeout:?}: {}",
                        ready.len()
                    )
                })
                .expect("the watches never end");
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                if is_ready(&o) {
                    ready.insert((plural, o.name_any()));
                } else {
                    ready.remove(&(plural, o.name_any()));
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                ready.remove(&(plural, o.name_any()));
            }
            _ => {}
        }
    }
    start.elapsed()
}

/// Tokens of the three APIs, as the floor client uses them.
struct FloorTokens {
    boruta: String,
    auth0: String,
    entrust: String,
}

async fn floor_tokens(sim: &SimProcess) -> FloorTokens {
    FloorTokens {
        boruta: sim.token("boruta").await,
        auth0: sim.token("auth0").await,
        entrust: sim.token("entrust").await,
    }
}

/// The floor: the same necessary calls with no controller machinery. One shared lookup per
/// list (Boruta backends, Entrust applications, the connections of each Auth0 organisation),
/// then per resource: a finalizer patch; the create; for an AdminApiApp the Secret with its
/// shared secret; the status apply.
async fn floor(mix: &[Kind], n: usize, concurrency: usize) -> Duration {
    let s = setup("bench-floor", n).await;
    create_resources(&s, mix, n).await;
    let http = reqwest::Client::new();
    let tokens = Arc::new(floor_tokens(&s.sim).await);
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns.name);
    let start = Instant::now();
    // The necessary lookups: one list per API that has one (what the operator's shared
    // snapshots do).
    if mix.contains(&Kind::Backend) {
        let list = http
            .get(format!("{}/api/backends", s.sim.url("boruta")))
            .bearer_auth(&tokens.boruta)
            .send()
            .await
            .unwrap();
        let _: Value = list.json().await.unwrap();
    }
    if mix.contains(&Kind::AdminApp) {
        let list = http
            .get(format!(
                "{}/api/web/v1/applications/adminapi",
                s.sim.url("entrust")
            ))
            .header("Authorization", &tokens.entrust)
            .send()
            .await
            .unwrap();
        let _: Value = list.json().await.unwrap();
    }
    if mix.contains(&Kind::OrgConnection) {
        let orgs: std::collections::BTreeSet<usize> = (0..n)
            .filter(|i| mix[i % mix.len()] == Kind::OrgConnection)
            .map(|i| i / CONNECTIONS_PER_ORG)
            .collect();
        let lists = orgs.into_iter().map(|org| {
            let (http, token) = (&http, &tokens.auth0);
            let url = format!(
                "{}/api/v2/organizations/org_{org}/connections?page=0&per_page=100&include_totals=true",
                s.sim.url("auth0")
            );
            async move {
                let list = http.get(url).bearer_auth(token).send().await.unwrap();
                assert!(list.status().is_success());
                let _: Value = list.json().await.unwrap();
            }
        });
        futures::future::join_all(lists).await;
    }
    // The operator's concurrency: up to `concurrency` reconciles per kind, and at most
    // MAX_CONCURRENT calls in flight per identity API (one API per kind here).
    let s = &s;
    let per_kind = mix.iter().map(|&kind| {
        let indices = (0..n).filter(move |i| mix[i % mix.len()] == kind);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT));
        let (http, tokens, secrets) = (http.clone(), tokens.clone(), secrets.clone());
        stream::iter(indices)
        .map(move |i| {
            let (http, tokens, secrets, in_flight) = (http.clone(), tokens.clone(), secrets.clone(), in_flight.clone());
            async move {
                let api = kind_api(s, kind);
                let name = kind.name(i);
                let patch: json_patch::Patch = serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/finalizers", "value": ["identity.operator.dev/cleanup"]}]),
                )
                .unwrap();
                api.patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch)).await.unwrap();
                let permit = in_flight.acquire().await.unwrap();
                let mut created_app = None;
                let external_id = match kind {
                    Kind::Backend => {
                        let created: Value = http
                            .post(format!("{}/api/backends", s.sim.url("boruta")))
                            .bearer_auth(&tokens.boruta)
                            .json(&json!({"backend": {"name": format!("Backend {i}"), "password_hashing_alg": "argon2",
                                "type": "Elixir.BorutaIdentity.Accounts.Internal", "smtp_port": 2525, "roles": []}}))
                            .send().await.unwrap().json().await.unwrap();
                        created["data"]["id"].as_str().unwrap().to_owned()
                    }
                    Kind::OrgConnection => {
                        let (org, conn) = (format!("org_{}", i / CONNECTIONS_PER_ORG), format!("con_{}", i % CONNECTIONS_PER_ORG));
                        let base = format!("{}/api/v2/organizations/{org}/connections", s.sim.url("auth0"));
                        let created = http.post(&base).bearer_auth(&tokens.auth0)
                            .json(&json!({"connection_id": conn, "assign_membership_on_login": true}))
                            .send().await.unwrap();
                        assert_eq!(created.status(), 201);
                        format!("{org}/{conn}")
                    }
                    Kind::AdminApp => {
                        let created: Value = http
                            .post(format!("{}/api/web/v1/applications/adminapi", s.sim.url("entrust")))
                            .header("Authorization", &tokens.entrust)
                            .json(&json!({"name": format!("app-{i}"), "roleId": "role-admin"}))
                            .send().await.unwrap().json().await.unwrap();
                        created_app = Some(created.clone());
                        created["id"].as_str().unwrap().to_owned()
                    }
                };
                drop(permit);
                if let Some(created) = created_app {
                    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": format!("app-{i}-credentials")},
                        "stringData": {"applicationId": external_id, "sharedSecret": created["sharedSecret"]}});
                    secrets.patch(&format!("app-{i}-credentials"), &PatchParams::apply("floor").force(), &Patch::Apply(secret))
                        .await.unwrap();
                }
                let status = json!({"apiVersion": "identity.operator.dev/v1alpha1", "kind": kind.kind(),
                    "status": {"externalId": external_id, "conditions": [{"type": "Ready", "status": "True",
                    "reason": "Synced", "message": "floor", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
                api.patch_status(&name, &PatchParams::apply("floor").force(), &Patch::Apply(status))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
    });
    futures::future::join_all(per_kind).await;
    start.elapsed()
}

/// Writes the API server has served for the managed kinds of the mix.
fn managed_writes(cluster: &Cluster) -> BTreeMap<String, f64> {
    let mut all = BTreeMap::new();
    for kind in MIX {
        for (verb, v) in apiserver_writes(cluster, kind.plural()) {
            all.insert(format!("{}/{verb}", kind.plural()), v);
        }
    }
    all
}

/// One convergence run: `n` resources of the mix in a new namespace, the operator started on
/// them, then the floor client doing the same calls.
struct Converged {
    s: Setup,
    op: OperatorProcess,
    wall: Duration,
    floor: Duration,
    calls: u64,
    writes: f64,
    secret_writes: f64,
    events: f64,
}

async fn converge_once(n: usize) -> Converged {
    let s = setup("bench-converge", n).await;
    create_resources(&s, &MIX, n).await;
    let writes_before = managed_writes(s.cluster);
    let secrets_before = apiserver_writes(s.cluster, "secrets");
    let events_before = apiserver_writes(s.cluster, "events");
    let op = OperatorProcess::start(s.cluster, &s.ns.name, "20s", &[]);
    let wall = wait_all_ready(&s, &MIX, n, Duration::from_secs(600)).await;
    let writes = delta(&managed_writes(s.cluster), &writes_before);
    let secret_writes = delta(&apiserver_writes(s.cluster, "secrets"), &secrets_before);
    let events = delta(&apiserver_writes(s.cluster, "events"), &events_before);
    let sim_counts = s.sim.calls().await;
    println!("  identity-API calls by api, method and status: {sim_counts}");
    let (reads, api_writes) = sim_calls(&sim_counts);
    let auth = auth_calls(&s.sim).await;
    let calls = (reads + api_writes).saturating_sub(auth);
    let floor = floor(&MIX, n, CONCURRENCY).await;
    Converged {
        s,
        op,
        wall,
        floor,
        calls,
        writes,
        secret_writes,
        events,
    }
}

impl Converged {
    fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.floor.as_secs_f64()
    }
}

/// Stops the operator and drops the namespace, then waits (up to two minutes) until the
/// namespace is gone, so that its deletion does not load the API server during the next run.
async fn tear_down(s: Setup, op: OperatorProcess) {
    drop(op);
    let (cluster, ns) = (s.cluster, s.ns.name.clone());
    drop(s);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(120) {
        let left =
            cluster.kubectl_ok(&["get", "namespace", &ns, "--ignore-not-found", "-o", "name"]);
        if left.trim().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn convergence_and_steady(table: &mut Table, n: usize, runs: usize, run_steady: bool) {
    let mut ratios = Vec::new();
    let mut last = None;
    for run in 1..=runs {
        if let Some(Converged { s, op, .. }) = last.take() {
            tear_down(s, op).await;
        }
        let c = converge_once(n).await;
        table.add(
            "convergence",
            &format!("run {run}: operator / floor"),
            format!(
                "{:.2} ({:.2} s / {:.2} s)",
                c.ratio(),
                c.wall.as_secs_f64(),
                c.floor.as_secs_f64()
            ),
            "",
            None,
        );
        ratios.push(c.ratio());
        last = Some(c);
    }
    let c = last.expect("at least one run");
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let sc = "convergence";
    table.add(
        sc,
        &format!("wall time, {n} of {} (last run)", describe(&MIX)),
        format!("{:.2} s", c.wall.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        "resources/s",
        format!("{:.0}", n as f64 / c.wall.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        "floor wall time (same calls, no controller)",
        format!("{:.2} s", c.floor.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        &format!("operator / floor, median of {runs}"),
        format!("{median:.2}"),
        "≤ 1.25",
        Some(median <= 1.25),
    );
    let per = c.calls as f64 / n as f64;
    table.add(
        sc,
        "identity-API calls per resource",
        format!("{per:.2}"),
        "≤ 2",
        Some(per <= 2.0),
    );
    let kw = c.writes / n as f64;
    table.add(
        sc,
        "Kubernetes writes per resource",
        format!("{kw:.2}"),
        "≤ 2",
        Some(kw <= 2.0),
    );
    table.add(
        sc,
        "  + shared-secret Secrets per AdminApiApp",
        format!("{:.2}", c.secret_writes / n.div_ceil(3) as f64),
        "(one)",
        None,
    );
    table.add(
        sc,
        "  + Events per resource",
        format!("{:.2}", c.events / n as f64),
        "(one per remote write)",
        None,
    );
    table.add(
        sc,
        "peak RSS",
        format!("{:.1} MiB", c.op.peak_rss_mib()),
        "",
        None,
    );
    let Converged { s, op, .. } = c;
    let resync = Duration::from_secs(20);
    if run_steady {
        steady(table, &s, &op, &MIX, n, resync).await;
    }
}

/// Steady state: three resync intervals in which nothing changes.
async fn steady(
    table: &mut Table,
    s: &Setup,
    op: &OperatorProcess,
    mix: &[Kind],
    n: usize,
    resync: Duration,
) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls_before = s.sim.calls().await;
    let all_versions = || async {
        let mut all = Vec::new();
        for &kind in MIX.iter().filter(|k| mix.contains(k)) {
            let list = kind_api(s, kind)
                .list(&ListParams::default())
                .await
                .unwrap();
            all.extend(
                list.items
                    .into_iter()
                    .map(|o| o.metadata.resource_version.unwrap_or_default()),
            );
        }
        all
    };
    let versions_before = all_versions().await;
    let cpu_before = op.cpu_seconds();
    tokio::time::sleep(resync * 3 + Duration::from_secs(3)).await;
    let cpu = (op.cpu_seconds() - cpu_before) / 3.0;
    let (r0, w0) = sim_calls(&calls_before);
    let (r1, w1) = sim_calls(&s.sim.calls().await);
    let versions_after = all_versions().await;
    let status_writes = versions_before
        .iter()
        .zip(&versions_after)
        .filter(|(a, b)| a != b)
        .count() as f64;
    let sc = "steady";
    table.add(
        sc,
        &format!("identity-API writes (3 resyncs, {n} present)"),
        format!("{}", w1 - w0),
        "0",
        Some(w1 == w0),
    );
    table.add(
        sc,
        "status writes (3 resyncs)",
        format!("{status_writes}"),
        "0",
        Some(status_writes == 0.0),
    );
    let rpr = (r1 - r0) as f64 / n as f64 / 3.0;
    table.add(
        sc,
        "identity-API reads per resource per resync",
        format!("{rpr:.3}"),
        "≤ 1 (less with lists)",
        Some(rpr <= 1.0),
    );
    table.add(
        sc,
        "operator CPU per resync",
        format!("{cpu:.3} s"),
        "",
        None,
    );
    table.add(
        sc,
        "operator CPU per resync per 1,000 resources",
        format!("{:.3} s", cpu * 1000.0 / n as f64),
        "",
        None,
    );
}

/// Makes backend-0 use the Secret `bind` (created here), so that its rotations reach Boruta.
/// Done before the operator starts: `reaction_trials` then edits both.
async fn prepare_reaction(s: &Setup) {
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns.name);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "bind"}, "stringData": {"password": "p0"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    backends_api(s)
        .patch(
            "backend-0",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"smtpPasswordSecretRef": {"name": "bind", "key": "password"}}}),
            ),
        )
        .await
        .unwrap();
}

async fn reaction(table: &mut Table, n: usize, trials: usize) {
    let s = setup("bench-react", 0).await;
    create_resources(&s, &[Kind::Backend], n).await;
    prepare_reaction(&s).await;
    let _op = OperatorProcess::start(s.cluster, &s.ns.name, "10m", &[]);
    wait_all_ready(&s, &[Kind::Backend], n, Duration::from_secs(600)).await;
    reaction_trials(table, &s, n, trials, Duration::from_secs(1)).await;
}

/// `trials` spec edits and Secret rotations of backend-0, each timed until Boruta gets its PUT.
async fn reaction_trials(table: &mut Table, s: &Setup, n: usize, trials: usize, p99: Duration) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let api = backends_api(s);
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns.name);
    let id = api.get("backend-0").await.unwrap().data["status"]["externalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/boruta/api/backends/{id}");
    let mut spec_times = Vec::new();
    let mut secret_times = Vec::new();
    for t in 0..trials {
        let since = s.sim.log().await["lastSeq"].as_u64().unwrap_or(0);
        let start = Instant::now();
        api.patch(
            "backend-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"smtpPort": 3000 + t}})),
        )
        .await
        .unwrap();
        spec_times.push(wait_put(&s.sim, since, &path, start).await);

        let since = s.sim.log().await["lastSeq"].as_u64().unwrap_or(0);
        let start = Instant::now();
        secrets
            .patch(
                "bind",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"password": format!("p{}", t + 1)}})),
            )
            .await
            .unwrap();
        secret_times.push(wait_put(&s.sim, since, &path, start).await);
    }
    let p99_target = format!("≤ {} ms", p99.as_millis());
    for (what, mut times) in [
        ("spec edit → remote write", spec_times),
        ("Secret rotation → remote write", secret_times),
    ] {
        times.sort();
        let p =
            |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let (p50, p99_seen) = (p(0.5), p(0.99));
        table.add(
            "reaction",
            &format!("{what} p50 ({n} present)"),
            format!("{} ms", p50.as_millis()),
            "≤ 100 ms",
            Some(p50 <= Duration::from_millis(100)),
        );
        table.add(
            "reaction",
            &format!("{what} p99"),
            format!("{} ms", p99_seen.as_millis()),
            &p99_target,
            Some(p99_seen <= p99),
        );
    }
}

async fn wait_put(sim: &SimProcess, since: u64, path: &str, start: Instant) -> Duration {
    loop {
        let log = sim.log_since("boruta", since).await;
        let hit = log["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["method"] == "PUT" && e["path"] == path);
        if hit {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no PUT within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The size at which the memory scenario also times reactions and the steady state.
const SCALE: usize = 10_000;

/// Peak RSS at each of `sizes` (IdentityBackends, with as many unrelated 4 KiB Secrets), and
/// how it grows per 1,000 resources.
async fn memory(table: &mut Table, sizes: &[usize]) {
    let mut points = Vec::new();
    for &n in sizes {
        points.push((n, memory_at(table, n).await));
    }
    for pair in points.windows(2) {
        let ((n0, rss0), (n1, rss1)) = (pair[0], pair[1]);
        let slope = (rss1 - rss0) / ((n1 - n0) as f64 / 1000.0);
        table.add(
            "memory",
            &format!("slope {n0} → {n1}: MiB per 1,000 resources"),
            format!("{slope:.2}"),
            "≤ 3",
            Some(slope <= 3.0),
        );
    }
}

async fn memory_at(table: &mut Table, n: usize) -> f64 {
    let s = setup("bench-memory", 0).await;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns.name);
    let payload = "x".repeat(4096);
    stream::iter(0..n)
        .map(|i| {
            let secrets = secrets.clone();
            let payload = payload.clone();
            async move {
                let secret: Secret = serde_json::from_value(json!({
                    "metadata": {"name": format!("unrelated-{i}")}, "stringData": {"blob": payload}})).unwrap();
                secrets.create(&PostParams::default(), &secret).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create secrets");
    create_resources(&s, &[Kind::Backend], n).await;
    let scale = n == SCALE;
    if scale {
        prepare_reaction(&s).await;
    }
    // At scale a resync of a minute, for three of them in the steady state; it begins after
    // the convergence.
    let resync = if scale { "60s" } else { "10m" };
    let op = OperatorProcess::start(s.cluster, &s.ns.name, resync, &[]);
    let wall = wait_all_ready(&s, &[Kind::Backend], n, Duration::from_secs(1800)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = op.peak_rss_mib();
    let target = if scale { "≤ 64 MiB" } else { "" };
    table.add(
        "memory",
        &format!("peak RSS, {n} resources + {n} Secrets of 4 KiB"),
        format!("{rss:.1} MiB"),
        target,
        scale.then_some(rss <= 64.0),
    );
    table.add(
        "memory",
        &format!("convergence wall time, {n} resources"),
        format!("{:.1} s", wall.as_secs_f64()),
        "",
        None,
    );
    if scale {
        reaction_trials(table, &s, n, 100, Duration::from_millis(250)).await;
        steady(table, &s, &op, &[Kind::Backend], n, Duration::from_secs(60)).await;
        table.add(
            "memory",
            &format!("peak RSS after the reactions and steady state, {n}"),
            format!("{:.1} MiB", op.peak_rss_mib()),
            "",
            None,
        );
    }
    tear_down(s, op).await;
    rss
}

/// Auth0 limited to `limit` requests per second (fixed windows of one UNIX second, 429 with
/// the x-ratelimit-* and Retry-After headers), `n` new OrgConnections.
async fn rate_limited(table: &mut Table, n: usize, limit: u64) {
    let s = setup("bench-ratelimit", n).await;
    s.sim
        .faults(json!({"api": "auth0", "rateLimit": {"requestsPerSecond": limit}}))
        .await;
    create_resources(&s, &[Kind::OrgConnection], n).await;
    let since = s.sim.log().await["lastSeq"].as_u64().unwrap_or(0);
    let _op = OperatorProcess::start(s.cluster, &s.ns.name, "10m", &[]);
    let wall = wait_all_ready(&s, &[Kind::OrgConnection], n, Duration::from_secs(600)).await;
    let log = s.sim.log_since("auth0", since).await;
    // Kept for a closer look at the pacing (timestamps, statuses).
    let _ = std::fs::write(
        "/tmp/identity-operator-bench-ratelimit.json",
        log.to_string(),
    );
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    let refused: Vec<&Value> = entries.iter().filter(|e| e["status"] == 429).collect();
    let admitted = entries.len() - refused.len();
    // Beyond the limit: every 429 after the first one (the first tells the operator the limit).
    let beyond = refused.len().saturating_sub(1);
    let ideal = admitted as f64 / limit as f64;
    let ratio = wall.as_secs_f64() / ideal;
    // The issue's target: N resources at `limit` per second.
    let n_ideal = n as f64 / limit as f64;
    let n_ratio = wall.as_secs_f64() / n_ideal;
    let sc = "rate limit";
    table.add(
        sc,
        &format!("{n} OrgConnections, Auth0 at {limit} req/s: calls admitted"),
        format!("{admitted}"),
        "",
        None,
    );
    table.add(
        sc,
        "requests beyond the limit after the first 429",
        format!("{beyond}"),
        "0",
        Some(beyond == 0),
    );
    table.add(
        sc,
        "wall time",
        format!("{:.2} s", wall.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        "wall time / (calls admitted / limit): pacing",
        format!("{ratio:.2} ({ideal:.1} s)"),
        "",
        None,
    );
    table.add(
        sc,
        "wall time / (N / limit)",
        format!("{n_ratio:.2} ({n_ideal:.1} s)"),
        "≤ 1.10",
        Some(n_ratio <= 1.10),
    );
}

/// One ClusterIdentityApi (Boruta) shared by a big namespace and a small one: how long 5
/// backends of the small namespace take to be Ready alone, and applied right after `n` of the
/// big one (which must not make them wait for all `n`).
async fn fairness(table: &mut Table, n: usize) {
    let s = setup("bench-fair", n).await;
    let small = TestNamespace::new(s.cluster, "bench-fair-small");
    let shared = format!("{}-shared", s.ns.name);
    let api = json!({"apiVersion": "identity.operator.dev/v1alpha1", "kind": "ClusterIdentityApi",
        "metadata": {"name": shared},
        "spec": {"provider": "boruta", "url": s.sim.url("boruta"),
            "auth": {"oauth2ClientCredentials": {"tokenUrl": "oauth/token",
                "clientId": s.sim.options.client_id, "scopes": ["identity-providers:manage:all"],
                "clientSecretRef": {"name": "api-client", "key": "secret"}}},
            "allowedNamespaces": {"names": [s.ns.name, small.name]}}});
    s.cluster
        .kubectl_stdin_ok(&["apply", "-f", "-"], &api.to_string());
    let extra = [
        "--namespace",
        &small.name,
        "--credentials-namespace",
        &s.ns.name,
        "--manage-cluster-identity-apis",
    ];
    let _op = OperatorProcess::start(s.cluster, &s.ns.name, "10m", &extra);
    let backend = |prefix: &str, i: usize| -> kube::api::DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityBackend",
            "metadata": {"name": format!("{prefix}-{i}")},
            "spec": {"apiRef": {"kind": "ClusterIdentityApi", "name": shared},
                "name": format!("{prefix} {i}"), "passwordHashingAlg": "argon2"},
        }))
        .unwrap()
    };
    let apply = |ns: &str, prefix: &'static str, range: std::ops::Range<usize>| {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(s.client.clone(), ns, &Kind::Backend.resource());
        create_all(range.map(|i| (api.clone(), backend(prefix, i))).collect())
    };
    // Ready ones among `prefix-<range>` in `ns`, polled.
    let ready = |ns: &str, prefix: &'static str, range: std::ops::Range<usize>| {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(s.client.clone(), ns, &Kind::Backend.resource());
        async move {
            let list = api.list(&ListParams::default()).await.expect("list");
            list.items
                .iter()
                .filter(|o| {
                    let name = o.metadata.name.as_deref().unwrap_or_default();
                    let index = name.strip_prefix(prefix).and_then(|i| i.strip_prefix('-'));
                    index
                        .and_then(|i| i.parse().ok())
                        .is_some_and(|i| range.contains(&i))
                })
                .filter(|o| is_ready(o))
                .count()
        }
    };
    let until = |ns: String, prefix: &'static str, range: std::ops::Range<usize>| {
        let ready = &ready;
        async move {
            let start = Instant::now();
            while ready(&ns, prefix, range.clone()).await < range.len() {
                assert!(
                    start.elapsed() < Duration::from_secs(900),
                    "not Ready in 15 min"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            start.elapsed()
        }
    };
    // Alone (the connection already logged in by a first one).
    apply(&small.name, "small", 0..1).await;
    until(small.name.clone(), "small", 0..1).await;
    let started = Instant::now();
    apply(&small.name, "small", 1..6).await;
    until(small.name.clone(), "small", 1..6).await;
    let alone = started.elapsed();
    // Right after the big namespace's n.
    let started = Instant::now();
    apply(&s.ns.name, "big", 0..n).await;
    let small_started = Instant::now();
    apply(&small.name, "small", 6..11).await;
    let small_done = async {
        until(small.name.clone(), "small", 6..11).await;
        let beside = small_started.elapsed();
        (beside, ready(&s.ns.name, "big", 0..n).await)
    };
    let (_, (beside, big_ready)) =
        futures::join!(until(s.ns.name.clone(), "big", 0..n), small_done);
    let big_wall = started.elapsed();
    let sc = "fairness";
    table.add(
        sc,
        "5 backends of a small namespace, alone",
        format!("{:.2} s", alone.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        &format!("the same, applied right after {n} of a big one"),
        format!("{:.2} s", beside.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        &format!("big namespace's backends Ready by then (of {n})"),
        format!("{big_ready}"),
        &format!("< {}", n / 2),
        Some(big_ready < n / 2),
    );
    table.add(
        sc,
        &format!("{n} backends of the big namespace, wall time"),
        format!("{:.2} s", big_wall.as_secs_f64()),
        "",
        None,
    );
    // Cluster-scoped: the namespaces' cleanup does not reach it. Its in-use finalizer would
    // keep it Terminating for good once the operator is gone.
    let _ = s
        .cluster
        .kubectl(&["delete", "clusteridentityapi", &shared, "--wait=false"]);
    let released = r#"{"metadata":{"finalizers":null}}"#;
    let _ = s.cluster.kubectl(&[
        "patch",
        "clusteridentityapi",
        &shared,
        "--type",
        "merge",
        "-p",
        released,
    ]);
}

/// `identity-operator plan --from-cluster` of `n` resources in one namespace, before the
/// operator ran (everything to create) and after it converged (nothing to do): wall time and
/// the identity-API calls it made, read from the simulator's log.
async fn plan(table: &mut Table, n: usize) {
    let s = setup("bench-plan", n).await;
    create_resources(&s, &MIX, n).await;
    let planned = run_plan(&s).await;
    plan_rows(
        table,
        &format!("{n} resources ({}) to create", describe(&MIX)),
        planned,
        2,
    );
    let op = OperatorProcess::start(s.cluster, &s.ns.name, "10m", &[]);
    wait_all_ready(&s, &MIX, n, Duration::from_secs(1200)).await;
    drop(op);
    let planned = run_plan(&s).await;
    plan_rows(table, &format!("{n} resources converged"), planned, 0);
}

fn plan_rows(table: &mut Table, what: &str, planned: (Duration, usize, usize, i32), code: i32) {
    let (wall, reads, writes, exit) = planned;
    let sc = "plan";
    let wall = format!("{:.2} s", wall.as_secs_f64());
    table.add(sc, &format!("{what}: wall time"), wall, "", None);
    table.add(sc, "identity-API reads (GET)", format!("{reads}"), "", None);
    table.add(
        sc,
        "identity-API writes",
        format!("{writes}"),
        "0",
        Some(writes == 0),
    );
    table.add(
        sc,
        "exit code",
        format!("{exit}"),
        &code.to_string(),
        Some(exit == code),
    );
}

/// One `plan --from-cluster -o json` run: wall time, GETs and writes (logins aside) it made.
async fn run_plan(s: &Setup) -> (Duration, usize, usize, i32) {
    let since = s.sim.log().await["lastSeq"].as_u64().unwrap_or(0);
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
        .args(["plan", "--from-cluster", "-o", "json", "-n", &s.ns.name])
        .env("KUBECONFIG", &s.cluster.kubeconfig)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("identity-operator plan runs");
    let wall = start.elapsed();
    let log = s.sim.log().await;
    let entries: Vec<&Value> = log["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["seq"].as_u64().unwrap_or(0) > since)
        .collect();
    let reads = entries.iter().filter(|e| e["method"] == "GET").count();
    let writes = entries
        .iter()
        .filter(|e| e["method"] != "GET" && !is_auth_call(e))
        .count();
    (wall, reads, writes, out.status.code().unwrap_or(-1))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut n = 1000;
    let mut memory_n = vec![1_000, SCALE, 30_000];
    let mut runs = 3;
    let mut rate_n = 100;
    let mut scenarios = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--n" => n = it.next().and_then(|v| v.parse().ok()).expect("--n N"),
            "--memory-n" => {
                memory_n = it
                    .next()
                    .and_then(|v| v.split(',').map(|n| n.parse().ok()).collect())
                    .expect("--memory-n N[,N…]")
            }
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--rate-n" => rate_n = it.next().and_then(|v| v.parse().ok()).expect("--rate-n N"),
            s => scenarios.push(s.to_owned()),
        }
    }
    let all = scenarios.is_empty();
    let wants = |s: &str| all || scenarios.iter().any(|x| x == s);
    let mut table = Table(Vec::new());
    println!("identity-operator benchmark: simulator latency {LATENCY_MS} ms per call");
    if wants("convergence") || wants("steady") {
        convergence_and_steady(&mut table, n, runs, wants("steady")).await;
    }
    if wants("reaction") {
        reaction(&mut table, n, 100).await;
    }
    if wants("ratelimit") {
        rate_limited(&mut table, rate_n, 10).await;
    }
    if wants("memory") {
        memory(&mut table, &memory_n).await;
    }
    if wants("plan") {
        plan(&mut table, n).await;
    }
    if wants("fairness") {
        fairness(&mut table, n).await;
    }
    table.print();
}
