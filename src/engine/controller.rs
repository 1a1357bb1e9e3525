//! The watches and controllers the engine runs for any kind: one kube-runtime Controller per
//! managed kind, Secrets watched as metadata only, and the watch settings every watch of the
//! operator shares. Which kinds run is the registry's business (`crate::kinds`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use rand::seq::SliceRandom;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::warn;

use super::cleanup::holds_connection;
use super::dependents::Target;
use super::key::kind_of;
use super::lean::Lean;
use super::reconcile::{error_policy, reconcile};
use super::usage::{Feed, Use};
use super::{Adapter, Context, Error, Managed, ObjectKey, PAUSED_ANNOTATION};
use crate::metrics::Metrics;

/// Which objects this replica manages.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// Label selector applied to the managed kinds and IdentityApis.
    pub label_selector: Option<String>,
}

pub fn api_for<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Watches end after a minute and resume from their last resourceVersion (cheap, no relist):
/// after an API server restart a watch can stay open yet deliver nothing (seen on 1.20), and
/// this bounds how long such a watch goes unnoticed.
const WATCH_TIMEOUT_SECONDS: u32 = 60;

/// Lists are consistent reads, in pages. `any_semantic` (resourceVersion=0) would be served
/// from the API server's cache, but after a restart that cache can be older than the watch
/// window, and every relist then ends in 410 Gone again; it also ignores the page size.
fn base_watch_config() -> watcher::Config {
    watcher::Config::default().timeout(WATCH_TIMEOUT_SECONDS)
}

/// The watch of a kind of ours: the base, with the scope's label selector.
pub fn watch_config(scope: &Scope) -> watcher::Config {
    let cfg = base_watch_config();
    match &scope.label_selector {
        Some(sel) => cfg.labels(sel),
        None => cfg,
    }
}

/// Reconcile only when something the operator acts on changed: the spec (generation), the
/// pause annotation, or a deletion. The operator's own status and finalizer writes never
/// trigger another reconcile.
pub fn significant_change<K: Resource>(obj: &K) -> Option<u64> {
    let mut h = DefaultHasher::new();
    obj.meta().generation.hash(&mut h);
    obj.meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    obj.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .hash(&mut h);
    Some(h.finish())
}

/// kubectl's copy of the applied manifest, never kept (neither in the cache nor the memo).
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what the operator never reads from its watch caches: managed fields and kubectl's
/// last-applied annotation (a second copy of the spec) are most of an object's size.
pub fn slim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(annotations) = obj.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// What ends the controllers: resolves once, on a signal, for every task that waits on it.
pub type Shutdown = Shared<BoxFuture<'static, ()>>;

/// Watches the Secrets of the scope as metadata only, keeping their resourceVersions in
/// `ctx.secrets` and requeueing the resources that reference a Secret when it changes.
pub fn watch_secrets(client: &Client, scope: &Scope, ctx: Arc<Context>) -> JoinHandle<()> {
    let secrets_api: Api<PartialObjectMeta<Secret>> = match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let stream = watcher(secrets_api, base_watch_config()).backoff(watch_backoff());
    tokio::spawn(stream.for_each(move |event| {
        if let Ok(event) = event {
            ctx.secrets.apply(&event);
            // A re-list (after a watch ended) shows a Secret changed meanwhile as InitApply.
            if let watcher::Event::Apply(meta)
            | watcher::Event::InitApply(meta)
            | watcher::Event::Delete(meta) = &event
            {
                let target = Target::Secret {
                    namespace: meta.namespace().unwrap_or_default(),
                    name: meta.name_any(),
                };
                ctx.dependents
                    .changed(&target, meta.metadata.resource_version.as_deref());
            }
        }
        future::ready(())
    }))
}

/// `Store::wait_until_ready` remembers only the last task waiting (a oneshot channel keeps one
/// waker), and the IdentityApi controller waits on the same store: ask again every 50 ms.
pub async fn until_ready<K>(store: &reflector::Store<K>)
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    loop {
        match tokio::time::timeout(
            std::time::Duration::from_millis(50),
            store.wait_until_ready(),
        )
        .await
        {
            Ok(Ok(())) => return,
            Ok(Err(_)) => {
                warn!("a watch ended before its first list");
                return;
            }
            Err(_elapsed) => continue,
        }
    }
}

pub fn requeues<K>(
    rx: mpsc::UnboundedReceiver<(String, String)>,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send
where
    K: Resource<DynamicType = ()>,
{
    UnboundedReceiverStream::new(rx).map(|(ns, name)| ObjectRef::new(&name).within(&ns))
}

/// Runs the controller of one managed kind until `shutdown`.
pub async fn run_kind<A: Adapter>(
    client: Client,
    scope: Scope,
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: Shutdown,
) {
    let (reader, writer) = reflector::store::<Lean<A::Resource>>();
    let handover = ctx.clone();
    let feed = ctx.usage.feed();
    let stream = watcher(
        api_for::<A::Resource>(&client, &scope),
        watch_config(&scope),
    )
    .backoff(watch_backoff())
    .modify(slim)
    .inspect_ok(move |event| {
        if let watcher::Event::Apply(res) | watcher::Event::InitApply(res) = event {
            handover.memo.seen(res);
        }
        feed_usage::<A>(&handover, feed, event);
        forget_deleted(&handover.metrics, kind_of::<A::Resource>(), event);
        // A settings singleton without a finalizer is gone without a cleanup reconcile: the
        // next resource waiting for its IdentityApi may take over now, not at its resync.
        // (The cache drops it below, in the same poll, before that reconcile can start.)
        if let (true, watcher::Event::Delete(res)) = (A::SINGLETON, event) {
            let ns = res.namespace().unwrap_or_default();
            let target = handover.connector.target(&ns, &res.common().api_ref);
            handover.dependents.trigger(&target);
        }
    })
    .map_ok(lean)
    .reflect(writer)
    .applied_objects()
    .predicate_filter(significant_change, Default::default());
    let (tx, rx) = mpsc::unbounded_channel();
    ctx.dependents
        .register(kind_of::<A::Resource>(), tx.clone());
    ctx.metrics.kind_started(kind_of::<A::Resource>());
    ctx.register_store(reader.clone());
    // Drift checks hold at most a quarter of the turns: a change queues behind that many.
    let checks = Arc::new(Checks::new(usize::from(concurrency / 4)));
    let sweep = tokio::spawn(sweep(
        reader.clone(),
        tx,
        ctx.settings.resync,
        checks.clone(),
    ));
    let turns = in_turn::<A>(concurrency, reader.clone(), checks, shutdown.clone());
    Controller::for_stream(stream, reader)
        // Unbounded here: `in_turn` limits how many run at once, in the order they came due.
        .with_config(controller::Config::default().concurrency(0))
        .reconcile_on(requeues(rx))
        .graceful_shutdown_on(shutdown)
        .run(turns, lean_error_policy::<A>, ctx.clone())
        .for_each(|_| future::ready(()))
        .await;
    sweep.abort();
}

/// A watch event with the object as the cache keeps it.
fn lean<K: Managed>(event: watcher::Event<K>) -> watcher::Event<Lean<K>> {
    use watcher::Event::*;
    match event {
        Apply(obj) => Apply(Lean::new(&obj)),
        InitApply(obj) => InitApply(Lean::new(&obj)),
        Delete(obj) => Delete(Lean::new(&obj)),
        Init => Init,
        InitDone => InitDone,
    }
}

/// The drift check: every resource of the kind is reconciled again once per `resync`, by one
/// task per kind instead of one timer per resource in kube-runtime's scheduler (a key, a copy
/// of the object's reference and a delay-queue slot each: about 1 KiB per resource). A round
/// is sent at once, so that its lookups share the identity APIs' list snapshots (a round
/// spread over the interval made a list call of every list endpoint every 2 s); the checks
/// then take their turns behind changes (`in_turn`). A resource waiting on something else (a
/// backoff, a rate limit, an IdentityApi) still has its own timer.
async fn sweep<K: Managed>(
    store: reflector::Store<Lean<K>>,
    tx: mpsc::UnboundedSender<(String, String)>,
    resync: std::time::Duration,
    checks: Arc<Checks>,
) {
    until_ready(&store).await;
    let mut round = tokio::time::Instant::now();
    loop {
        // The first round after one interval: the initial list has just reconciled everything.
        round += resync;
        tokio::time::sleep_until(round).await;
        let mut due: Vec<(String, String)> = store
            .state()
            .iter()
            .map(|obj| (obj.namespace().unwrap_or_default(), obj.name_any()))
            .collect();
        // The order of the cache is a hash's: shuffle, so no resource is always checked last.
        due.shuffle(&mut rand::rng());
        checks.due(&due);
        for key in due {
            if tx.send(key).is_err() {
                return;
            }
        }
    }
}

/// The drift checks sent and not started yet. A check waits for one of a few slots before it
/// queues for a turn, so a change (a spec edit, a Secret rotation) queues behind at most those
/// few, not behind a round of 10,000.
struct Checks {
    pending: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    slots: Arc<Semaphore>,
}

impl Checks {
    fn new(slots: usize) -> Self {
        Checks {
            pending: Default::default(),
            slots: Arc::new(Semaphore::new(slots.max(1))),
        }
    }

    /// A new round: these are due (and no others: a resource deleted before its check started
    /// is forgotten here).
    fn due(&self, keys: &[(String, String)]) {
        let mut pending = self.pending.lock().expect("lock");
        pending.clear();
        pending.extend(keys.iter().cloned());
    }

    /// Whether this reconcile is a drift check (then no longer pending).
    fn take(&self, namespace: &str, name: &str) -> bool {
        let mut pending = self.pending.lock().expect("lock");
        // Between rounds (most of the time) no key is made for the lookup.
        !pending.is_empty() && pending.remove(&(namespace.to_owned(), name.to_owned()))
    }
}

/// A reconcile as `in_turn` hands it to kube-runtime's controller.
type Reconciling = BoxFuture<'static, Result<Action, Error>>;

/// The reconcile of one kind, at most `concurrency` at a time, started in the order they came
/// due. kube-runtime's runner, once at its limit, keeps the requests that come due in a hash set
/// and starts them in the set's order: under a load it cannot keep up with (10,000 resources
/// after an outage, each drift check due again before the others have had theirs) the same
/// resources are picked again and again and the others wait for ever (measured: 285 of 3,000
/// resources without a first reconcile after 13 minutes). So the runner starts every request at
/// once and each waits here for a permit of a FIFO semaphore. A waiting request is small (the
/// reconcile's own future is made once it has the permit); it reads the object again from the
/// store when its turn comes (decoding it from the cache's JSON), and gives way to a shutdown
/// (the next leader lists everything). A drift check of the sweep first waits for one of a few
/// slots of its own (`Checks`), so changes never queue behind a whole round of checks.
fn in_turn<A: Adapter>(
    concurrency: u16,
    store: reflector::Store<Lean<A::Resource>>,
    checks: Arc<Checks>,
    shutdown: Shutdown,
) -> impl FnMut(Arc<Lean<A::Resource>>, Arc<Context>) -> Reconciling {
    let permits = Arc::new(Semaphore::new(usize::from(concurrency.max(1))));
    move |res, ctx| {
        let (permits, store, shutdown) = (permits.clone(), store.clone(), shutdown.clone());
        let checks = checks.clone();
        async move {
            let check = checks.take(&res.namespace().unwrap_or_default(), &res.name_any());
            let _slot = match check {
                true => tokio::select! {
                    slot = checks.slots.clone().acquire_owned() => Some(slot.expect("never closed")),
                    () = shutdown.clone() => return Ok(Action::await_change()),
                },
                false => None,
            };
            let _permit = tokio::select! {
                permit = permits.acquire_owned() => permit.expect("the semaphore is never closed"),
                () = shutdown => return Ok(Action::await_change()),
            };
            // Deleted while it waited (and without a finalizer): nothing to do.
            let Some(cached) = store.get(&ObjectRef::from_obj(res.as_ref())) else {
                return Ok(Action::await_change());
            };
            // It was encoded from a typed object a moment ago: this does not fail in practice.
            let res = cached.decode().map_err(kube::Error::SerdeError)?;
            reconcile::<A>(Arc::new(res), ctx).boxed().await
        }
        .boxed()
    }
}

fn lean_error_policy<A: Adapter>(
    res: Arc<Lean<A::Resource>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    error_policy(
        &ObjectKey::of(kind_of::<A::Resource>(), res.as_ref()),
        err,
        &ctx,
    )
}

/// Tells the usage index what a watch event says about the connection of a resource.
fn feed_usage<A: Adapter>(ctx: &Context, feed: Feed, event: &watcher::Event<A::Resource>) {
    let key = |res: &A::Resource| ObjectKey::of(kind_of::<A::Resource>(), res);
    match event {
        watcher::Event::Init => ctx.usage.listing(feed),
        watcher::Event::InitDone => ctx.usage.listed(feed),
        watcher::Event::Apply(res) | watcher::Event::InitApply(res) => {
            let namespace = res.namespace().unwrap_or_default();
            let connection = ctx.connector.target(&namespace, &res.common().api_ref);
            let holds = holds_connection::<A>(res);
            let use_ = Use { connection, holds };
            ctx.usage.seen(feed, &key(res), Some(use_));
        }
        watcher::Event::Delete(res) => ctx.usage.gone(&key(res)),
    }
}

/// A deleted object leaves the resource gauges: one without a finalizer gets no cleanup
/// reconcile that would do it.
pub fn forget_deleted<K: Resource>(metrics: &Metrics, kind: &str, event: &watcher::Event<K>) {
    if let watcher::Event::Delete(res) = event {
        let object = format!("{}/{}", res.namespace().unwrap_or_default(), res.name_any());
        metrics.set_ready(kind, &object, None);
    }
}

/// Backoff of the watches when the API server fails: client-go's start (0.8 s, doubling) but
/// at most 3 s apart (6 s with jitter) instead of 30 s. After an API server restart every watch
/// also meets one 410 Gone (its resourceVersion predates the new watch cache), which costs one
/// more backoff step: with client-go's figures the operator would be deaf for a minute. A
/// handful of watches retrying every few seconds is no load on a struggling server.
pub fn watch_backoff() -> impl kube::runtime::utils::Backoff {
    use std::time::Duration;
    let exponential = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(800))
        .with_max_delay(Duration::from_secs(3))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    kube::runtime::utils::ResetTimerBackoff::new(
        kube::runtime::watcher::ExponentialBackoff::from(exponential),
        Duration::from_secs(120),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::identity_backend::IdentityBackend;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn backend(i: usize) -> Lean<IdentityBackend> {
        let obj: IdentityBackend = serde_json::from_value(serde_json::json!({
            "apiVersion": "identity.operator.dev/v1alpha1",
            "kind": "IdentityBackend",
            "metadata": {"name": format!("b-{i}"), "namespace": "ns"},
            "spec": {"apiRef": {"name": "boruta"}, "name": "B", "type": "Ldap"},
        }))
        .expect("a valid IdentityBackend");
        Lean::new(&obj)
    }

    /// Every cached resource is sent once per interval, a round at once, and marked as a
    /// drift check until its reconcile starts.
    #[tokio::test]
    async fn the_sweep_checks_every_resource_once_per_interval() {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for i in 0..40 {
            writer.apply_watcher_event(&watcher::Event::InitApply(backend(i)));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let resync = Duration::from_millis(500);
        let checks = Arc::new(Checks::new(4));
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(sweep(store, tx, resync, checks.clone()));
        let mut seen: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
        while started.elapsed() < resync * 2 + Duration::from_millis(250) {
            if let Ok(Some((ns, name))) =
                tokio::time::timeout(Duration::from_millis(20), rx.recv()).await
            {
                assert_eq!(ns, "ns");
                assert!(checks.take(&ns, &name), "{name} is a drift check");
                assert!(!checks.take(&ns, &name), "{name} is taken once");
                seen.entry(name).or_default().push(started.elapsed());
            }
        }
        task.abort();
        assert_eq!(seen.len(), 40, "every resource is checked");
        for (name, at) in &seen {
            // Nothing in the first interval (the initial list reconciled everything), then one
            // check per interval.
            assert_eq!(at.len(), 2, "{name}: {at:?}");
            assert!(at[0] >= resync && at[1] >= resync * 2, "{name}: {at:?}");
            assert!(at[1] - at[0] >= resync / 2, "{name}: {at:?}");
        }
        assert!(!checks.take("ns", "b-0"), "a change is no drift check");
    }

    /// A new round forgets the checks of resources deleted before theirs started.
    #[test]
    fn a_round_forgets_checks_that_never_started() {
        let checks = Checks::new(1);
        let key = |n: &str| ("ns".to_owned(), n.to_owned());
        checks.due(&[key("gone"), key("kept")]);
        checks.due(&[key("kept")]);
        assert!(!checks.take("ns", "gone"));
        assert!(checks.take("ns", "kept"));
    }
}
