//! A real Kubernetes API server for the end-to-end tests.
//!
//! `ensure_cluster()` runs `scripts/local-kube.sh start` once per test process: the first
//! run on a machine builds kube-apiserver from Debian's sources (minutes), later runs
//! reuse the running server (instant). The script serializes concurrent callers with a
//! lock, so test binaries may run in parallel. Each test gets its own namespace from
//! `TestNamespace`, which is deleted when it goes out of scope, even on a failed test
//! (set `KEEP_TEST_NAMESPACES=1` to keep the namespaces of failed tests for a look).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::StreamExt;

/// Label put on every namespace a test creates, to find leftovers:
/// `kubectl delete ns -l identity-operator.dev/test=true`.
pub const TEST_LABEL: &str = "identity-operator.dev/test";

#[derive(Debug, Clone)]
pub struct Cluster {
    /// Admin kubeconfig (client certificate in group system:masters).
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub helm: PathBuf,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// Starts the local API server if needed (once per process) and returns how to reach it.
pub fn ensure_cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start_cluster)
}

fn start_cluster() -> Cluster {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/local-kube.sh");
    // stderr is inherited so the progress of a first, long build shows up.
    let output = Command::new("bash")
        .arg(&script)
        .arg("start")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "`{} start` failed ({}); its messages are above, component logs under the cache dir's cluster/logs/",
        script.display(),
        output.status
    );
    let kubeconfig = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .unwrap_or_else(|| panic!("`{} start` printed no kubeconfig path", script.display()));
    assert!(
        kubeconfig.is_file(),
        "kubeconfig {} does not exist",
        kubeconfig.display()
    );
    // The script keeps the kubeconfig in $CACHE/cluster/ and the tools in $CACHE/bin/.
    let bin = kubeconfig
        .parent()
        .and_then(Path::parent)
        .expect("kubeconfig path has a cache dir")
        .join("bin");
    let cluster = Cluster {
        kubeconfig,
        kubectl: bin.join("kubectl"),
        helm: bin.join("helm"),
    };
    for tool in [&cluster.kubectl, &cluster.helm] {
        assert!(tool.is_file(), "{} is missing", tool.display());
    }
    cluster
}

impl Cluster {
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Waits until the CRD `name` is Established. kubectl 1.20's `wait` fails at once instead
    /// of waiting on a CRD whose status has no conditions yet ("accessor error: <nil>"), which a
    /// CRD applied a moment before can show: it is asked again.
    pub fn wait_established(&self, name: &str) {
        let crd = format!("crd/{name}");
        eventually(
            Duration::from_secs(60),
            &format!("{crd} Established"),
            || {
                let args = ["wait", "--for=condition=Established", "--timeout=60s", &crd];
                self.kubectl(&args).status.success()
            },
        );
    }

    /// Runs kubectl against the cluster and returns whatever it did.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.command(&self.kubectl, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()))
    }

    /// Runs kubectl and returns its stdout; panics with its stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        expect_success("kubectl", args, self.kubectl(args))
    }

    /// Runs kubectl with `stdin` as its standard input (for `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(&self.kubectl, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.kubectl.display()));
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let input = stdin.to_owned();
        // Written from another thread: a large input must not block on a full stdout pipe.
        let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
        let output = child.wait_with_output().expect("kubectl runs");
        let _ = writer.join();
        output
    }

    /// `kubectl_stdin` that returns stdout and panics with stderr when kubectl fails.
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        expect_success("kubectl", args, self.kubectl_stdin(args, stdin))
    }

    /// Runs helm against the cluster.
    pub fn helm(&self, args: &[&str]) -> Output {
        self.command(&self.helm, args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.helm.display()))
    }

    /// A kube client authenticated as the cluster admin.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("kube config from {}: {e}", self.kubeconfig.display()));
        kube::Client::try_from(config).expect("kube client from the local kubeconfig")
    }
}

fn expect_success(program: &str, args: &[&str], output: Output) -> String {
    if !output.status.success() {
        panic!(
            "`{program} {}` failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout),
        );
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `condition` every 200 ms until it holds; panics naming `what` after `timeout`.
pub fn eventually(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A namespace of its own for one test, deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
    cluster: Cluster,
}

impl TestNamespace {
    /// Creates `<prefix>-<random suffix>`, labelled `identity-operator.dev/test=true`.
    pub fn new(cluster: &Cluster, prefix: &str) -> TestNamespace {
        let name = namespace_name(prefix, rand::random::<u32>());
        let manifest = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { TEST_LABEL: "true" } },
        });
        cluster.kubectl_stdin_ok(&["create", "-f", "-"], &manifest.to_string());
        TestNamespace {
            name,
            cluster: cluster.clone(),
        }
    }

    /// kubectl with `--namespace <this namespace>` in front of `args`.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["--namespace", self.name.as_str()];
        all.extend_from_slice(args);
        self.cluster.kubectl_ok(&all)
    }

    /// [`kubectl_ok`](Self::kubectl_ok) with `stdin` on standard input.
    pub fn kubectl_stdin_ok(&self, args: &[&str], stdin: &str) -> String {
        let mut all = vec!["--namespace", self.name.as_str()];
        all.extend_from_slice(args);
        self.cluster.kubectl_stdin_ok(&all, stdin)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("KEEP_TEST_NAMESPACES").is_some() {
            eprintln!("keeping namespace {} of the failed test", self.name);
            return;
        }
        // Never panic here: a panic while unwinding a failed test would abort the run.
        release_finalizers(&self.cluster, &self.name);
        let _ = Command::new(&self.cluster.kubectl)
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .arg("--ignore-not-found")
            .env("KUBECONFIG", &self.cluster.kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The operator's kinds, as (kind, plural).
const MANAGED: [(&str, &str); 6] = [
    ("IdentityApi", "identityapis"),
    ("IdentityBackend", "identitybackends"),
    ("OrgConnection", "orgconnections"),
    ("LdapSettings", "ldapsettings"),
    ("AdminApiApp", "adminapiapps"),
    ("AuthenticationSettings", "authenticationsettings"),
];

/// Takes the operator's finalizers off the resources left in `ns`: the operator of a test is
/// stopped (or about to be), and the namespace would otherwise stay Terminating for good, its
/// objects loading the API server that later tests and benchmarks share. Never panics; in a
/// thread of its own, so that it works from sync and async tests alike.
fn release_finalizers(cluster: &Cluster, ns: &str) {
    let kubeconfig = cluster.kubeconfig.clone();
    let ns = ns.to_owned();
    let released = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(kubeconfig) = kube::config::Kubeconfig::read_from(&kubeconfig) else {
                return;
            };
            let options = kube::config::KubeConfigOptions::default();
            let Ok(config) = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await
            else {
                return;
            };
            let Ok(client) = kube::Client::try_from(config) else {
                return;
            };
            release_secrets(&client, &ns).await;
            for (kind, plural) in MANAGED {
                let ar = kube::api::ApiResource {
                    group: "identity.operator.dev".into(),
                    version: "v1alpha1".into(),
                    api_version: "identity.operator.dev/v1alpha1".into(),
                    kind: kind.into(),
                    plural: plural.into(),
                };
                let api: kube::Api<kube::api::DynamicObject> =
                    kube::Api::namespaced_with(client.clone(), &ns, &ar);
                let Ok(list) = api.list_metadata(&Default::default()).await else {
                    continue;
                };
                let unset = serde_json::json!({"metadata": {"finalizers": null}});
                let held = list.items.into_iter().filter(|o| {
                    o.metadata
                        .finalizers
                        .as_ref()
                        .is_some_and(|f| !f.is_empty())
                });
                futures::stream::iter(held)
                    .for_each_concurrent(32, |o| {
                        let (api, unset) = (api.clone(), &unset);
                        async move {
                            let name = o.metadata.name.unwrap_or_default();
                            let patch = kube::api::Patch::Merge(unset);
                            let _ = api.patch(&name, &Default::default(), &patch).await;
                        }
                    })
                    .await;
            }
        });
    });
    let _ = released.join();
}

/// Takes the operator's in-use finalizer off the Secrets of `ns` (the credentials of its
/// IdentityApis). Never panics.
async fn release_secrets(client: &kube::Client, ns: &str) {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), ns);
    let Ok(list) = api.list_metadata(&Default::default()).await else {
        return;
    };
    for secret in list.items {
        let finalizers = secret.metadata.finalizers.unwrap_or_default();
        if !finalizers.iter().any(|f| f == IN_USE_FINALIZER) {
            continue;
        }
        let kept: Vec<&String> = finalizers
            .iter()
            .filter(|f| *f != IN_USE_FINALIZER)
            .collect();
        let patch = serde_json::json!({"metadata": {"finalizers": kept}});
        let name = secret.metadata.name.unwrap_or_default();
        let patch = kube::api::Patch::Merge(patch);
        let _ = api.patch(&name, &Default::default(), &patch).await;
    }
}

/// The operator's finalizer on the Secrets its connections need.
pub const IN_USE_FINALIZER: &str = "identity.operator.dev/in-use";

/// A valid namespace name (DNS label, ≤ 63 chars) from a free-form prefix.
pub fn namespace_name(prefix: &str, suffix: u32) -> String {
    let suffix = format!("{suffix:08x}");
    let mut base: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(63 - 1 - suffix.len());
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "test" } else { base };
    format!("{base}-{suffix}")
}
