//! The ClusterIdentityApi's own reconcile: Ready when the operator can authenticate with it,
//! the number of resources using it per namespace, and the in-use finalizer (on it and on its
//! Secrets in the credentials namespace) while resources may still delete through it. Deleted
//! while in use, it stays usable and names who it waits for (`Deleting=True, reason=InUse`).

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::warn;

use super::connection::{ClusterApis, Requeue, target_of};
use super::{ClusterIdentityApi, ClusterIdentityApiStatus};
use crate::engine::conditions::{ConditionType, Reason};
use crate::engine::controller::{Shutdown, significant_change, slim, watch_backoff};
use crate::engine::dependents::Target;
use crate::engine::protection::{Protector, SecretScope, report_held};
use crate::engine::spec::HasConditions;
use crate::engine::status::write_if_changed;
use crate::engine::usage::Holders;
use crate::engine::{Context, Error, ObjectKey};
use crate::kinds::identity_api::connection::IdentityApis;
use crate::kinds::identity_api::reconcile::report_ready;

const KIND: &str = "ClusterIdentityApi";

/// How often a held ClusterIdentityApi reports its holders (and its users) again.
const HELD_REPORT: Duration = Duration::from_secs(5);

/// What the ClusterIdentityApi controller works with.
pub struct ClusterContext {
    pub engine: Arc<Context>,
    pub apis: Arc<ClusterApis>,
    /// The connector of the scope it runs in: what the credentials namespace's own
    /// IdentityApis need of its Secrets.
    pub namespaced: Arc<IdentityApis>,
    pub protector: Protector,
}

/// The watch of ClusterIdentityApis, feeding `writer`'s store (which the connector reads).
pub fn watch(
    client: &Client,
    selector: Option<&str>,
    writer: kube::runtime::reflector::store::Writer<ClusterIdentityApi>,
) -> impl futures::Stream<Item = Result<ClusterIdentityApi, watcher::Error>> + Send + 'static {
    let config = watcher::Config::default();
    let config = match selector {
        Some(selector) => config.labels(selector),
        None => config,
    };
    watcher(Api::all(client.clone()), config)
        .backoff(watch_backoff())
        .modify(slim)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(significant_change, Default::default())
}

/// Runs the ClusterIdentityApi controller until `shutdown`.
pub async fn run(
    stream: impl futures::Stream<Item = Result<ClusterIdentityApi, watcher::Error>> + Send + 'static,
    store: Store<ClusterIdentityApi>,
    ctx: Arc<ClusterContext>,
    shutdown: Shutdown,
) {
    let usage = &ctx.engine.usage;
    // Any change of its users: the counts in its status, and its in-use finalizer.
    let users_changed = tokio_stream::wrappers::UnboundedReceiverStream::new(usage.subscribe())
        .filter_map(|change| {
            future::ready(match change.connection {
                Target::ClusterApi { name } => Some(ObjectRef::new(&name)),
                _ => None,
            })
        });
    // A requeue of its users (a rotated credential Secret, say) is one of itself too: its
    // Ready says whether it can authenticate.
    let requeued = ctx.apis.requeues().filter_map(|which| {
        future::ready(match which {
            Requeue::All(Target::ClusterApi { name })
            | Requeue::Failing(Target::ClusterApi { name }) => Some(ObjectRef::new(&name)),
            _ => None,
        })
    });
    Controller::for_stream(stream, store)
        .reconcile_on(users_changed)
        .reconcile_on(requeued)
        .reconcile_all_on(usage.completions())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| future::ready(()))
        .await;
}

async fn reconcile(
    api: Arc<ClusterIdentityApi>,
    ctx: Arc<ClusterContext>,
) -> Result<Action, Error> {
    let engine = &ctx.engine;
    let name = api.name_any();
    let target = target_of(&name);
    let holders = engine.usage.holders(&target);
    let complete = engine.usage.is_complete();
    protect_secrets(&ctx, complete).await?;
    let old = api.status.as_ref();
    let mut status = old.cloned().unwrap_or_default();
    status.users = engine.usage.users_by_namespace(&target);
    if api.meta().deletion_timestamp.is_some() {
        return deleting(&api, &ctx, status, &holders).await;
    }
    if !holders.is_empty() || complete {
        let objects = Api::all(engine.kube.clone());
        let in_use = !holders.is_empty();
        ctx.protector
            .connection(&objects, api.as_ref(), in_use)
            .await?;
    }
    let key = ObjectKey::new(KIND, "", &name);
    let result = match ctx.apis.client_of(&api).await {
        Ok(client) => client.authenticate().await.map_err(Error::Api),
        Err(e) => Err(e),
    };
    let was_ready = old.is_some_and(|s| s.is(ConditionType::Ready));
    report_ready(api.as_ref(), engine, &mut status.conditions, &result);
    let generation = api.meta().generation;
    let spec_changed = status
        .observed_generation
        .is_some_and(|g| Some(g) != generation);
    let first = status.observed_generation.is_none();
    status.observed_generation = generation;
    write_if_changed(&engine.kube, api.as_ref(), old, &status).await?;
    // A new rule or settings: every user checks again; a first reconcile or a change of
    // readiness matters only to those that failed so far.
    if spec_changed {
        ctx.apis.requeue(Requeue::All(target));
    } else if first || result.is_ok() != was_ready {
        ctx.apis.requeue(Requeue::Failing(target));
    }
    Ok(match result {
        Ok(()) => {
            engine.reset_backoff(&key);
            Action::requeue(engine.resync())
        }
        Err(_) => Action::requeue(engine.next_backoff(&key)),
    })
}

/// A deleted ClusterIdentityApi: released once no resource needs it; until then it keeps its
/// client and says who it waits for.
async fn deleting(
    api: &ClusterIdentityApi,
    ctx: &ClusterContext,
    mut status: ClusterIdentityApiStatus,
    holders: &Holders,
) -> Result<Action, Error> {
    let engine = &ctx.engine;
    let old = api.status.as_ref();
    if !holders.is_empty() {
        let generation = api.meta().generation;
        if let Some(message) = report_held(&mut status.conditions, generation, KIND, holders) {
            let reason = Reason::InUse.as_str();
            engine
                .events
                .emit(api, EventType::Normal, reason, "Delete", message);
        }
        write_if_changed(&engine.kube, api, old, &status).await?;
        return Ok(Action::requeue(HELD_REPORT));
    }
    if !engine.usage.is_complete() {
        return Ok(Action::await_change());
    }
    let objects = Api::all(engine.kube.clone());
    ctx.protector.connection(&objects, api, false).await?;
    ctx.apis.clients.forget("", &api.name_any());
    Ok(Action::await_change())
}

/// The in-use finalizer of the credentials namespace's Secrets, as the ClusterIdentityApis'
/// holders say.
async fn protect_secrets(ctx: &ClusterContext, may_release: bool) -> Result<(), Error> {
    let engine = &ctx.engine;
    let namespace = &ctx.apis.credentials_namespace;
    // The IdentityApis of that namespace may need some of them too.
    let wanted = ctx.namespaced.wanted_secrets(namespace, &engine.usage);
    let scope = SecretScope {
        namespace,
        versions: &ctx.apis.secrets,
        dependents: &engine.dependents,
        events: &engine.events,
    };
    ctx.protector.secrets(&scope, &wanted, may_release).await
}

fn error_policy(api: Arc<ClusterIdentityApi>, err: &Error, ctx: Arc<ClusterContext>) -> Action {
    warn!(object = %api.name_any(), error = %err, "ClusterIdentityApi reconcile failed");
    let key = ObjectKey::new(KIND, "", api.name_any());
    Action::requeue(ctx.engine.next_backoff(&key))
}
