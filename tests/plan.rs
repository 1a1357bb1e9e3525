//! End to end: `identity-operator plan` (docs/plan.md), the real binary against the simulator
//! and the local API server, reading the cluster as a ServiceAccount that may only get, list
//! and watch. The manifests are the project's `examples/`, pointed at the test's simulator.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use support::chart::stream;
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::env::{Env, quickstart};
use support::manifests::examples;
use support::operator::{
    E2E_NAMESPACE, Operator, count_writes, operator_kubeconfig, service_account_kubeconfig,
    wait_condition,
};

const READY: Duration = Duration::from_secs(60);
const APIS: [&str; 5] = ["boruta", "auth0", "vcd", "entrust", "xelion"];
/// The managed resources of the examples, by kind.
const RESOURCES: [(&str, &str); 5] = [
    ("IdentityBackend", "corporate-ldap"),
    ("OrgConnection", "acme-corporate-sso"),
    ("LdapSettings", "acme-ldap"),
    ("AdminApiApp", "ci-pipeline"),
    ("AuthenticationSettings", "master-authentication"),
];
/// Every secret value the examples hold, and those the tests change them to.
const SECRET_VALUES: [&str; 5] = [
    "demo-secret",
    "change-me-ldap-bind",
    "change-me-bind-password",
    "rotated-ldap-bind",
    "rotated-vcd-bind",
];

impl Env {
    /// The examples' documents, pointed at this simulator.
    fn examples(&self) -> Vec<Value> {
        examples(&self.sim)
    }

    /// `plan ARGS -n NS` as the read-only ServiceAccount.
    fn plan(&self, args: &[&str], stdin: Option<&str>) -> Planned {
        let mut all = args.to_vec();
        all.extend(["-n", &self.ns.name]);
        run_plan(&all, stdin, read_only_kubeconfig(self.cluster))
    }

    /// `plan -f FILE -o json` of `docs`, run twice: the output must be byte-identical.
    fn plan_docs(&self, docs: &[Value]) -> Planned {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("manifests.yaml");
        std::fs::write(&file, stream(docs)).expect("manifests written");
        let file = file.to_str().expect("UTF-8 path");
        let first = self.plan(&["-f", file, "-o", "json"], None);
        let second = self.plan(&["-f", file, "-o", "json"], None);
        assert_eq!(first.stdout, second.stdout, "plan is not deterministic");
        first
    }

    fn plan_cluster(&self) -> Planned {
        self.plan(&["--from-cluster", "-o", "json"], None)
    }

    /// No identity-API write since `since`, and at least one read of every API.
    async fn assert_read_only_since(&self, since: u64) {
        for api in APIS {
            let mut log = self.sim.log_since(api, since).await;
            // Ending its session (Xelion's logout) is authentication, not a write.
            if let Some(entries) = log["entries"].as_array_mut() {
                entries.retain(|e| !e["path"].as_str().unwrap_or_default().ends_with("/logout"));
            }
            assert_eq!(count_writes(&log, api), 0, "plan wrote to {api}: {log}");
            let reads = log["entries"]
                .as_array()
                .map(|e| e.iter().filter(|e| e["method"] == "GET").count())
                .unwrap_or(0);
            assert!(reads > 0, "plan never read {api}");
        }
    }
}

/// What one `plan` run printed and returned.
struct Planned {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Planned {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("plan -o json: {e}\n{}\n{}", self.stdout, self.stderr))
    }

    /// `kind` → the resource's plan.
    fn by_kind(&self) -> BTreeMap<String, Value> {
        self.json()["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|r| (r["kind"].as_str().unwrap_or_default().to_owned(), r.clone()))
            .collect()
    }

    fn assert_actions(&self, expected: &[(&str, &str)]) {
        let by_kind = self.by_kind();
        for (kind, action) in expected {
            let planned = by_kind
                .get(*kind)
                .unwrap_or_else(|| panic!("no plan for {kind}: {}", self.stdout));
            assert_eq!(planned["action"], *action, "{kind}: {planned}");
        }
    }

    fn assert_no_secret(&self) {
        for value in SECRET_VALUES {
            assert!(
                !self.stdout.contains(value) && !self.stderr.contains(value),
                "a secret value was printed:\n{}\n{}",
                self.stdout,
                self.stderr
            );
        }
    }
}

fn run_plan(args: &[&str], stdin: Option<&str>, kubeconfig: &Path) -> Planned {
    let mut command = Command::new(env!("CARGO_BIN_EXE_identity-operator"));
    command.arg("plan").args(args);
    run(command, stdin, kubeconfig)
}

/// `kubectl identity plan ARGS` through the real kubectl, the binary linked on `PATH` as the
/// plugin `kubectl-identity`.
fn run_plugin_plan(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> Planned {
    let plugins = tempfile::tempdir().expect("temp dir");
    let link = plugins.path().join("kubectl-identity");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_identity-operator"), link).expect("link");
    let path = format!(
        "{}:{}",
        plugins.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new(&cluster.kubectl);
    command
        .args(["identity", "plan"])
        .args(args)
        .env("PATH", path);
    run(command, stdin, read_only_kubeconfig(cluster))
}

fn run(mut command: Command, stdin: Option<&str>, kubeconfig: &Path) -> Planned {
    let mut child = command
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("plan starts");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("stdin written");
    }
    let out = child.wait_with_output().expect("plan finishes");
    Planned {
        code: out.status.code().expect("an exit code"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8"),
    }
}

static READ_ONLY: OnceLock<PathBuf> = OnceLock::new();

/// A kubeconfig of a ServiceAccount that may only get, list and watch the operator's kinds,
/// Secrets and ConfigMaps: `plan` needs nothing more.
fn read_only_kubeconfig(cluster: &Cluster) -> &'static Path {
    READ_ONLY.get_or_init(|| {
        operator_kubeconfig(cluster); // creates the e2e namespace
        let name = "identity-plan-reader";
        let read = json!(["get", "list", "watch"]);
        let docs = vec![
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": E2E_NAMESPACE}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name},
                "rules": [
                    {"apiGroups": ["identity.operator.dev"], "resources": ["*"], "verbs": read},
                    {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": read},
                ]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": E2E_NAMESPACE}]}),
        ];
        cluster.kubectl_stdin_ok(&["apply", "-f", "-"], &stream(&docs));
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plan-reader.kubeconfig");
        service_account_kubeconfig(cluster, &docs, &["--all-namespaces"], &path);
        path
    })
}

/// `docs` with `edit` applied to the document of `kind`.
fn edited(docs: &[Value], kind: &str, edit: impl Fn(&mut Value)) -> Vec<Value> {
    let mut docs = docs.to_vec();
    for d in docs.iter_mut().filter(|d| d["kind"] == kind) {
        edit(d);
    }
    docs
}

/// One spec field per kind that the operator writes, changed.
fn changed_specs(docs: &[Value]) -> Vec<Value> {
    let edits: [(&str, &str, Value); 5] = [
        ("IdentityBackend", "/spec/ldapPoolSize", json!(7)),
        ("OrgConnection", "/spec/showAsButton", json!(false)),
        ("LdapSettings", "/spec/definedSettings/port", json!(389)),
        (
            "AdminApiApp",
            "/spec/description",
            json!("Deploys from CI, reviewed"),
        ),
        (
            "AuthenticationSettings",
            "/spec/tokenRetentionDays",
            json!(31),
        ),
    ];
    edits
        .iter()
        .fold(docs.to_vec(), |docs, (kind, pointer, value)| {
            edited(&docs, kind, |d| {
                *d.pointer_mut(pointer).expect(pointer) = value.clone()
            })
        })
}

fn with_secret(docs: &[Value], name: &str, key: &str, value: &str) -> Vec<Value> {
    let mut docs = docs.to_vec();
    for d in docs
        .iter_mut()
        .filter(|d| d["kind"] == "Secret" && d["metadata"]["name"] == name)
    {
        d["stringData"][key] = json!(value);
    }
    docs
}

fn change<'a>(planned: &'a Value, path: &str) -> &'a Value {
    planned["changes"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["path"] == path))
        .unwrap_or_else(|| panic!("no change of {path} in {planned}"))
}

#[tokio::test]
async fn every_action_for_every_kind_and_not_one_write() {
    let env = quickstart("plan-actions").await;
    let docs = env.examples();
    let before = env.last_seq().await;

    // Nothing applied yet: what applying the examples would do.
    let first = env.plan_docs(&docs);
    assert_eq!(first.code, 2, "{}{}", first.stdout, first.stderr);
    first.assert_actions(&[
        ("IdentityBackend", "create"),
        ("OrgConnection", "create"),
        ("LdapSettings", "adopt"),
        ("AdminApiApp", "create"),
        ("AuthenticationSettings", "adopt"),
    ]);
    let backend = &first.by_kind()["IdentityBackend"];
    assert_eq!(change(backend, "spec.name")["after"], "Corporate LDAP");
    let bind = change(backend, "spec.ldapMasterPasswordSecretRef");
    assert_eq!(
        (&bind["before"], &bind["sensitive"]),
        (&json!("(sensitive)"), &json!(true))
    );
    first.assert_no_secret();
    let summary = &first.json()["summary"];
    assert_eq!(
        (&summary["create"], &summary["adopt"]),
        (&json!(3), &json!(2))
    );
    env.assert_read_only_since(before).await;

    // The same manifests, planned for a namespace holding none of them, once the operator has
    // created the remote objects: found by their natural key, they would be adopted.
    env.cluster
        .kubectl_stdin_ok(&["apply", "-n", &env.ns.name, "-f", "-"], &stream(&docs));
    let mut op = Operator::start(env.cluster, &env.ns, &[]);
    for (kind, name) in RESOURCES {
        let what = format!("{}/{name}", kind.to_lowercase());
        wait_condition(env.cluster, &env.ns, &what, "Ready", "True", None, READY).await;
    }
    op.kill();
    let converged = env.last_seq().await;
    let elsewhere = TestNamespace::new(env.cluster, "plan-adopt");
    let adopt = run_plan(
        &["-f", "-", "-n", &elsewhere.name, "-o", "json"],
        Some(&stream(&docs)),
        read_only_kubeconfig(env.cluster),
    );
    adopt.assert_actions(&[
        ("IdentityBackend", "adopt"),
        ("OrgConnection", "adopt"),
        ("AdminApiApp", "adopt"),
    ]);

    // Right after the operator converged: nothing to do.
    let now = env.plan_cluster();
    assert_eq!(now.code, 0, "{}{}", now.stdout, now.stderr);
    let noops: Vec<_> = RESOURCES.iter().map(|(k, _)| (*k, "noop")).collect();
    now.assert_actions(&noops);

    // One field per kind changed, and two passwords: an update each, passwords never shown.
    let changed = changed_specs(&docs);
    let changed = with_secret(
        &changed,
        "corporate-ldap-bind",
        "password",
        "rotated-ldap-bind",
    );
    let changed = with_secret(&changed, "acme-ldap-bind", "password", "rotated-vcd-bind");
    let update = env.plan_docs(&changed);
    assert_eq!(update.code, 2);
    let updates: Vec<_> = RESOURCES.iter().map(|(k, _)| (*k, "update")).collect();
    update.assert_actions(&updates);
    let by_kind = update.by_kind();
    let port = change(&by_kind["LdapSettings"], "spec.definedSettings.port");
    assert_eq!(
        (&port["before"], &port["after"]),
        (&json!(636), &json!(389))
    );
    let boruta = change(
        &by_kind["IdentityBackend"],
        "spec.ldapMasterPasswordSecretRef",
    );
    assert_eq!(boruta["state"], "changed; will be sent", "{boruta}");
    let vcd = change(
        &by_kind["LdapSettings"],
        "spec.definedSettings.passwordSecretRef",
    );
    assert_eq!(vcd["state"], "unknown; will be sent", "{vcd}");
    update.assert_no_secret();
    let text = env.plan(&["-f", "-"], Some(&stream(&changed)));
    assert_eq!(text.code, 2);
    assert!(text.stdout.contains("~ LdapSettings"), "{}", text.stdout);
    assert!(
        text.stdout.contains("spec.definedSettings.port: 636 → 389"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("(sensitive)"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("Plan: 0 to create, 0 to adopt, 5 to update"),
        "{}",
        text.stdout
    );
    text.assert_no_secret();

    // A Secret rewritten with the same value: Boruta's copy is compared and found unchanged,
    // yet the operator sends it again (its resourceVersion moved on).
    env.ns
        .kubectl_ok(&["annotate", "secret", "corporate-ldap-bind", "touched=1"]);
    let touched = env.plan_cluster();
    let backend = &touched.by_kind()["IdentityBackend"];
    assert_eq!(backend["action"], "update", "{backend}");
    let bind = change(backend, "spec.ldapMasterPasswordSecretRef");
    assert_eq!(bind["state"], "unchanged; will be sent", "{bind}");
    touched.assert_no_secret();

    // Observe: the drift reported, nothing written (exit 0).
    let observe = changed_specs(&docs)
        .into_iter()
        .map(|mut d| {
            if RESOURCES.iter().any(|(k, _)| d["kind"] == *k) {
                d["spec"]["managementPolicy"] = json!("Observe");
            }
            d
        })
        .collect::<Vec<_>>();
    let observed = env.plan_docs(&observe);
    let observes: Vec<_> = RESOURCES.iter().map(|(k, _)| (*k, "observe")).collect();
    observed.assert_actions(&observes);
    for (kind, planned) in observed.by_kind() {
        assert!(
            !planned["changes"].as_array().unwrap().is_empty(),
            "{kind}: {planned}"
        );
    }
    assert_eq!(observed.code, 0, "{}", observed.stdout);

    // Blocked: the IdentityApi named does not exist.
    let missing = RESOURCES.iter().fold(docs.clone(), |docs, (kind, _)| {
        edited(&docs, kind, |d| {
            d["spec"]["apiRef"]["name"] = json!("missing")
        })
    });
    let blocked = env.plan_docs(&missing);
    assert_eq!(blocked.code, 2);
    for (kind, planned) in blocked.by_kind() {
        assert_eq!(planned["action"], "blocked", "{kind}: {planned}");
        assert!(planned["reason"].is_string(), "{kind}: {planned}");
    }

    // Being deleted (the operator is stopped, its finalizers hold those that delete something
    // remote): the deletion policy's effect.
    for (kind, name) in RESOURCES {
        let what = format!("{}/{name}", kind.to_lowercase());
        env.ns.kubectl_ok(&["delete", &what, "--wait=false"]);
    }
    let deleting = env.plan_cluster();
    deleting.assert_actions(&[
        ("IdentityBackend", "delete"),
        ("OrgConnection", "delete"),
        ("AdminApiApp", "delete"),
    ]);
    // The settings kinds' deletion leaves the remote settings alone: without a finalizer they
    // are gone at once, and there is nothing to plan for them.
    let planned = deleting.by_kind();
    assert!(
        !planned.contains_key("LdapSettings") && !planned.contains_key("AuthenticationSettings"),
        "{}",
        deleting.stdout
    );
    assert_eq!(
        deleting.code, 2,
        "the IdentityBackend's remote object would be deleted"
    );

    env.assert_read_only_since(converged).await;
}

#[tokio::test]
async fn stdin_a_helm_rendered_chart_and_the_kubectl_plugin_plan_like_the_files() {
    let env = quickstart("plan-inputs").await;
    let docs = env.examples();
    let files = env.plan_docs(&docs);

    // The same manifests as a chart's templates, the simulator's URL a value.
    let chart = tempfile::tempdir().expect("temp dir");
    let templates = chart.path().join("templates");
    std::fs::create_dir(&templates).expect("templates/");
    std::fs::write(
        chart.path().join("Chart.yaml"),
        "apiVersion: v2\nname: identity\nversion: 0.1.0\n",
    )
    .expect("Chart.yaml");
    let templated = stream(&docs).replace(env.sim.base_url(), "{{ .Values.url }}");
    std::fs::write(templates.join("identity.yaml"), templated).expect("template");
    let url = format!("url={}", env.sim.base_url());
    let out = env.cluster.helm(&[
        "template",
        "identity",
        chart.path().to_str().unwrap(),
        "--set",
        &url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).expect("UTF-8");
    let piped = env.plan(&["-f", "-", "-o", "json"], Some(&rendered));
    assert_eq!(piped.code, 2, "{}", piped.stderr);
    assert_eq!(piped.stdout, files.stdout);

    // The same, as `kubectl identity plan`.
    let args = ["-f", "-", "-o", "json", "-n", &env.ns.name];
    let plugin = run_plugin_plan(env.cluster, &args, Some(&rendered));
    assert_eq!(plugin.code, 2, "{}", plugin.stderr);
    assert_eq!(plugin.stdout, files.stdout);
}

#[test]
fn exit_code_one_when_plan_cannot_answer() {
    let cluster = ensure_cluster();
    let unreadable = run_plan(
        &["-f", "/nonexistent/manifests.yaml"],
        None,
        &cluster.kubeconfig,
    );
    assert_eq!(unreadable.code, 1, "{}", unreadable.stderr);
    assert!(unreadable.stderr.contains("/nonexistent/manifests.yaml"));

    let dir = tempfile::tempdir().expect("temp dir");
    let nowhere = dir.path().join("nowhere.kubeconfig");
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "gone", "user": "u"}}],
        "current-context": "c",
    });
    std::fs::write(&nowhere, config.to_string()).expect("kubeconfig");
    let no_cluster = run_plan(&["--from-cluster"], None, &nowhere);
    assert_eq!(no_cluster.code, 1, "{}", no_cluster.stderr);
    assert!(
        no_cluster
            .stderr
            .contains("--from-cluster needs a reachable cluster")
    );
}
