//! One end-to-end test's world: a namespace of its own on the local cluster (the CRDs installed
//! first), a simulator, and the operator once the test starts it. The per-kind suites and the
//! contract suite over every kind start from here; what is particular to one vendor (its seed,
//! its IdentityApi, how to read or edit its objects) stays with the suite that tests it.

use std::time::Duration;

use serde_json::{Value, json};

use super::cluster::{Cluster, TestNamespace, ensure_cluster};
use super::manifests::quickstart_sim;
use super::operator::{
    Operator, apply, condition, count_writes, get_json, install_crds, wait_condition,
};
use super::sim::{SimOptions, SimProcess};

/// How long a resource may take to become Ready (or reach any awaited condition).
pub const READY: Duration = Duration::from_secs(45);

pub struct Env {
    pub cluster: &'static Cluster,
    pub ns: TestNamespace,
    pub sim: SimProcess,
    pub op: Option<Operator>,
    /// The simulator API the suite's kind talks to: what [`Env::writes`] counts.
    pub api: &'static str,
    /// How long [`Env::ready`] and [`Env::condition`] wait.
    pub timeout: Duration,
}

impl Env {
    /// A namespace `<prefix>-<random>` and a simulator started with `options`, seeded with
    /// `seed` (unless null), and the `docs` of that simulator (Secrets, IdentityApis) applied.
    pub async fn new(
        prefix: &str,
        api: &'static str,
        options: SimOptions,
        seed: Value,
        docs: impl FnOnce(&SimProcess) -> Vec<Value>,
    ) -> Env {
        let (cluster, ns) = namespace(prefix);
        let sim = SimProcess::start(options);
        if !seed.is_null() {
            sim.seed(seed).await;
        }
        let env = Env {
            cluster,
            ns,
            sim,
            op: None,
            api,
            timeout: READY,
        };
        for doc in docs(&env.sim) {
            env.apply(&doc);
        }
        env
    }

    /// Starts the operator with the test defaults (2 s resync).
    pub fn start_operator(&mut self) {
        self.start_operator_with(&[]);
    }

    /// Starts the operator with `extra` flags.
    pub fn start_operator_with(&mut self, extra: &[&str]) {
        self.op = Some(Operator::start(self.cluster, &self.ns, extra));
    }

    /// The running operator.
    pub fn operator(&self) -> &Operator {
        self.op.as_ref().expect("the operator is started")
    }

    /// SIGKILLs the operator, as a crash would, and starts a new one.
    pub fn crash_and_restart_operator(&mut self) {
        self.op.as_mut().expect("the operator is started").kill();
        self.start_operator();
    }

    /// The operator's log so far (empty before it is started).
    pub fn operator_log(&self) -> String {
        self.op.as_ref().map(Operator::log).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        self.operator().metrics().await
    }

    pub fn apply(&self, doc: &Value) {
        apply(self.cluster, &self.ns, &doc.to_string());
    }

    /// `kubectl get WHAT -o json`; `None` when it does not exist.
    pub fn get(&self, what: &str) -> Option<Value> {
        get_json(&self.ns, self.cluster, what)
    }

    /// A merge patch of `what`'s spec.
    pub fn patch(&self, what: &str, spec: Value) {
        let patch = json!({"spec": spec}).to_string();
        self.ns
            .kubectl_ok(&["patch", what, "--type=merge", "-p", &patch]);
    }

    /// `kubectl delete` of `what`, waiting (up to `timeout`) until they are gone.
    pub fn delete(&self, what: &[&str], timeout: &str) {
        let timeout = format!("--timeout={timeout}");
        let mut args = vec!["delete"];
        args.extend_from_slice(what);
        args.push(&timeout);
        self.ns.kubectl_ok(&args);
    }

    /// Waits until `what` is Ready for its generation.
    pub async fn ready(&self, what: &str) -> Value {
        wait_condition(
            self.cluster,
            &self.ns,
            what,
            "Ready",
            "True",
            None,
            self.timeout,
        )
        .await
    }

    /// Waits until `what` has `Ready=status` with `reason` for its generation.
    pub async fn condition(&self, what: &str, status: &str, reason: &str) -> Value {
        self.wait_condition(what, "Ready", status, reason).await
    }

    /// Waits until `what` has condition `type_` = `status` with `reason` for its generation.
    pub async fn wait_condition(
        &self,
        what: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> Value {
        let reason = Some(reason);
        wait_condition(
            self.cluster,
            &self.ns,
            what,
            type_,
            status,
            reason,
            self.timeout,
        )
        .await
    }

    /// The message of `obj`'s condition `type_`.
    pub fn message(obj: &Value, type_: &str) -> String {
        condition(obj, type_)
            .unwrap_or_else(|| panic!("no {type_} condition: {obj}"))
            .2
    }

    /// The namespace's Events, as JSON text.
    pub fn events(&self) -> String {
        self.ns.kubectl_ok(&["get", "events", "-o", "json"])
    }

    /// The identity-API writes the simulator logged for the suite's API.
    pub async fn writes(&self) -> usize {
        self.writes_to(self.api).await
    }

    /// The identity-API writes the simulator logged for `api`.
    pub async fn writes_to(&self, api: &str) -> usize {
        count_writes(&self.sim.log().await, api)
    }

    /// The sequence number of the simulator's last logged call.
    pub async fn last_seq(&self) -> u64 {
        self.sim.last_seq().await
    }

    /// The `metadata.resourceVersion`s of the objects `kinds` (a kubectl resource list) in the
    /// namespace, with `extra` kubectl arguments (e.g. a label selector).
    pub fn versions(&self, kinds: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "get",
            kinds,
            "-o",
            "jsonpath={.items[*].metadata.resourceVersion}",
        ];
        args.extend_from_slice(extra);
        self.ns.kubectl_ok(&args)
    }

    /// No value of `secrets` in the operator's log, in an Event or in an object of `kinds` (a
    /// kubectl resource list).
    pub fn assert_never_shown(&self, kinds: &str, secrets: &[&str]) {
        let log = self.operator_log();
        let events = self.events();
        let objects = self.ns.kubectl_ok(&["get", kinds, "-o", "json"]);
        for s in secrets {
            assert!(!log.contains(s), "a secret value is in the operator log");
            assert!(!events.contains(s), "a secret value is in an Event");
            assert!(
                !objects.contains(s),
                "a secret value is in a {kinds} object"
            );
        }
    }
}

/// The local cluster, the operator's CRDs installed, and a namespace `<prefix>-<random>`.
pub fn namespace(prefix: &str) -> (&'static Cluster, TestNamespace) {
    let cluster = ensure_cluster();
    // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
    install_crds(cluster);
    (cluster, TestNamespace::new(cluster, prefix))
}

/// A namespace and a simulator seeded as the quick start seeds it, with the examples'
/// credentials (see [`quickstart_sim`]).
pub async fn quickstart(prefix: &str) -> Env {
    let (cluster, ns) = namespace(prefix);
    let sim = quickstart_sim().await;
    Env {
        cluster,
        ns,
        sim,
        op: None,
        api: "",
        timeout: READY,
    }
}

/// `base` with the top-level fields of `fields` set over it.
pub fn with_fields(mut base: Value, fields: Value) -> Value {
    for (k, v) in fields.as_object().expect("fields as an object") {
        base[k] = v.clone();
    }
    base
}

/// A resource of `kind` named `name` with `spec`.
pub fn resource(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// An end-to-end test of an example manifest: the quick start's simulator (`seed` from
/// `examples/sim-seed/`, the examples' credentials), `example` (a file of `examples/`) applied
/// with this simulator's address, the operator started; returns once `what` is Ready.
pub async fn apply_example(prefix: &str, seed: &str, example: &str, what: &str) -> (Env, Value) {
    let root = env!("CARGO_MANIFEST_DIR");
    let seed = std::fs::read_to_string(format!("{root}/examples/sim-seed/{seed}")).unwrap();
    let options = SimOptions {
        client_id: "demo".into(),
        client_secret: "demo-secret".into(),
        ..SimOptions::default()
    };
    let seed = serde_json::from_str(&seed).unwrap();
    let mut env = Env::new(prefix, "", options, seed, |_| vec![]).await;
    // The example targets the quick-start simulator on port 18080; this one has its own port.
    let manifest = std::fs::read_to_string(format!("{root}/examples/{example}"))
        .unwrap()
        .replace("http://127.0.0.1:18080", env.sim.base_url());
    apply(env.cluster, &env.ns, &manifest);
    env.start_operator();
    let obj = env.ready(what).await;
    (env, obj)
}

/// `status.externalId` of `obj`.
pub fn external_id(obj: &Value) -> String {
    obj["status"]["externalId"]
        .as_str()
        .expect("externalId")
        .to_owned()
}
