//! The engine on its own: a fake kind (`Gadget`) whose remote objects live in memory drives the
//! generic reconcile against the real API server, so the reconcile contract (create, adopt,
//! steady state, drift, Observe, a rejected spec, a write that does not take, deletion
//! policies) is proven once, independently of any vendor's adapter and of the simulator.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::CustomResource;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use identity_operator::engine::connector::{Connection, Connector, Request};
use identity_operator::engine::controller::{Scope, Shutdown, run_kind};
use identity_operator::engine::dependents::Target;
use identity_operator::engine::export::Listed;
use identity_operator::engine::reader::ClusterReader;
use identity_operator::engine::secrets::{SecretValues, SecretVersions};
use identity_operator::engine::spec::{ApiRef, CommonSpec, ManagedStatus, SecretKeyRef};
use identity_operator::engine::{Adapter, Context, Error, ManagedSpec, Observed, Settings};
use identity_operator::identity::{
    ApiError, ClientConfig, Credentials, IdentityClient, Provider, SecretString,
};
use identity_operator::metrics::Metrics;
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{condition, get_json, wait_condition, wait_for};

/// A test kind: a gadget with a size and a colour, found remotely by its name.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "enginetest.identity-operator.dev",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "ManagedStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct GadgetSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

impl ManagedSpec for GadgetSpec {
    fn common(&self) -> &CommonSpec {
        &self.common
    }
}

/// The remote object.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Gizmo {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    color: Option<String>,
}

/// One test namespace's remote world: its objects, the writes made, and its faults.
#[derive(Default)]
struct World {
    objects: BTreeMap<String, Gizmo>,
    next_id: u32,
    creates: u32,
    updates: u32,
    deletes: u32,
    /// Writes leave `size` as it was (a vendor ignoring a field).
    ignore_size: bool,
    /// How long a lookup takes (a slow vendor).
    find_delay: Duration,
}

static WORLDS: LazyLock<Mutex<BTreeMap<String, World>>> = LazyLock::new(Mutex::default);

fn world<T>(ns: &str, f: impl FnOnce(&mut World) -> T) -> T {
    f(WORLDS.lock().unwrap().entry(ns.to_owned()).or_default())
}

fn ns_of(res: &Gadget) -> String {
    res.metadata.namespace.clone().unwrap_or_default()
}

/// A colour the fake vendor refuses, as a real one answers 422.
fn rejected(gizmo: &Gizmo) -> Result<(), Error> {
    if gizmo.color.as_deref() == Some("invalid") {
        return Err(Error::Rejected(ApiError::Status {
            method: "PUT".into(),
            path: "gizmos".into(),
            status: 422,
            message: "colour invalid".into(),
        }));
    }
    Ok(())
}

struct Fake;

impl Adapter for Fake {
    type Resource = Gadget;
    type Remote = Gizmo;
    const PROVIDER: Provider = Provider::Boruta;
    const CREATES: bool = true;

    fn secret_refs(_res: &Gadget) -> Vec<SecretKeyRef> {
        Vec::new()
    }

    fn desired(res: &Gadget, _secrets: Option<&SecretValues>) -> Result<Gizmo, Error> {
        Ok(Gizmo {
            name: res.spec.name.clone(),
            size: res.spec.size,
            color: res.spec.color.clone(),
        })
    }

    fn diff(desired: &Gizmo, observed: &Gizmo) -> Vec<String> {
        let mut out = Vec::new();
        if desired.size.is_some() && desired.size != observed.size {
            out.push("spec.size".to_owned());
        }
        if desired.color.is_some() && desired.color != observed.color {
            out.push("spec.color".to_owned());
        }
        out
    }

    async fn find(
        _api: &IdentityClient,
        res: &Gadget,
        id: Option<&str>,
    ) -> Result<Option<Observed<Gizmo>>, Error> {
        let delay = world(&ns_of(res), |w| w.find_delay);
        tokio::time::sleep(delay).await;
        Ok(world(&ns_of(res), |w| {
            let found = match id {
                Some(id) => w.objects.get_key_value(id),
                None => w.objects.iter().find(|(_, g)| g.name == res.spec.name),
            };
            found.map(|(id, g)| Observed {
                id: id.clone(),
                remote: g.clone(),
            })
        }))
    }

    async fn create(
        _api: &IdentityClient,
        res: &Gadget,
        desired: &Gizmo,
    ) -> Result<Observed<Gizmo>, Error> {
        world(&ns_of(res), |w| {
            w.creates += 1;
            rejected(desired)?;
            w.next_id += 1;
            let id = format!("g{}", w.next_id);
            w.objects.insert(id.clone(), desired.clone());
            Ok(Observed {
                id,
                remote: desired.clone(),
            })
        })
    }

    async fn update(
        _api: &IdentityClient,
        res: &Gadget,
        id: &str,
        desired: &Gizmo,
        observed: &Gizmo,
        _secrets_changed: bool,
    ) -> Result<Observed<Gizmo>, Error> {
        world(&ns_of(res), |w| {
            w.updates += 1;
            rejected(desired)?;
            let mut stored = desired.clone();
            if w.ignore_size {
                stored.size = observed.size;
            }
            w.objects.insert(id.to_owned(), stored.clone());
            Ok(Observed {
                id: id.to_owned(),
                remote: stored,
            })
        })
    }

    /// Every world's objects; the fake kind drafts no spec (`export` is tested on the real
    /// kinds, tests/export.rs).
    async fn export(_api: &IdentityClient) -> Result<Vec<Listed<Gizmo>>, Error> {
        let worlds = WORLDS.lock().expect("lock");
        let objects = worlds.values().flat_map(|w| w.objects.iter());
        Ok(objects
            .map(|(id, g)| Listed {
                observed: Observed {
                    id: id.clone(),
                    remote: g.clone(),
                },
                draft: Err("the fake kind drafts no spec".into()),
            })
            .collect())
    }

    async fn delete(_api: &IdentityClient, res: &Gadget, id: &str) -> Result<(), Error> {
        world(&ns_of(res), |w| {
            w.deletes += 1;
            w.objects.remove(id);
        });
        Ok(())
    }
}

/// Every `apiRef` names one connection, whose client is never called by the fake adapter.
struct FakeConnector(Arc<IdentityClient>);

impl Connector for FakeConnector {
    fn target(&self, namespace: &str, api_ref: &ApiRef) -> Target {
        Target::Api {
            namespace: namespace.to_owned(),
            name: api_ref.name.clone(),
        }
    }

    fn resolve(&self, request: &Request) -> Result<Connection, Error> {
        Ok(Connection {
            provider: Provider::Boruta,
            generation: 1,
            target: self.target(request.namespace, request.api_ref),
            handle: Arc::new(()),
            sharing: None,
        })
    }

    fn client<'a>(
        &'a self,
        _connection: &'a Connection,
    ) -> BoxFuture<'a, Result<Arc<IdentityClient>, Error>> {
        let client = self.0.clone();
        async move { Ok(client) }.boxed()
    }
}

fn install_crd(cluster: &Cluster) {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let crd = serde_json::to_string(&Gadget::crd()).unwrap();
        cluster.kubectl_stdin_ok(&["apply", "--validate=false", "-f", "-"], &crd);
        cluster.wait_established("gadgets.enginetest.identity-operator.dev");
    });
}

/// The engine running the fake kind in one namespace.
struct Engine {
    ctx: Arc<Context>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Engine {
    /// Four reconciles at a time, a one-second drift check.
    async fn start(cluster: &Cluster, ns: &TestNamespace) -> Engine {
        Engine::start_with(cluster, ns, 4, Duration::from_secs(1)).await
    }

    async fn start_with(
        cluster: &Cluster,
        ns: &TestNamespace,
        concurrency: u16,
        resync: Duration,
    ) -> Engine {
        install_crd(cluster);
        let kube = cluster.client().await;
        let metrics = Arc::new(Metrics::default());
        let config = ClientConfig {
            provider: Provider::Boruta,
            base_url: "http://127.0.0.1:9/".into(),
            tenant: None,
            credentials: Credentials::Bearer(SecretString::new("unused")),
            ca_pem: None,
            insecure_skip_verify: false,
            timeout: Duration::from_secs(1),
            requests_per_second: None,
            burst: None,
            max_concurrent: 4,
            tenant_context: None,
            user_agent: "engine-test".into(),
            connection: "engine-test/fake".into(),
        };
        let client = Arc::new(IdentityClient::new(config, metrics.clone()).unwrap());
        let settings = Settings {
            resync,
            deletion_grace: Duration::from_secs(30),
            instance: "engine-test".into(),
        };
        let ctx = Arc::new(Context::new(
            kube.clone(),
            Arc::new(FakeConnector(client)),
            Arc::new(ClusterReader(kube.clone())),
            Arc::new(SecretVersions::default()),
            metrics,
            settings,
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown: Shutdown = stopped.map(|_| ()).boxed().shared();
        let scope = Scope {
            namespace: Some(ns.name.clone()),
            label_selector: None,
        };
        tokio::spawn(run_kind::<Fake>(
            kube,
            scope,
            ctx.clone(),
            concurrency,
            shutdown,
        ));
        Engine {
            ctx,
            stop: Some(stop),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn gadget(name: &str, spec: Value) -> String {
    let mut all = json!({"apiRef": {"name": "fake"}, "name": name});
    for (k, v) in spec.as_object().unwrap() {
        all[k] = v.clone();
    }
    json!({
        "apiVersion": "enginetest.identity-operator.dev/v1",
        "kind": "Gadget",
        "metadata": {"name": name},
        "spec": all,
    })
    .to_string()
}

fn apply(cluster: &Cluster, ns: &TestNamespace, yaml: &str) {
    cluster.kubectl_stdin_ok(&["apply", "-n", &ns.name, "-f", "-"], yaml);
}

/// (creates, updates, deletes) made so far in `ns`.
fn writes(ns: &TestNamespace) -> (u32, u32, u32) {
    world(&ns.name, |w| (w.creates, w.updates, w.deletes))
}

const WAIT: Duration = Duration::from_secs(30);

async fn ready(cluster: &Cluster, ns: &TestNamespace, name: &str) -> Value {
    let what = format!("gadget/{name}");
    wait_condition(cluster, ns, &what, "Ready", "True", None, WAIT).await
}

/// Waits a few drift checks (one second each) and returns the writes made meanwhile.
async fn writes_over_drift_checks(ns: &TestNamespace) -> (u32, u32, u32) {
    let before = writes(ns);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = writes(ns);
    (after.0 - before.0, after.1 - before.1, after.2 - before.2)
}

fn events(cluster: &Cluster, ns: &TestNamespace, reason: &str) -> usize {
    let out = cluster.kubectl_ok(&["get", "events", "-n", &ns.name, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == reason)
        .count()
}

#[tokio::test]
async fn creates_once_then_writes_only_what_changes() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "engine-create");
    let _engine = Engine::start(cluster, &ns).await;
    apply(cluster, &ns, &gadget("a", json!({"size": 1})));
    let obj = ready(cluster, &ns, "a").await;
    assert_eq!(obj["status"]["externalId"], "g1");
    assert_eq!(obj["status"]["created"], true);
    assert_eq!(writes(&ns), (1, 0, 0));
    assert_eq!(
        writes_over_drift_checks(&ns).await,
        (0, 0, 0),
        "steady state"
    );

    apply(cluster, &ns, &gadget("a", json!({"size": 2})));
    wait_for(WAIT, "the edit written", || async {
        (world(&ns.name, |w| w.objects["g1"].size) == Some(2)).then_some(())
    })
    .await;
    ready(cluster, &ns, "a").await;
    assert_eq!(writes(&ns), (1, 1, 0));

    // Changed behind the operator's back: put back at the next drift check.
    world(&ns.name, |w| {
        w.objects.get_mut("g1").unwrap().size = Some(7)
    });
    wait_for(WAIT, "the drift corrected", || async {
        (world(&ns.name, |w| w.objects["g1"].size) == Some(2)).then_some(())
    })
    .await;
    assert_eq!(writes(&ns), (1, 2, 0));
    assert_eq!(writes_over_drift_checks(&ns).await, (0, 0, 0));
}

#[tokio::test]
async fn observe_reports_drift_and_never_writes() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "engine-observe");
    world(&ns.name, |w| {
        let gizmo = Gizmo {
            name: "b".into(),
            size: Some(1),
            color: None,
        };
        w.objects.insert("existing".into(), gizmo);
    });
    let _engine = Engine::start(cluster, &ns).await;
    let spec = json!({"size": 2, "managementPolicy": "Observe"});
    apply(cluster, &ns, &gadget("b", spec));
    let what = "gadget/b";
    let obj = wait_condition(cluster, &ns, what, "Ready", "False", Some("Drifted"), WAIT).await;
    assert_eq!(obj["status"]["drift"], json!(["spec.size"]));
    assert_eq!(obj["status"]["externalId"], "existing");
    assert!(
        obj["metadata"]["finalizers"].is_null(),
        "Observe holds no finalizer"
    );
    assert_eq!(writes_over_drift_checks(&ns).await, (0, 0, 0));
    assert_eq!(writes(&ns), (0, 0, 0));
}

#[tokio::test]
async fn a_write_that_does_not_take_stops_after_three() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "engine-loop");
    let engine = Engine::start(cluster, &ns).await;
    apply(cluster, &ns, &gadget("c", json!({"size": 1})));
    ready(cluster, &ns, "c").await;
    world(&ns.name, |w| w.ignore_size = true);
    apply(cluster, &ns, &gadget("c", json!({"size": 2})));
    let (what, reason) = ("gadget/c", Some("WriteNotConverging"));
    let obj = wait_condition(cluster, &ns, what, "Ready", "False", reason, WAIT).await;
    let (_, _, message) = condition(&obj, "Ready").unwrap();
    assert!(message.contains("spec.size"), "{message}");
    assert_eq!(writes(&ns), (1, 3, 0), "three writes, then none");
    assert_eq!(writes_over_drift_checks(&ns).await, (0, 0, 0));
    let metrics = engine.ctx.metrics.encode();
    assert!(
        metrics.contains("identity_operator_write_loops_total{kind=\"Gadget\"} 1"),
        "{metrics}"
    );
    wait_for(WAIT, "a WriteNotConverging Event", || async {
        (events(cluster, &ns, "WriteNotConverging") == 1).then_some(())
    })
    .await;

    // The remote object changes: the operator tries again (and stops again).
    world(&ns.name, |w| {
        w.objects.get_mut("g1").unwrap().size = Some(5)
    });
    wait_for(WAIT, "three more writes", || async {
        (writes(&ns) == (1, 6, 0)).then_some(())
    })
    .await;
    assert_eq!(writes_over_drift_checks(&ns).await, (0, 0, 0));

    // The spec changes to something the vendor takes: written, Ready again.
    world(&ns.name, |w| w.ignore_size = false);
    apply(cluster, &ns, &gadget("c", json!({"size": 3})));
    ready(cluster, &ns, "c").await;
    assert_eq!(world(&ns.name, |w| w.objects["g1"].size), Some(3));
}

#[tokio::test]
async fn a_rejected_spec_is_not_sent_again_until_it_changes() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "engine-reject");
    let _engine = Engine::start(cluster, &ns).await;
    apply(cluster, &ns, &gadget("d", json!({"color": "invalid"})));
    let (what, reason) = ("gadget/d", Some("Rejected"));
    wait_condition(cluster, &ns, what, "Ready", "False", reason, WAIT).await;
    assert_eq!(writes(&ns), (1, 0, 0));
    assert_eq!(writes_over_drift_checks(&ns).await, (0, 0, 0));
    apply(cluster, &ns, &gadget("d", json!({"color": "red"})));
    ready(cluster, &ns, "d").await;
    assert_eq!(writes(&ns), (2, 0, 0));
}

#[tokio::test]
async fn deletion_removes_what_was_created_and_keeps_what_was_adopted() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "engine-delete");
    world(&ns.name, |w| {
        let gizmo = Gizmo {
            name: "adopted".into(),
            ..Default::default()
        };
        w.objects.insert("pre".into(), gizmo);
    });
    let _engine = Engine::start(cluster, &ns).await;
    apply(cluster, &ns, &gadget("made", json!({"size": 1})));
    apply(cluster, &ns, &gadget("adopted", json!({})));
    let made = ready(cluster, &ns, "made").await;
    let adopted = ready(cluster, &ns, "adopted").await;
    assert_eq!(made["status"]["created"], true);
    assert_eq!(adopted["status"]["created"], false);
    assert_eq!(adopted["status"]["externalId"], "pre");
    ns.kubectl_ok(&["delete", "gadget", "made", "adopted", "--wait=false"]);
    wait_for(WAIT, "both gone", || async {
        let gone = |n: &str| get_json(&ns, cluster, &format!("gadget/{n}")).is_none();
        (gone("made") && gone("adopted")).then_some(())
    })
    .await;
    let remaining: Vec<String> = world(&ns.name, |w| w.objects.keys().cloned().collect());
    assert_eq!(
        remaining,
        vec!["pre".to_owned()],
        "created deleted, adopted kept"
    );
    assert_eq!(writes(&ns).2, 1);
}

/// Under a load the engine cannot keep up with (every resource's drift check is due again long
/// before the others have had theirs, as with 10,000 resources after an outage), reconciles
/// start in the order they became due: every resource gets its turn, none waits for ever.
#[tokio::test]
async fn under_sustained_load_every_resource_gets_its_turn() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "engine-load");
    world(&ns.name, |w| w.find_delay = Duration::from_millis(20));
    let _engine = Engine::start_with(cluster, &ns, 1, Duration::from_millis(10)).await;
    let names: Vec<String> = (0..16).map(|i| format!("load-{i}")).collect();
    let items: Vec<Value> = names
        .iter()
        .map(|name| serde_json::from_str(&gadget(name, json!({"size": 1}))).unwrap())
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    apply(cluster, &ns, &list.to_string());
    for name in &names {
        ready(cluster, &ns, name).await;
    }
    assert_eq!(writes(&ns), (16, 0, 0));
}
