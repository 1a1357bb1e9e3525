//! Runs the real `identity-operator` binary against the local cluster, the way a user does:
//! CRDs applied with kubectl, the operator started as a process under the Helm chart's
//! ServiceAccount and RBAC, resources applied as YAML.

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::chart::{documents, fingerprint, render_ok, stream};
use super::cluster::{Cluster, TEST_LABEL, TestNamespace, eventually};

static CRDS: OnceLock<()> = OnceLock::new();

/// Every kind the operator defines.
pub const KINDS: [&str; 6] = [
    "IdentityApi",
    "IdentityBackend",
    "OrgConnection",
    "LdapSettings",
    "AdminApiApp",
    "AuthenticationSettings",
];

/// Applies the operator's CRDs (printed by `identity-operator crds`) once per test process.
pub fn install_crds(cluster: &Cluster) {
    CRDS.get_or_init(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
            .arg("crds")
            .output()
            .expect("identity-operator crds runs");
        assert!(out.status.success(), "identity-operator crds failed");
        let yaml = String::from_utf8(out.stdout).expect("UTF-8 YAML");
        // Kubernetes 1.20's published schema does not know x-kubernetes-validations, so the
        // client-side check must be off there; the API server itself accepts the CRDs.
        apply_shared(cluster, &["apply", "--validate=false", "-f", "-"], &yaml);
        // Every CRD the binary prints, so a kind added later is waited for too.
        let names: Vec<String> = documents(&yaml)
            .iter()
            .filter_map(|crd| crd["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        assert!(names.len() > KINDS.len(), "the CRDs printed: {names:?}");
        for name in &names {
            cluster.wait_established(name);
            // A brand-new CRD can be Established a moment before the API server serves it
            // (Kubernetes 1.20 answered 404 to the first test's apply on a fresh cluster).
            crate::support::cluster::eventually(
                Duration::from_secs(30),
                &format!("{name} served"),
                || {
                    cluster
                        .kubectl(&["get", name, "--all-namespaces"])
                        .status
                        .success()
                },
            );
        }
    });
}

/// `kubectl apply` of objects every test process applies (CRDs, the operator's identity): the
/// suites run side by side, and on a fresh cluster two may create the same object at once, so
/// the loser's `AlreadyExists` is tried again (then it is an update).
fn apply_shared(cluster: &Cluster, args: &[&str], yaml: &str) {
    for attempt in 1.. {
        let out = cluster.kubectl_stdin(args, yaml);
        if out.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let raced =
            stderr.contains("AlreadyExists") || stderr.contains("the object has been modified");
        assert!(raced && attempt < 5, "kubectl {args:?} failed: {stderr}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Namespace of the ServiceAccount the operator runs as in the end-to-end tests. Deleting it
/// removes everything `operator_kubeconfig` installed (the cluster-scoped RBAC is owned by it).
pub const E2E_NAMESPACE: &str = "identity-operator-e2e";

static OPERATOR_KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();

/// The kubeconfig the operator runs with: a token of the chart's ServiceAccount, bound by the
/// chart's own RBAC (ClusterRole mode), so a permission the chart lacks fails the test that
/// needs it. Installed once per test process; the tests' own kubectl calls stay admin.
pub fn operator_kubeconfig(cluster: &Cluster) -> &'static Path {
    OPERATOR_KUBECONFIG.get_or_init(|| install_operator_identity(cluster))
}

/// The ServiceAccount and RBAC documents of a rendered chart.
pub fn identity_documents(yaml: &str) -> Vec<Value> {
    documents(yaml)
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some(
                    "ServiceAccount"
                        | "ClusterRole"
                        | "ClusterRoleBinding"
                        | "Role"
                        | "RoleBinding"
                )
            )
        })
        .collect()
}

/// The chart's ServiceAccount and RBAC as `helm template` renders them for `release`.
fn rendered_rbac(cluster: &Cluster, release: &str) -> Vec<Value> {
    // The binary's default Lease name, so a test that passes --leader-election may renew it.
    let values = json!({"leaderElection": {"leaseName": "identity-operator"}});
    identity_documents(&render_ok(cluster, release, E2E_NAMESPACE, &values, &[]))
}

fn install_operator_identity(cluster: &Cluster) -> PathBuf {
    let namespace = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": E2E_NAMESPACE, "labels": {TEST_LABEL: "true"}},
    });
    apply_shared(cluster, &["apply", "-f", "-"], &namespace.to_string());
    let uid = cluster.kubectl_ok(&[
        "get",
        "namespace",
        E2E_NAMESPACE,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);

    // Test processes of other branches may run at the same time with a different chart: the
    // release is named after the RBAC's content, so they never overwrite each other's rules.
    let release = format!(
        "e2e-{:08x}",
        fingerprint(&stream(&rendered_rbac(cluster, "e2e"))) as u32
    );
    let mut docs = rendered_rbac(cluster, &release);
    for doc in &mut docs {
        if doc["metadata"]["namespace"].is_null() {
            doc["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "v1", "kind": "Namespace", "name": E2E_NAMESPACE, "uid": uid,
            }]);
        }
    }
    apply_shared(cluster, &["apply", "-f", "-"], &stream(&docs));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{release}.kubeconfig"));
    service_account_kubeconfig(cluster, &docs, &["--all-namespaces"], &path);
    path
}

/// Writes to `path` a kubeconfig with a token of the ServiceAccount in `docs` (applied already),
/// once its RBAC lets it watch IdentityBackends in `scope` (`--all-namespaces` or
/// `--namespace NS`): RBAC reaches the authorizer through a watch.
pub fn service_account_kubeconfig(cluster: &Cluster, docs: &[Value], scope: &[&str], path: &Path) {
    let account = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("the chart renders a ServiceAccount");
    let name = account["metadata"]["name"].as_str().unwrap();
    let namespace = account["metadata"]["namespace"].as_str().unwrap();
    let user = format!("system:serviceaccount:{namespace}:{name}");
    let mut can_i = vec![
        "auth",
        "can-i",
        "watch",
        "identitybackends.identity.operator.dev",
        "--as",
        &user,
    ];
    can_i.extend_from_slice(scope);
    eventually(Duration::from_secs(30), "the chart's RBAC to apply", || {
        cluster.kubectl(&can_i).status.success()
    });
    let token = cluster.kubectl_ok(&[
        "create",
        "token",
        name,
        "--namespace",
        namespace,
        "--duration",
        "24h",
    ]);
    write_private(path, &token_kubeconfig(cluster, token.trim()));
}

/// A kubeconfig for the admin kubeconfig's server and CA, authenticating with `token`.
fn token_kubeconfig(cluster: &Cluster, token: &str) -> String {
    let text = std::fs::read_to_string(&cluster.kubeconfig).expect("admin kubeconfig");
    let admin: Value = serde_yaml::from_str(&text).expect("admin kubeconfig YAML");
    let context = admin["current-context"].as_str().expect("current-context");
    let cluster_name = admin["contexts"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == context))
        .and_then(|c| c["context"]["cluster"].as_str())
        .expect("the current context names a cluster");
    let mut server = admin["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == cluster_name))
        .map(|c| c["cluster"].clone())
        .expect("the current cluster");
    // A CA file path is relative to the kubeconfig it was written in.
    if let Some(ca) = server["certificate-authority"].as_str() {
        let dir = cluster.kubeconfig.parent().expect("kubeconfig dir");
        server["certificate-authority"] = json!(dir.join(ca).to_string_lossy());
    }
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": "identity-operator", "user": {"token": token}}],
        "contexts": [{"name": "identity-operator", "context": {"cluster": "local", "user": "identity-operator"}}],
        "current-context": "identity-operator",
    });
    serde_yaml::to_string(&config).expect("kubeconfig YAML")
}

/// Writes a file readable only by its owner, atomically (a concurrent test process may be
/// starting an operator with it).
fn write_private(path: &Path, content: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    file.write_all(content.as_bytes())
        .expect("kubeconfig written");
    std::fs::rename(&tmp, path).expect("kubeconfig renamed into place");
}

/// A running operator process watching one namespace; killed when dropped.
pub struct Operator {
    child: Child,
    pub log_path: PathBuf,
    pub metrics_url: String,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// Starts `identity-operator run --namespace <ns>` with a 2 s resync and a 3 s deletion
    /// grace period (unless `extra` sets `--resync-interval` or `--deletion-grace-period`) and
    /// debug logs in a file (tests read it, e.g. to prove no secret is
    /// ever logged), authenticated as the chart's ServiceAccount (see [`operator_kubeconfig`]).
    pub fn start(cluster: &Cluster, ns: &TestNamespace, extra: &[&str]) -> Operator {
        install_crds(cluster);
        let kubeconfig = operator_kubeconfig(cluster);
        Operator::start_as(cluster, ns, extra, kubeconfig)
    }

    /// `start` with another identity: the kubeconfig at `kubeconfig`.
    pub fn start_as(
        cluster: &Cluster,
        ns: &TestNamespace,
        extra: &[&str],
        kubeconfig: &Path,
    ) -> Operator {
        install_crds(cluster);
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("operator.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        // A flag's default here, unless `extra` sets it.
        let default = |flag: &str, value: &str| -> Vec<String> {
            if extra.contains(&flag) {
                vec![]
            } else {
                vec![flag.into(), value.into()]
            }
        };
        let mut args: Vec<String> = vec![
            "run".into(),
            "--namespace".into(),
            ns.name.clone(),
            "--metrics-addr".into(),
            "127.0.0.1:0".into(),
            "--log-format".into(),
            "json".into(),
        ];
        args.extend(default("--resync-interval", "2s"));
        args.extend(default("--deletion-grace-period", "3s"));
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            // As in the chart's Deployment: the Lease (with --leader-election) goes there.
            .env("POD_NAMESPACE", E2E_NAMESPACE)
            .env(
                "RUST_LOG",
                "debug,hyper=info,h2=info,tower=info,rustls=info,kube_client=info",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("identity-operator starts");
        let mut op = Operator {
            child,
            log_path,
            metrics_url: String::new(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = op.log();
            if let Some(addr) = log
                .lines()
                .filter(|l| l.contains("serving /metrics"))
                .find_map(|l| serde_json::from_str::<Value>(l).ok())
                .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned))
            {
                op.metrics_url = format!("http://{addr}/metrics");
                break;
            }
            if let Ok(Some(status)) = op.child.try_wait() {
                panic!("identity-operator exited early ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "operator did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        op
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(&self.metrics_url)
            .await
            .expect("metrics endpoint")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- operator log (last 60 lines) ---");
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            for l in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{l}");
            }
        }
        self.kill();
    }
}

/// Polls an async `condition` until it returns `Some`; panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `kubectl get <what> -o json` in the test namespace, parsed; `None` when it does not exist.
pub fn get_json(ns: &TestNamespace, cluster: &Cluster, what: &str) -> Option<Value> {
    let out = cluster.kubectl(&["get", "-n", &ns.name, what, "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The status of condition `type_` (`"True"`, `"False"`), with its reason.
pub fn condition(obj: &Value, type_: &str) -> Option<(String, String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// Waits until `what` has condition `type_` with `status` (and, when given, `reason`) for its
/// current generation; returns the object.
pub async fn wait_condition(
    cluster: &Cluster,
    ns: &TestNamespace,
    what: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    timeout: Duration,
) -> Value {
    let desc = format!("{what} {type_}={status} {reason:?}");
    wait_for(timeout, &desc, || async {
        let obj = get_json(ns, cluster, what)?;
        let (s, r, _) = condition(&obj, type_)?;
        let current = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
        (current && s == status && reason.is_none_or(|want| want == r)).then_some(obj)
    })
    .await
}

/// Applies a YAML document (or several) in the test namespace.
pub fn apply(cluster: &Cluster, ns: &TestNamespace, yaml: &str) {
    cluster.kubectl_stdin_ok(&["apply", "-n", &ns.name, "-f", "-"], yaml);
}

/// Sum of the simulator's call counts for `api` and `method` (all statuses).
pub fn count_calls(calls: &Value, api: &str, method: &str) -> u64 {
    calls[api][method]
        .as_object()
        .map(|by_status| by_status.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// The identity-API writes (POST, PUT, PATCH, DELETE) the simulator logged for `api`, oldest
/// first, leaving out authentication calls (logins, and the logout of a replaced Xelion
/// session).
pub fn writes<'l>(log: &'l Value, api: &str) -> Vec<&'l Value> {
    let entries = log["entries"].as_array().or_else(|| log.as_array());
    entries
        .into_iter()
        .flatten()
        .filter(|e| e["api"] == api)
        .filter(|e| {
            matches!(
                e["method"].as_str(),
                Some("POST" | "PUT" | "PATCH" | "DELETE")
            )
        })
        .filter(|e| {
            let path = e["path"].as_str().unwrap_or_default();
            !path.contains("/oauth/")
                && !path.contains("/login")
                && !path.contains("/logout")
                && !path.contains("/sessions")
                && !path.contains("/authenticate")
        })
        .collect()
}

/// Number of identity-API writes the simulator logged for `api` (see [`writes`]).
pub fn count_writes(log: &Value, api: &str) -> usize {
    writes(log, api).len()
}

/// Events of the object `name` in the namespace, as `reason: note` lines.
pub fn events_of(ns: &TestNamespace, name: &str) -> Vec<String> {
    let out = ns.kubectl_ok(&["get", "events", "-o", "json"]);
    let events: Value = serde_json::from_str(&out).expect("events JSON");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name)
        .map(|e| {
            let note = e["message"]
                .as_str()
                .or(e["note"].as_str())
                .unwrap_or_default();
            format!("{}: {note}", e["reason"].as_str().unwrap_or_default())
        })
        .collect()
}

pub async fn wait_event(ns: &TestNamespace, name: &str, reason: &str, fragment: &str) -> String {
    let prefix = format!("{reason}: ");
    wait_for(
        Duration::from_secs(30),
        &format!("{reason} Event of {name}"),
        || async {
            events_of(ns, name)
                .into_iter()
                .find(|e| e.starts_with(&prefix) && e.contains(fragment))
        },
    )
    .await
}
