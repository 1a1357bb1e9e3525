//! The watches and controllers the engine runs for any kind: per managed kind a watch feeding
//! its cache (`cache.rs`) and its work queue (`queue.rs`), Secrets watched as metadata only,
//! and the watch settings every watch of the operator shares. Which kinds run is the
//! registry's business (`crate::kinds`).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::future::{BoxFuture, Shared};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use rand::seq::SliceRandom;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{debug, warn};

use super::cache::Cache;
use super::cleanup::holds_connection;
use super::dependents::Target;
use super::key::kind_of;
use super::queue::{Key, Lane, WorkQueue};
use super::reconcile::{error_policy, reconcile};
use super::usage::{Feed, Use};
use super::{Adapter, Context, Managed, ObjectKey, PAUSED_ANNOTATION};
use crate::identity::lists::CHECKING;
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

/// Runs the controller of one managed kind until `shutdown`: the kind's watch feeds its cache
/// and its work queue (`queue.rs`), and the queue starts the reconciles.
pub async fn run_kind<A: Adapter>(
    client: Client,
    scope: Scope,
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: Shutdown,
) {
    let cache = Arc::new(Cache::<A::Resource>::default());
    let handover = ctx.clone();
    let feed = ctx.usage.feed();
    let triggers = watcher(
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
    .map_ok({
        let cache = cache.clone();
        move |event| cache.apply(&event)
    });
    let (tx, changed) = mpsc::unbounded_channel();
    ctx.dependents.register(kind_of::<A::Resource>(), tx);
    ctx.metrics.kind_started(kind_of::<A::Resource>());
    ctx.register_cache(cache.clone());
    let (rounds_tx, rounds) = mpsc::channel(1);
    let sweep = tokio::spawn(sweep(cache.clone(), rounds_tx, ctx.settings.resync));
    let inputs = Inputs {
        triggers,
        changed,
        rounds,
    };
    drive::<A>(
        inputs,
        cache,
        ctx,
        usize::from(concurrency.max(1)),
        shutdown,
    )
    .await;
    sweep.abort();
}

/// What makes a resource of the kind come due.
struct Inputs<T> {
    /// The watch: a new resource, or one whose spec, pause or deletion changed (`None`: an
    /// event that changed nothing of that).
    triggers: T,
    /// A referenced Secret or IdentityApi changed, or a turn came free (`dependents`).
    changed: mpsc::UnboundedReceiver<Key>,
    /// The sweep's rounds of drift checks.
    rounds: mpsc::Receiver<Vec<Key>>,
}

/// Queues what comes due and starts it, at most `concurrency` at a time, once the cache has
/// the whole list; after `shutdown`, starts nothing more and lets the running reconciles end
/// (the next leader lists everything again).
async fn drive<A: Adapter>(
    inputs: Inputs<impl Stream<Item = Result<Option<Key>, watcher::Error>>>,
    cache: Arc<Cache<A::Resource>>,
    ctx: Arc<Context>,
    concurrency: usize,
    mut shutdown: Shutdown,
) {
    let Inputs {
        triggers,
        mut changed,
        mut rounds,
    } = inputs;
    let mut triggers = std::pin::pin!(triggers.fuse());
    let mut listed = std::pin::pin!(cache.until_listed().fuse());
    let mut ready = false;
    let mut queue = WorkQueue::new(concurrency / 4);
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = &mut listed, if !ready => ready = true,
            Some(trigger) = triggers.next() => match trigger {
                Ok(Some(key)) => queue.add(key, Lane::Change),
                Ok(None) => {}
                // The watcher retries on its own, with backoff.
                Err(err) => debug!(kind = kind_of::<A::Resource>(), %err, "watch failed"),
            },
            Some(key) = changed.recv() => queue.add(key, Lane::Change),
            Some(round) = rounds.recv() => queue.round(round),
            key = queue.later() => queue.add(key, Lane::Change),
            Some((key, lane, again)) = running.next() => queue.done(key, lane, again),
        }
        while ready && running.len() < concurrency {
            let Some((key, lane)) = queue.take() else {
                break;
            };
            let turn = turn::<A>(cache.clone(), ctx.clone(), key.clone());
            let turn = tokio::spawn(match lane {
                // A drift check's lookups share the identity APIs' lists (`identity::lists`).
                Lane::Check => CHECKING.scope((), turn).left_future(),
                Lane::Change => turn.right_future(),
            });
            running.push(async move {
                let again = turn.await.unwrap_or_else(|panicked| {
                    warn!(namespace = %key.0, object = %key.1, error = %panicked, "reconcile panicked");
                    Some(std::time::Duration::from_secs(30))
                });
                (key, lane, again)
            });
        }
    }
    while running.next().await.is_some() {}
}

/// One reconcile of the resource as the cache has it now; when to run it again without a
/// change (`None`: only on one).
async fn turn<A: Adapter>(
    cache: Arc<Cache<A::Resource>>,
    ctx: Arc<Context>,
    (namespace, name): Key,
) -> Option<std::time::Duration> {
    // Deleted while it was queued (and without a finalizer): nothing to do.
    let cached = cache.get(&namespace, &name)?;
    let key = ObjectKey::new(kind_of::<A::Resource>(), namespace, name);
    let action = match cached {
        Ok(res) => reconcile::<A>(Arc::new(res), ctx.clone()).await,
        Err(err) => Err(kube::Error::SerdeError(err).into()),
    };
    action
        .unwrap_or_else(|err| error_policy(&key, &err, &ctx))
        .requeue_after
}

/// The drift check: every resource of the kind is reconciled again once per `resync`, by one
/// task per kind instead of one timer per resource (a key, a copy of the object's reference and
/// a delay-queue slot each: about 1 KiB per resource). A round is sent at once, so that its
/// lookups share the identity APIs' list snapshots (a round spread over the interval made a
/// list call of every list endpoint every 2 s); the work queue starts its checks behind changes.
/// A resource waiting on something else (a backoff, a rate limit) still has its own timer.
async fn sweep<K: Managed>(
    cache: Arc<Cache<K>>,
    rounds: mpsc::Sender<Vec<Key>>,
    resync: std::time::Duration,
) {
    cache.until_listed().await;
    let mut round = tokio::time::Instant::now();
    loop {
        // The first round after one interval: the initial list has just reconciled everything.
        round += resync;
        tokio::time::sleep_until(round).await;
        let mut due = cache.keys();
        // The order of the cache is a hash's: shuffle, so no resource is always checked last.
        due.shuffle(&mut rand::rng());
        if rounds.send(due).await.is_err() {
            return;
        }
    }
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
    use std::time::Duration;

    fn backend(i: usize) -> IdentityBackend {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "identity.operator.dev/v1alpha1",
            "kind": "IdentityBackend",
            "metadata": {"name": format!("b-{i}"), "namespace": "ns"},
            "spec": {"apiRef": {"name": "boruta"}, "name": "B", "type": "Ldap"},
        }))
        .expect("a valid IdentityBackend")
    }

    /// Every cached resource is in every round, one round per interval, the first after one
    /// interval (the initial list has just reconciled everything).
    #[tokio::test]
    async fn the_sweep_checks_every_resource_once_per_interval() {
        let cache = Arc::new(Cache::of((0..40).map(backend)));
        let (tx, mut rounds) = mpsc::channel(1);
        let resync = Duration::from_millis(500);
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(sweep(cache, tx, resync));
        for n in 1..=2u32 {
            let round = rounds.recv().await.expect("a round");
            let at = started.elapsed();
            assert!(
                at >= resync * n && at < resync * n + resync / 2,
                "round {n} at {at:?}"
            );
            let names: std::collections::BTreeSet<_> = round.iter().map(|k| &k.1).collect();
            assert_eq!((round.len(), names.len()), (40, 40), "round {n}");
            assert!(round.iter().all(|k| k.0 == "ns"));
        }
        task.abort();
    }
}
