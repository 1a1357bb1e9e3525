//! Wiring: the watches (managed kinds, IdentityApis, Secrets as metadata only) and one
//! kube-runtime Controller per kind, all sharing one [`Context`].

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::{Future, StreamExt, TryStreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{info, warn};

use super::dependents::Target;
use super::reconcile::{error_policy, publish, reconcile};
use super::status::{set_condition, write_if_changed};
use super::{Adapter, Context, Error, Managed, PAUSED_ANNOTATION, Settings};
use crate::kinds::identity_api::{IdentityApi, IdentityApiStatus};
use crate::metrics::Metrics;

/// Which objects this replica manages.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// `None`: every namespace.
    pub namespace: Option<String>,
    /// Label selector applied to the managed kinds and IdentityApis.
    pub label_selector: Option<String>,
}

fn api_for<K>(client: &Client, scope: &Scope) -> Api<K>
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
fn watch_config(scope: &Scope) -> watcher::Config {
    let cfg = base_watch_config();
    match &scope.label_selector {
        Some(sel) => cfg.labels(sel),
        None => cfg,
    }
}

/// Reconcile only when something the operator acts on changed: the spec (generation), the
/// pause annotation, or a deletion. The operator's own status and finalizer writes never
/// trigger another reconcile.
fn significant_change<K: Resource>(obj: &K) -> Option<u64> {
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

/// Drops what the operator never reads from its watch caches: managed fields and kubectl's
/// last-applied annotation (a second copy of the spec) are most of an object's size.
fn slim<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
    if let Some(annotations) = obj.meta_mut().annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Everything a scope runs, until `shutdown` resolves.
pub async fn run_scope(
    client: Client,
    scope: Scope,
    settings: Settings,
    metrics: Arc<Metrics>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    // Secrets: metadata only, and of that only the resourceVersion is kept.
    let secrets_api: Api<PartialObjectMeta<Secret>> = match &scope.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let secret_stream = watcher(secrets_api, base_watch_config()).backoff(watch_backoff());

    let (api_reader, api_writer) = reflector::store();
    let api_stream = watcher(
        api_for::<IdentityApi>(&client, &scope),
        watch_config(&scope),
    )
    .backoff(watch_backoff())
    .modify(slim)
    .reflect(api_writer)
    .inspect_ok({
        let metrics = metrics.clone();
        move |event| forget_deleted(&metrics, "IdentityApi", event)
    })
    .applied_objects()
    .predicate_filter(significant_change, Default::default());

    let ctx = Arc::new(Context::new(
        client.clone(),
        api_reader.clone(),
        metrics,
        settings,
    ));

    let secrets_task = {
        let ctx = ctx.clone();
        secret_stream.for_each(move |event| {
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
        })
    };
    let secrets_task = tokio::spawn(secrets_task);
    ctx.secrets.wait_until_ready().await;

    let (tx, rx) = mpsc::unbounded_channel();
    ctx.dependents.register("IdentityApi", tx);
    let apis = Controller::for_stream(api_stream, api_reader.clone())
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(requeues(rx))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile_api, api_error_policy, ctx.clone())
        .for_each(|_| future::ready(()));

    // The managed kinds start once the IdentityApis are known, so none of them reports a
    // missing IdentityApi (and writes a status and an Event for it) only because its watch
    // answered first.
    let apis = tokio::spawn(apis);
    until_ready(&api_reader).await;
    info!(namespace = ?scope.namespace, "controllers starting");
    use crate::kinds::*;
    let _ = tokio::join!(
        apis,
        run_kind::<identity_backend::Boruta>(&client, &scope, &ctx, concurrency, shutdown.clone()),
        run_kind::<org_connection::Auth0>(&client, &scope, &ctx, concurrency, shutdown.clone()),
        run_kind::<admin_api_app::Entrust>(&client, &scope, &ctx, concurrency, shutdown.clone()),
        run_kind::<ldap_settings::Vcd>(&client, &scope, &ctx, concurrency, shutdown.clone()),
        run_kind::<authentication_settings::Xelion>(
            &client,
            &scope,
            &ctx,
            concurrency,
            shutdown.clone()
        ),
    );
    secrets_task.abort();
}

/// `Store::wait_until_ready` remembers only the last task waiting (a oneshot channel keeps one
/// waker), and the IdentityApi controller waits on the same store: ask again every 50 ms.
async fn until_ready<K>(store: &reflector::Store<K>)
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

fn requeues<K>(
    rx: mpsc::UnboundedReceiver<(String, String)>,
) -> impl futures::Stream<Item = ObjectRef<K>> + Send
where
    K: Resource<DynamicType = ()>,
{
    UnboundedReceiverStream::new(rx).map(|(ns, name)| ObjectRef::new(&name).within(&ns))
}

async fn run_kind<A: Adapter>(
    client: &Client,
    scope: &Scope,
    ctx: &Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) where
    A::Resource: Managed,
{
    let (reader, writer) = reflector::store();
    let handover = ctx.clone();
    let stream = watcher(api_for::<A::Resource>(client, scope), watch_config(scope))
        .backoff(watch_backoff())
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |event| {
            if let watcher::Event::Apply(res) | watcher::Event::InitApply(res) = event {
                handover.memo.seen(res);
            }
            forget_deleted(&handover.metrics, super::reconcile::kind::<A>(), event);
            // A settings singleton without a finalizer is gone without a cleanup reconcile: the
            // next resource waiting for its IdentityApi may take over now, not at its resync.
            if let (true, watcher::Event::Delete(res)) = (A::SINGLETON, event) {
                handover.dependents.trigger(&Target::Api {
                    namespace: res.namespace().unwrap_or_default(),
                    name: res.common().api_ref.name.clone(),
                });
            }
        })
        .applied_objects()
        .predicate_filter(significant_change, Default::default());
    let (tx, rx) = mpsc::unbounded_channel();
    ctx.dependents.register(super::reconcile::kind::<A>(), tx);
    ctx.register_store(reader.clone());
    Controller::for_stream(stream, reader)
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(requeues(rx))
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<A>, error_policy::<A>, ctx.clone())
        .for_each(|_| future::ready(()))
        .await;
}

/// A deleted object leaves the resource gauges: one without a finalizer gets no cleanup
/// reconcile that would do it.
fn forget_deleted<K: Resource>(metrics: &Metrics, kind: &str, event: &watcher::Event<K>) {
    if let watcher::Event::Delete(res) = event {
        let object = format!("{}/{}", res.namespace().unwrap_or_default(), res.name_any());
        metrics.set_ready(kind, &object, None);
    }
}

/// An IdentityApi is Ready when the operator can authenticate with it.
async fn reconcile_api(api: Arc<IdentityApi>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = api.namespace().unwrap_or_default();
    let name = api.name_any();
    let target = Target::Api {
        namespace: ns.clone(),
        name: name.clone(),
    };
    if api.meta().deletion_timestamp.is_some() {
        ctx.connections.forget(&ns, &name);
        ctx.dependents.trigger(&target);
        return Ok(Action::await_change());
    }
    let secret_targets = api
        .secret_refs()
        .into_iter()
        .map(|r| Target::Secret {
            namespace: ns.clone(),
            name: r.name.clone(),
        })
        .collect();
    ctx.dependents
        .record(("IdentityApi", ns.clone(), name.clone()), secret_targets);

    let generation = api.meta().generation;
    let old = api.status.as_ref();
    let mut status = old.cloned().unwrap_or_default();
    let was_ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let result = match ctx
        .connections
        .get(&api, &ctx.kube, &ctx.secrets, &ctx.metrics)
        .await
    {
        Ok(client) => client.authenticate().await.map_err(Error::Api),
        Err(e) => Err(e),
    };
    let ready = result.is_ok();
    if let Err(e) = &result {
        ctx.metrics.reconcile_error("IdentityApi", e.reason());
    }
    match &result {
        Ok(()) => set_condition(
            &mut status.conditions,
            "Ready",
            true,
            "Authenticated",
            "authenticated with the identity API",
            generation,
        ),
        Err(e) => {
            let message = e.to_string();
            let changed = !status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == e.reason() && c.message == message);
            set_condition(
                &mut status.conditions,
                "Ready",
                false,
                e.reason(),
                message.clone(),
                generation,
            );
            if changed {
                publish(
                    &ctx,
                    api.as_ref(),
                    EventType::Warning,
                    e.reason(),
                    "Authenticate",
                    message,
                )
                .await;
            }
        }
    }
    let condition = status.conditions.iter().find(|c| c.type_ == "Ready");
    ctx.metrics.set_ready(
        "IdentityApi",
        &format!("{ns}/{name}"),
        condition.map(|c| (ready, c.reason.as_str())),
    );
    // New connection settings: every resource re-checks against them. A first reconcile or a
    // change of readiness matters only to the resources that failed so far (those still
    // running log in themselves), so they alone are requeued, not every resource at once.
    let spec_changed =
        status.observed_generation.is_some() && status.observed_generation != generation;
    let first = status.observed_generation.is_none();
    status.observed_generation = generation;
    write_if_changed::<IdentityApi, IdentityApiStatus>(&ctx.kube, &api, old, &status).await?;
    if spec_changed {
        ctx.dependents.trigger(&target);
    } else if first || ready != was_ready {
        ctx.dependents.trigger_failing(&target);
    }
    Ok(match result {
        Ok(()) => {
            ctx.reset_backoff(&("IdentityApi", ns, name));
            Action::requeue(ctx.resync())
        }
        Err(_) => Action::requeue(ctx.next_backoff(("IdentityApi", ns, name))),
    })
}

fn api_error_policy(api: Arc<IdentityApi>, err: &Error, ctx: Arc<Context>) -> Action {
    warn!(namespace = ?api.namespace(), object = %api.name_any(), error = %err, "IdentityApi reconcile failed");
    Action::requeue(ctx.next_backoff((
        "IdentityApi",
        api.namespace().unwrap_or_default(),
        api.name_any(),
    )))
}

/// Backoff of the watches when the API server fails: client-go's start (0.8 s, doubling) but
/// at most 3 s apart (6 s with jitter) instead of 30 s. After an API server restart every watch
/// also meets one 410 Gone (its resourceVersion predates the new watch cache), which costs one
/// more backoff step: with client-go's figures the operator would be deaf for a minute. A
/// handful of watches retrying every few seconds is no load on a struggling server.
fn watch_backoff() -> impl kube::runtime::utils::Backoff {
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
