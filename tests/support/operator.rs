//! Runs the real `identity-operator` binary against the local cluster, the way a user does:
//! CRDs applied with kubectl, the operator started as a process, resources applied as YAML.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::{Cluster, TestNamespace};

static CRDS: OnceLock<()> = OnceLock::new();

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
        cluster.kubectl_stdin_ok(&["apply", "--validate=false", "-f", "-"], &yaml);
        for plural in [
            "identityapis",
            "identitybackends",
            "orgconnections",
            "ldapsettings",
            "adminapiapps",
            "authenticationsettings",
        ] {
            cluster.kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{plural}.identity.operator.dev"),
            ]);
        }
    });
}

/// A running operator process watching one namespace; killed when dropped.
pub struct Operator {
    child: Child,
    pub log_path: PathBuf,
    pub metrics_url: String,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// Starts `identity-operator run --namespace <ns>` with a 2 s resync and debug logs in a
    /// file (tests read it, e.g. to prove no secret is ever logged).
    pub fn start(cluster: &Cluster, ns: &TestNamespace, extra: &[&str]) -> Operator {
        install_crds(cluster);
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("operator.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--namespace".into(),
            ns.name.clone(),
            "--metrics-addr".into(),
            "127.0.0.1:0".into(),
            "--resync-interval".into(),
            "2s".into(),
            "--deletion-grace-period".into(),
            "3s".into(),
            "--log-format".into(),
            "json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_identity-operator"))
            .args(&args)
            .env("KUBECONFIG", &cluster.kubeconfig)
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

/// Number of identity-API writes (POST, PUT, PATCH, DELETE) the simulator received for `api`,
/// leaving out authentication calls.
pub fn count_writes(log: &Value, api: &str) -> usize {
    log["entries"]
        .as_array()
        .or_else(|| log.as_array())
        .map(|entries| {
            entries
                .iter()
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
                        && !path.contains("/sessions")
                        && !path.contains("/authenticate")
                })
                .count()
        })
        .unwrap_or(0)
}
