//! Deletion of a managed resource: what happens to its remote object ([`decide_deletion`]),
//! then the finalizer goes. A bad spec never blocks the finalizer's removal: nothing here
//! builds the desired object.
//!
//! The connection a deletion needs is kept for it: while a resource may still delete through
//! it ([`holds_connection`]), its IdentityApi and credential Secrets carry the in-use
//! finalizer (`protection.rs`), so deleting a namespace or a whole app at once no longer
//! strands it. What is left is a connection that truly cannot work any more (credentials
//! refused, access withdrawn, an API that does not answer at all): the resource says so in its
//! status, and after `--deletion-grace-period` it leaves the remote object in place, naming its
//! id in an Event, rather than keep its namespace Terminating for good.

use std::sync::Arc;
use std::time::Duration;

use super::queue::Action;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::conditions::ConditionType;
use super::decide::{Deletion, DeletionFacts, OrphanBecause, decide_deletion, needs_connection};
use super::finalizer::{creation_recorded, has_finalizer, is_paused, remove_finalizer};
use super::reconcile::connection_for;
use super::report::{Failed, not_synced};
use super::spec::find_condition;
use super::status::write_if_changed;
use super::{Adapter, Context, Error, Managed, ObjectKey};
use crate::identity::{ApiError, IdentityClient};

/// Deletion of `res`: its remote object goes as [`decide_deletion`] says, then the finalizer;
/// a requeue while a deletion fails within the grace period.
pub async fn cleanup<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
) -> Result<Action, Error> {
    if !has_finalizer(res) {
        return Ok(Action::await_change());
    }
    let retry = match decide_deletion(&deletion_facts::<A>(res)) {
        Deletion::Release => None,
        Deletion::Orphan { id, why } => {
            announce_orphan(res, ctx, key, &id, why);
            None
        }
        Deletion::Delete { id } => delete::<A>(res, ctx, key, &id).await?,
        Deletion::DeleteUnlinked => delete_unlinked::<A>(res, ctx, key).await?,
    };
    if let Some(retry) = retry {
        return Ok(retry);
    }
    release::<A>(res, ctx, key).await?;
    Ok(Action::await_change())
}

/// The remote object stays where it is, as the policy or the paused annotation says: an Event
/// names it.
fn announce_orphan<K: Managed>(
    res: &K,
    ctx: &Context,
    key: &ObjectKey,
    id: &str,
    why: OrphanBecause,
) {
    let kind = key.kind;
    let (type_, msg) = match why {
        OrphanBecause::Paused => (
            EventType::Warning,
            format!("remote {kind} {id} left in place: the resource is paused"),
        ),
        OrphanBecause::Policy => (
            EventType::Normal,
            format!("remote {kind} {id} left in place (deletionPolicy Orphan)"),
        ),
    };
    info!(%id, "{msg}");
    ctx.events.emit(res, type_, "Orphaned", "Delete", msg);
}

/// Deletes the remote object a create whose answer was lost may have made, found by its
/// natural key; `Some(retry)` while that fails and the grace period for a connection that
/// cannot work any more has not run out.
async fn delete_unlinked<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
) -> Result<Option<Action>, Error> {
    let err = match find_unlinked::<A>(res, ctx, key).await {
        Ok(Some(id)) => return delete::<A>(res, ctx, key, &id).await,
        Ok(None) => return Ok(None),
        Err(err) => err,
    };
    let grace = ctx.settings.deletion_grace;
    let kind = key.kind;
    if hopeless(&err, None, grace) && Timestamp::now() >= deadline(res, grace) {
        let msg =
            format!("a remote {kind} it may have created is left in place after {grace:?}: {err}");
        ctx.events
            .emit(res, EventType::Warning, "Orphaned", "Delete", msg);
        return Ok(None);
    }
    warn!(error = %err, "looking up the remote object to delete failed");
    let reason = err.reason().as_str();
    let msg = format!("looking up the remote {kind} to delete failed: {err}");
    ctx.events
        .emit(res, EventType::Warning, reason, "Delete", msg);
    Ok(Some(Action::requeue(ctx.next_backoff(key))))
}

/// What decides the deletion of `res`, from the resource alone (`plan` decides from the same).
pub(crate) fn deletion_facts<A: Adapter>(res: &A::Resource) -> DeletionFacts<'_> {
    let status = res.managed_status();
    DeletionFacts {
        policy: res.common().deletion_policy,
        creates: A::CREATES,
        deletes_remote: A::deletes_remote(res),
        // A creation recorded before the status said so is the operator's all the same.
        created: status
            .and_then(|s| s.created)
            .or(creation_recorded(res).then_some(true)),
        linked_id: status.and_then(|s| s.external_id.as_deref()),
        creation_recorded: creation_recorded(res),
        paused: is_paused(res),
    }
}

/// Whether `res` may still need its connection to delete its remote object: what the in-use
/// finalizer of its IdentityApi and credential Secrets protects. Read from the resource alone,
/// so the watch caches answer it again after a restart.
pub fn holds_connection<A: Adapter>(res: &A::Resource) -> bool {
    has_finalizer(res) && needs_connection(&deletion_facts::<A>(res), creation_recorded(res))
}

/// Deletes the remote object; `Some(retry)` while that fails and the grace period for a
/// connection that cannot work any more has not run out.
async fn delete<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
    id: &str,
) -> Result<Option<Action>, Error> {
    let kind = key.kind;
    let (err, client) = match delete_remote::<A>(res, ctx, key, id).await {
        Ok(()) => {
            info!(%id, "deleted remote object");
            let msg = format!("deleted remote {kind} {id}");
            ctx.events
                .emit(res, EventType::Normal, "Deleted", "Delete", msg);
            return Ok(None);
        }
        Err(failed) => failed,
    };
    let grace = ctx.settings.deletion_grace;
    let deadline = hopeless(&err, client.as_deref(), grace).then(|| deadline(res, grace));
    if deadline.is_some_and(|at| Timestamp::now() >= at) {
        let msg = format!("remote {kind} {id} left in place after {grace:?}: {err}");
        warn!(%id, error = %err, "giving up on deleting the remote object");
        ctx.events
            .emit(res, EventType::Warning, "Orphaned", "Delete", msg);
        return Ok(None);
    }
    warn!(%id, error = %err, "deleting the remote object failed");
    report_failure(res, ctx, id, &err, deadline).await?;
    // Tried again with backoff, but no later than the deadline the status announces (failures
    // before the deletion may have grown the backoff to minutes).
    let retry = ctx.next_backoff(key);
    let until_deadline = deadline.map(|at| {
        let left = at.duration_since(Timestamp::now());
        Duration::try_from(left).unwrap_or_default() + Duration::from_millis(100)
    });
    Ok(Some(Action::requeue(
        until_deadline.map_or(retry, |d| d.min(retry)),
    )))
}

/// The deletion is stuck: `Synced=False` with the error's reason and an Event say why, and
/// when the remote object will be left in place if nothing changes.
async fn report_failure<K: Managed>(
    res: &K,
    ctx: &Context,
    id: &str,
    err: &Error,
    deadline: Option<Timestamp>,
) -> Result<(), Error> {
    let kind = K::kind(&());
    let mut message = format!("deleting remote {kind} {id} failed: {err}");
    if let Some(at) = deadline {
        message.push_str(&format!(
            "; unless that changes, the remote object is left in place at {at} \
             (--deletion-grace-period)"
        ));
    }
    let old = res.managed_status();
    let mut status = old.cloned().unwrap_or_default();
    let reason = err.reason();
    let repeat = find_condition(&status.conditions, ConditionType::Synced)
        .is_some_and(|c| c.reason == reason.as_str() && c.message == message);
    let failed = Failed {
        reason,
        message,
        action: "Delete",
        repeat,
    };
    not_synced(res, ctx, &mut status, failed);
    if let Some(written) = write_if_changed(&ctx.kube, res, old, &status).await? {
        ctx.memo.remember(&written);
    }
    Ok(())
}

/// The remote side is done with: the finalizer goes, and with it everything the operator
/// kept about the resource.
async fn release<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
) -> Result<(), Error> {
    remove_finalizer(res, ctx).await?;
    // Its connection need not wait for the watch to tell.
    ctx.usage.released(key);
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

/// A failed deletion, with the client it went through when it got that far.
type DeleteFailed = (Error, Option<Arc<IdentityClient>>);
/// The id of the remote object a create whose answer was lost may have made, found by its
/// natural key (the operator's creation record says it is its own).
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
) -> Result<(), DeleteFailed> {
    let connection = connection_for::<A>(ctx, res, key).map_err(|e| (e, None))?;
    let client = ctx
        .connector
        .client(&connection)
        .await
        .map_err(|e| (e, None))?;
    match A::delete(&client, res, id).await {
        Err(Error::Api(e)) | Err(Error::Rejected(e)) if e.is_not_found() => Ok(()),
        Err(e) => Err((e, Some(client))),
        Ok(()) => Ok(()),
    }
}

/// Whether a deletion failing with `err` can only end in an orphan: the connection cannot work
/// (it, its credentials or the namespace's access to it are gone or refused), or its identity
/// API did not answer a single call during the grace period (gone, as far as anyone can tell;
/// an API that answers other calls is only failing for a while, and is waited for).
fn hopeless(err: &Error, client: Option<&IdentityClient>, grace: Duration) -> bool {
    match err {
        Error::ApiNotFound { .. }
        | Error::WrongProvider { .. }
        | Error::ConnectionNotAllowed { .. }
        | Error::SecretNotFound(_)
        | Error::SecretKeyNotFound { .. }
        | Error::SecretKeyEmpty { .. }
        | Error::SecretNotText { .. }
        | Error::Api(ApiError::Authentication(_) | ApiError::UntrustedCertificate(_))
        | Error::Api(ApiError::Status {
            status: 401 | 403, ..
        }) => true,
        // No answer at all, or only server errors: gone, unless it answered lately.
        Error::Api(
            ApiError::Transport(_)
            | ApiError::Unreachable(_)
            | ApiError::Unavailable { .. }
            | ApiError::Status { .. },
        ) if err.is_transient() => client.is_none_or(|c| !c.answered_within(grace)),
        _ => false,
    }
}

/// When the grace period of a deletion ends: `deletionTimestamp` + grace.
fn deadline<K: Resource>(res: &K, grace: Duration) -> Timestamp {
    let since = res
        .meta()
        .deletion_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let grace = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
    since.saturating_add(grace).unwrap_or(since)
}
