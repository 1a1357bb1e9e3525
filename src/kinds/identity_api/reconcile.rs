//! The IdentityApi's own reconcile: it is Ready when the operator can authenticate with it.
//! Its failures are reported like a managed resource's (one Event per new failure, the error's
//! reason), and its changes requeue the resources that use it. While resources may still
//! delete through it, it is protected from deletion (`in_use.rs`).

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt, future};
use kube::runtime::controller::{self, Action};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::warn;

use super::connection::{IdentityApis, target_of};
use super::{IdentityApi, IdentityApiStatus, in_use};
use crate::engine::conditions::{ConditionType, Reason, set_condition};
use crate::engine::controller::{
    Scope, Shutdown, api_for, forget_deleted, requeues, significant_change, slim, watch_backoff,
    watch_config,
};
use crate::engine::dependents::Target;
use crate::engine::error::Next;
use crate::engine::protection::Protector;
use crate::engine::report::is_repeat;
use crate::engine::spec::{Condition, HasConditions};
use crate::engine::status::write_if_changed;
use crate::engine::{Context, Error, ObjectKey};
use crate::metrics::Metrics;

const KIND: &str = "IdentityApi";

/// What the IdentityApi controller works with: the engine's context, the connector, and the
/// writer of the in-use finalizer.
pub struct ApiContext {
    pub engine: Arc<Context>,
    pub apis: Arc<IdentityApis>,
    pub protector: Protector,
}

/// The watch of IdentityApis, feeding `writer`'s store (which the connector reads).
pub fn watch(
    client: &Client,
    scope: &Scope,
    writer: kube::runtime::reflector::store::Writer<IdentityApi>,
    metrics: Arc<Metrics>,
) -> impl futures::Stream<Item = Result<IdentityApi, watcher::Error>> + Send + 'static {
    watcher(api_for::<IdentityApi>(client, scope), watch_config(scope))
        .backoff(watch_backoff())
        .modify(slim)
        .reflect(writer)
        .inspect_ok(move |event| forget_deleted(&metrics, KIND, event))
        .applied_objects()
        .predicate_filter(significant_change, Default::default())
}

/// Runs the IdentityApi controller until `shutdown`.
pub async fn run(
    stream: impl futures::Stream<Item = Result<IdentityApi, watcher::Error>> + Send + 'static,
    store: Store<IdentityApi>,
    ctx: Arc<ApiContext>,
    concurrency: u16,
    shutdown: Shutdown,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    ctx.engine.dependents.register(KIND, tx);
    let usage = &ctx.engine.usage;
    // An IdentityApi gaining its first holder or losing its last one takes or drops the in-use
    // finalizer at once; when the index becomes complete, every one may drop it.
    let holders_changed = usage.holder_changes().filter_map(|target| {
        future::ready(match target {
            Target::Api { namespace, name } => Some(ObjectRef::new(&name).within(&namespace)),
            _ => None,
        })
    });
    Controller::for_stream(stream, store)
        .with_config(controller::Config::default().concurrency(concurrency))
        .reconcile_on(requeues(rx))
        .reconcile_on(holders_changed)
        .reconcile_all_on(usage.completions())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| future::ready(()))
        .await;
}

async fn reconcile(api: Arc<IdentityApi>, ctx: Arc<ApiContext>) -> Result<Action, Error> {
    let engine = &ctx.engine;
    let key = ObjectKey::of(KIND, api.as_ref());
    let target = target_of(&key.namespace, &key.name);
    let holders = engine.usage.holders(&target);
    if api.meta().deletion_timestamp.is_some() {
        return in_use::deleting(&api, &ctx, &key, &holders).await;
    }
    let secret_targets = api
        .secret_refs()
        .into_iter()
        .map(|r| Target::Secret {
            namespace: key.namespace.to_string(),
            name: r.name.clone(),
        })
        .collect();
    engine.dependents.record(key.clone(), secret_targets);
    in_use::protect(&api, &ctx, &holders).await?;

    let generation = api.meta().generation;
    let old = api.status.as_ref();
    let mut status = old.cloned().unwrap_or_default();
    let was_ready = status.is(ConditionType::Ready);
    let result = match ctx.apis.client_of(&api).await {
        Ok(client) => client.authenticate().await.map_err(Error::Api),
        Err(e) => Err(e),
    };
    report_ready(api.as_ref(), engine, &mut status.conditions, &result);
    // New connection settings: every resource re-checks against them. A first reconcile or a
    // change of readiness matters only to the resources that failed so far (those still
    // running log in themselves), so they alone are requeued, not every resource at once.
    let spec_changed =
        status.observed_generation.is_some() && status.observed_generation != generation;
    let first = status.observed_generation.is_none();
    status.observed_generation = generation;
    write_if_changed::<IdentityApi, IdentityApiStatus>(&engine.kube, &api, old, &status).await?;
    if spec_changed {
        engine.dependents.trigger(&target);
    } else if first || result.is_ok() != was_ready {
        engine.dependents.trigger_failing(&target);
    }
    Ok(match result {
        Ok(()) => {
            engine.reset_backoff(&key);
            Action::requeue(engine.resync())
        }
        // A connection backing off says when its next attempt is: no sooner.
        Err(e) => match e.next() {
            Next::After(wait) => Action::requeue(wait + std::time::Duration::from_millis(50)),
            _ => Action::requeue(engine.next_backoff(&key)),
        },
    })
}

/// `Ready` of a connection from its authentication's result, and a Warning Event for a new
/// failure (ClusterIdentityApi reports the same way).
pub fn report_ready<K: Resource<DynamicType = ()>>(
    connection: &K,
    engine: &Context,
    conditions: &mut Vec<Condition>,
    result: &Result<(), Error>,
) {
    let generation = connection.meta().generation;
    let ready = ConditionType::Ready;
    let kind = K::kind(&());
    let object = match connection.namespace() {
        Some(ns) => format!("{ns}/{}", connection.name_any()),
        None => connection.name_any(),
    };
    let Err(e) = result else {
        let message = "authenticated with the identity API";
        set_condition(
            conditions,
            ready,
            true,
            Reason::Authenticated,
            message,
            generation,
        );
        let gauge = Some((true, Reason::Authenticated.as_str()));
        engine.metrics.set_ready(&kind, &object, gauge);
        return;
    };
    engine.metrics.reconcile_error(&kind, e.reason().as_str());
    engine
        .metrics
        .set_ready(&kind, &object, Some((false, e.reason().as_str())));
    let repeat = is_repeat(conditions, ready, e, generation);
    let message = e.to_string();
    set_condition(conditions, ready, false, e.reason(), &message, generation);
    if !repeat {
        let reason = e.reason().as_str();
        engine.events.emit(
            connection,
            EventType::Warning,
            reason,
            "Authenticate",
            message,
        );
    }
}

fn error_policy(api: Arc<IdentityApi>, err: &Error, ctx: Arc<ApiContext>) -> Action {
    warn!(namespace = ?api.namespace(), object = %api.name_any(), error = %err, "IdentityApi reconcile failed");
    Action::requeue(ctx.engine.next_backoff(&ObjectKey::of(KIND, api.as_ref())))
}
