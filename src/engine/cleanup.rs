//! Deletion of a managed resource: what happens to its remote object ([`decide_deletion`]),
//! then the finalizer goes. A bad spec never blocks the finalizer's removal: nothing here
//! builds the desired object.

use kube::Resource;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::decide::{Deletion, DeletionFacts, OrphanBecause, decide_deletion};
use super::finalizer::{creation_recorded, has_finalizer, is_paused, remove_finalizer};
use super::reconcile::connection_for;
use super::spec::ManagedStatus;
use super::{Adapter, Context, Error, Managed, ObjectKey};

pub async fn cleanup<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
) -> Result<Action, Error> {
    if !has_finalizer(res) {
        return Ok(Action::await_change());
    }
    let status = res.managed_status().cloned().unwrap_or_default();
    match decide_deletion(&deletion_facts::<A>(res, &status)) {
        Deletion::Release => {}
        Deletion::Orphan { id, why } => {
            let (type_, msg) = match why {
                OrphanBecause::Paused => (
                    EventType::Warning,
                    format!(
                        "remote {} {id} left in place: the resource is paused",
                        key.kind
                    ),
                ),
                OrphanBecause::Policy => (
                    EventType::Normal,
                    format!(
                        "remote {} {id} left in place (deletionPolicy Orphan)",
                        key.kind
                    ),
                ),
            };
            ctx.events.emit(res, type_, "Orphaned", "Delete", msg);
        }
        Deletion::Delete { id } => {
            if let Some(retry) = delete::<A>(res, ctx, key, &id).await {
                return Ok(retry);
            }
        }
        Deletion::DeleteUnlinked => match find_unlinked::<A>(res, ctx, key).await {
            Ok(Some(id)) => {
                if let Some(retry) = delete::<A>(res, ctx, key, &id).await {
                    return Ok(retry);
                }
            }
            Ok(None) => {}
            Err(err) if gives_up(res, ctx, &err) => {
                let msg = format!(
                    "a remote {} it may have created is left in place after {:?}: {err}",
                    key.kind, ctx.settings.deletion_grace
                );
                ctx.events
                    .emit(res, EventType::Warning, "Orphaned", "Delete", msg);
            }
            Err(err) => {
                warn!(error = %err, "looking up the remote object to delete failed");
                let reason = err.reason().as_str();
                let msg = format!("looking up the remote {} to delete failed: {err}", key.kind);
                ctx.events
                    .emit(res, EventType::Warning, reason, "Delete", msg);
                return Ok(Action::requeue(ctx.next_backoff(key)));
            }
        },
    }
    release::<A>(res, ctx, key).await?;
    Ok(Action::await_change())
}

/// Deletes the remote object; `Some(retry)` while that fails and the grace period for a
/// connection that cannot work any more has not run out.
async fn delete<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
    id: &str,
) -> Option<Action> {
    let kind = key.kind;
    match delete_remote::<A>(res, ctx, key, id).await {
        Ok(()) => {
            info!(%id, "deleted remote object");
            let msg = format!("deleted remote {kind} {id}");
            ctx.events
                .emit(res, EventType::Normal, "Deleted", "Delete", msg);
            None
        }
        Err(err) if gives_up(res, ctx, &err) => {
            let msg = format!(
                "remote {kind} {id} left in place after {:?}: {err}",
                ctx.settings.deletion_grace
            );
            warn!(%id, error = %err, "giving up on deleting the remote object");
            ctx.events
                .emit(res, EventType::Warning, "Orphaned", "Delete", msg);
            None
        }
        Err(err) => {
            warn!(%id, error = %err, "deleting the remote object failed");
            let msg = format!("deleting remote {kind} {id} failed: {err}");
            let reason = err.reason().as_str();
            ctx.events
                .emit(res, EventType::Warning, reason, "Delete", msg);
            Some(Action::requeue(ctx.next_backoff(key)))
        }
    }
}

/// The remote side is done with: the finalizer goes, and with it everything the operator
/// kept about the resource.
async fn release<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
) -> Result<(), Error> {
    remove_finalizer(res, ctx).await?;
    ctx.memo.forget(res);
    ctx.dependents.forget(key.clone());
    ctx.converged(key);
    if A::SINGLETON {
        // A younger resource waiting for this singleton's IdentityApi may take over now.
        let api_ref = &res.common().api_ref;
        ctx.dependents
            .trigger(&ctx.connector.target(&key.namespace, api_ref));
    }
    ctx.reset_backoff(key);
    ctx.metrics.set_ready(key.kind, &key.object(), None);
    Ok(())
}

/// The id of the remote object a create whose answer was lost may have made, found by its
/// natural key (the operator's creation record says it is its own).
/// What the deletion of `res` is decided from (`plan` decides from the same).
pub(crate) fn deletion_facts<'a, A: Adapter>(
    res: &A::Resource,
    status: &'a ManagedStatus,
) -> DeletionFacts<'a> {
    DeletionFacts {
        policy: res.common().deletion_policy,
        creates: A::CREATES,
        deletes_remote: A::deletes_remote(res),
        // A creation recorded before the status said so is the operator's all the same.
        created: status.created.or(creation_recorded(res).then_some(true)),
        linked_id: status.external_id.as_deref(),
        creation_recorded: creation_recorded(res),
        paused: is_paused(res),
    }
}

pub(crate) async fn find_unlinked<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
) -> Result<Option<String>, Error> {
    let connection = connection_for::<A>(ctx, res, key)?;
    let client = ctx.connector.client(&connection).await?;
    Ok(A::find(&client, res, None).await?.map(|found| found.id))
}

async fn delete_remote<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
    id: &str,
) -> Result<(), Error> {
    let connection = connection_for::<A>(ctx, res, key)?;
    let client = ctx.connector.client(&connection).await?;
    match A::delete(&client, res, id).await {
        Err(Error::Api(e)) | Err(Error::Rejected(e)) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// A deletion whose IdentityApi or credentials are gone cannot finish: after the grace period
/// the finalizer is released instead of blocking the namespace forever.
fn gives_up<K: Resource>(res: &K, ctx: &Context, err: &Error) -> bool {
    let unreachable = matches!(
        err,
        Error::ApiNotFound(_)
            | Error::WrongProvider { .. }
            | Error::SecretNotFound(_)
            | Error::SecretKeyNotFound { .. }
            | Error::SecretNotText { .. }
            | Error::Api(crate::identity::ApiError::Authentication(_))
    );
    let since = res
        .meta()
        .deletion_timestamp
        .as_ref()
        .map(|t| k8s_openapi::jiff::Timestamp::now().duration_since(t.0))
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .unwrap_or_default();
    unreachable && since >= ctx.settings.deletion_grace
}
