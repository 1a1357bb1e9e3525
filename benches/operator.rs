//! The operator's performance, measured end to end and printed as one table beside the
//! targets. Run by hand (not part of the test suite):
//!
//!     cargo bench --bench operator                       # every scenario, N = 1000
//!     cargo bench --bench operator -- --n 200 convergence steady
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
use support::sim::{SimOptions, SimProcess};

const LATENCY_MS: u64 = 20;
const BACKENDS: &str = "identitybackends";

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
        let child = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
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

async fn boruta_auth_calls(sim: &SimProcess) -> u64 {
    let log = sim.log().await;
    log["entries"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["path"].as_str().unwrap_or_default().contains("/oauth/"))
                .count() as u64
        })
        .unwrap_or(0)
}

struct Setup {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    client: kube::Client,
}

async fn setup(prefix: &str) -> Setup {
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
    let client = cluster.client().await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "boruta-client"},
        "stringData": {"secret": sim.options.client_secret},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let api = json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
        "metadata": {"name": "boruta"},
        "spec": {"provider": "boruta", "url": sim.url("boruta"), "auth": {"oauth2ClientCredentials": {
            "tokenUrl": "oauth/token", "clientId": sim.options.client_id,
            "clientSecretRef": {"name": "boruta-client", "key": "secret"},
            "scopes": ["identity-providers:manage:all"]}}},
    });
    cluster.kubectl_stdin_ok(&["apply", "-n", &ns.name, "-f", "-"], &api.to_string());
    Setup {
        cluster,
        ns,
        sim,
        client,
    }
}

fn backends_api(s: &Setup) -> Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource {
        group: "identity.operator.dev".into(),
        version: "v1alpha1".into(),
        api_version: "identity.operator.dev/v1alpha1".into(),
        kind: "IdentityBackend".into(),
        plural: BACKENDS.into(),
    };
    Api::namespaced_with(s.client.clone(), &s.ns.name, &ar)
}

fn backend_doc(i: usize) -> kube::api::DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityBackend",
        "metadata": {"name": format!("backend-{i}")},
        "spec": {"apiRef": {"name": "boruta"}, "name": format!("Backend {i}"),
                 "passwordHashingAlg": "argon2", "smtpPort": 2525},
    }))
    .unwrap()
}

async fn create_backends(s: &Setup, n: usize) {
    let api = backends_api(s);
    stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &backend_doc(i))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create backends");
}

async fn count_ready(s: &Setup) -> usize {
    let list = backends_api(s)
        .list(&ListParams::default())
        .await
        .expect("list");
    list.items
        .iter()
        .filter(|o| {
            o.data["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

async fn wait_all_ready(s: &Setup, n: usize, timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if count_ready(s).await >= n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "not all {n} resources Ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The floor: the same necessary calls with no controller machinery — one shared lookup, then
/// per resource one create against the identity API, one finalizer patch and one status apply.
async fn floor(n: usize, concurrency: usize) -> Duration {
    let s = setup("bench-floor").await;
    create_backends(&s, n).await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/oauth/token", s.sim.url("boruta")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s.sim.options.client_id.as_str()),
            ("client_secret", s.sim.options.client_secret.as_str()),
            ("scope", "identity-providers:manage:all"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = Arc::new(token["access_token"].as_str().unwrap().to_owned());
    let api = backends_api(&s);
    let base = s.sim.url("boruta");
    let start = Instant::now();
    // The necessary lookup: one list of the backends (what the operator's shared snapshot does).
    let list = http
        .get(format!("{base}/api/backends"))
        .bearer_auth(&*token)
        .send()
        .await
        .unwrap();
    let _: Value = list.json().await.unwrap();
    stream::iter(0..n)
        .map(|i| {
            let (http, token, api, base) = (http.clone(), token.clone(), api.clone(), base.clone());
            async move {
                let name = format!("backend-{i}");
                let patch: json_patch::Patch = serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/finalizers", "value": ["identity.operator.dev/cleanup"]}]),
                )
                .unwrap();
                api.patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch)).await.unwrap();
                let created: Value = http
                    .post(format!("{base}/api/backends"))
                    .bearer_auth(&*token)
                    .json(&json!({"backend": {"name": format!("Backend {i}"), "password_hashing_alg": "argon2",
                        "type": "Elixir.BorutaIdentity.Accounts.Internal", "smtp_port": 2525, "roles": []}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let status = json!({"apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityBackend",
                    "status": {"externalId": created["data"]["id"], "conditions": [{"type": "Ready", "status": "True",
                    "reason": "Synced", "message": "floor", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
                api.patch_status(&name, &PatchParams::apply("floor").force(), &Patch::Apply(status))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    start.elapsed()
}

async fn convergence_and_steady(table: &mut Table, n: usize, run_steady: bool) {
    let s = setup("bench-converge").await;
    create_backends(&s, n).await;
    let writes_before = apiserver_writes(s.cluster, BACKENDS);
    let events_before = apiserver_writes(s.cluster, "events");
    let resync = Duration::from_secs(20);
    let op = OperatorProcess::start(s.cluster, &s.ns.name, "20s", &[]);
    let wall = wait_all_ready(&s, n, Duration::from_secs(600)).await;
    let writes = delta(&apiserver_writes(s.cluster, BACKENDS), &writes_before);
    let events = delta(&apiserver_writes(s.cluster, "events"), &events_before);
    let (reads, api_writes) = sim_calls(&s.sim.calls().await);
    let auth = boruta_auth_calls(&s.sim).await;
    let calls = (reads + api_writes).saturating_sub(auth);
    let floor_wall = floor(n, 64).await;
    let ratio = wall.as_secs_f64() / floor_wall.as_secs_f64();
    let sc = "convergence";
    table.add(
        sc,
        &format!("wall time, {n} IdentityBackends"),
        format!("{:.2} s", wall.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        "resources/s",
        format!("{:.0}", n as f64 / wall.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        "floor wall time (same calls, no controller)",
        format!("{:.2} s", floor_wall.as_secs_f64()),
        "",
        None,
    );
    table.add(
        sc,
        "operator / floor",
        format!("{ratio:.2}"),
        "≤ 1.5",
        Some(ratio <= 1.5),
    );
    let per = calls as f64 / n as f64;
    table.add(
        sc,
        "identity-API calls per resource",
        format!("{per:.2}"),
        "≤ 2",
        Some(per <= 2.0),
    );
    let kw = writes / n as f64;
    table.add(
        sc,
        "Kubernetes writes per resource",
        format!("{kw:.2}"),
        "≤ 2",
        Some(kw <= 2.0),
    );
    table.add(
        sc,
        "  + Events per resource",
        format!("{:.2}", events / n as f64),
        "(one per remote write)",
        None,
    );
    table.add(
        sc,
        "peak RSS",
        format!("{:.1} MiB", op.peak_rss_mib()),
        "",
        None,
    );
    if !run_steady {
        return;
    }

    // Steady state: three resync intervals, nothing changes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls_before = s.sim.calls().await;
    let versions = |list: kube::core::ObjectList<kube::api::DynamicObject>| -> Vec<String> {
        list.items
            .iter()
            .map(|o| o.metadata.resource_version.clone().unwrap_or_default())
            .collect()
    };
    let versions_before = versions(backends_api(&s).list(&ListParams::default()).await.unwrap());
    let cpu_before = op.cpu_seconds();
    tokio::time::sleep(resync * 3 + Duration::from_secs(3)).await;
    let (r0, w0) = sim_calls(&calls_before);
    let (r1, w1) = sim_calls(&s.sim.calls().await);
    let versions_after = versions(backends_api(&s).list(&ListParams::default()).await.unwrap());
    let status_writes = versions_before
        .iter()
        .zip(&versions_after)
        .filter(|(a, b)| a != b)
        .count() as f64;
    let cpu = (op.cpu_seconds() - cpu_before) / 3.0;
    let sc = "steady";
    table.add(
        sc,
        "identity-API writes (3 resyncs)",
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
}

async fn reaction(table: &mut Table, n: usize, trials: usize) {
    let s = setup("bench-react").await;
    let secrets: Api<Secret> = Api::namespaced(s.client.clone(), &s.ns.name);
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "bind"}, "stringData": {"password": "p0"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    create_backends(&s, n).await;
    let api = backends_api(&s);
    api.patch(
        "backend-0",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"smtpPasswordSecretRef": {"name": "bind", "key": "password"}}}),
        ),
    )
    .await
    .unwrap();
    let _op = OperatorProcess::start(s.cluster, &s.ns.name, "10m", &[]);
    wait_all_ready(&s, n, Duration::from_secs(600)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
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
    for (what, mut times) in [
        ("spec edit → remote write", spec_times),
        ("Secret rotation → remote write", secret_times),
    ] {
        times.sort();
        let p =
            |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        let (p50, p99) = (p(0.5), p(0.99));
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
            format!("{} ms", p99.as_millis()),
            "≤ 1 s",
            Some(p99 <= Duration::from_secs(1)),
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

async fn memory(table: &mut Table, n: usize) {
    let s = setup("bench-memory").await;
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
    create_backends(&s, n).await;
    let op = OperatorProcess::start(s.cluster, &s.ns.name, "10m", &[]);
    let wall = wait_all_ready(&s, n, Duration::from_secs(1200)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = op.peak_rss_mib();
    table.add(
        "memory",
        &format!("peak RSS, {n} resources + {n} Secrets of 4 KiB"),
        format!("{rss:.1} MiB"),
        "≤ 64 MiB",
        Some(rss <= 64.0),
    );
    table.add(
        "memory",
        "convergence wall time",
        format!("{:.1} s", wall.as_secs_f64()),
        "",
        None,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut n = 1000;
    let mut memory_n = 10_000;
    let mut scenarios = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--n" => n = it.next().and_then(|v| v.parse().ok()).expect("--n N"),
            "--memory-n" => {
                memory_n = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--memory-n N")
            }
            s => scenarios.push(s.to_owned()),
        }
    }
    let all = scenarios.is_empty();
    let wants = |s: &str| all || scenarios.iter().any(|x| x == s);
    let mut table = Table(Vec::new());
    println!("identity-operator benchmark: simulator latency {LATENCY_MS} ms per call");
    if wants("convergence") || wants("steady") {
        convergence_and_steady(&mut table, n, wants("steady")).await;
    }
    if wants("reaction") {
        reaction(&mut table, n, 100).await;
    }
    if wants("memory") {
        memory(&mut table, memory_n).await;
    }
    table.print();
}
