//! The reconcile contract, identical for every managed kind:
//! finalizer → dereference (IdentityApi, Secrets) → observe → diff → write only what differs →
//! report (conditions, Events, status written only when changed) → requeue.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, warn};

use super::dependents::Target;
use super::error::Next;
use super::events::Report;
use super::status::{now, set_condition, write_if_changed};
use super::{
    Adapter, CREATES_ANNOTATION, Context, Error, FINALIZER, Managed, PAUSED_ANNOTATION, secrets,
};
use crate::kinds::common::{DeletionPolicy, ManagedStatus, ManagementPolicy};
use crate::kinds::identity_api::IdentityApi;

type Key = (&'static str, String, String);

/// What a successful sync found.
enum Outcome {
    /// Remote equals spec; nothing written.
    InSync,
    /// A remote write was made.
    Written,
    /// Observe: the remote differs from the spec (paths in status.drift).
    Drifted,
    /// A terminal failure already holds for exactly this spec; nothing was tried.
    StillFailed,
}

pub async fn reconcile<A: Adapter>(
    res: Arc<A::Resource>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let kind = kind::<A>();
    let key: Key = (kind, res.namespace().unwrap_or_default(), res.name_any());
    let span = info_span!("reconcile", kind, namespace = %key.1, object = %key.2);
    let started = Instant::now();
    let res = ctx.memo.refresh(res.as_ref()).map(Arc::new).unwrap_or(res);
    let result = async {
        if res.meta().deletion_timestamp.is_some() {
            cleanup::<A>(&res, &ctx, &key).await
        } else {
            apply::<A>(&res, &ctx, &key).await
        }
    }
    .instrument(span)
    .await;
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics
        .reconciled(kind, label, started.elapsed().as_secs_f64());
    result
}

/// kube-runtime calls this only for errors `reconcile` could not report itself (status writes).
pub fn error_policy<A: Adapter>(res: Arc<A::Resource>, err: &Error, ctx: Arc<Context>) -> Action {
    let key: Key = (
        kind::<A>(),
        res.namespace().unwrap_or_default(),
        res.name_any(),
    );
    warn!(kind = key.0, namespace = %key.1, object = %key.2, error = %err, "reconcile failed");
    ctx.metrics.reconcile_error(key.0, err.reason());
    Action::requeue(ctx.next_backoff(key))
}

pub(crate) fn kind<A: Adapter>() -> &'static str {
    // Kinds are static strings in the derived CRD types; leak-free since the Cow is Borrowed.
    match A::Resource::kind(&()) {
        std::borrow::Cow::Borrowed(k) => k,
        std::borrow::Cow::Owned(k) => Box::leak(k.into_boxed_str()),
    }
}

fn is_paused<K: Resource>(res: &K) -> bool {
    res.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

async fn apply<A: Adapter>(res: &A::Resource, ctx: &Context, key: &Key) -> Result<Action, Error> {
    let generation = res.meta().generation;
    let old = res.managed_status();
    let mut status = old.cloned().unwrap_or_default();
    if is_paused(res) {
        let msg = format!("the {PAUSED_ANNOTATION} annotation stops all writes");
        set_condition(
            &mut status.conditions,
            "Synced",
            false,
            "Paused",
            msg,
            generation,
        );
        if let Some(written) = write_if_changed(&ctx.kube, res, old, &status).await? {
            ctx.memo.remember(&written);
        }
        return Ok(Action::await_change());
    }
    let outcome = sync::<A>(res, ctx, key, &mut status).await;
    let action = match outcome {
        Ok(outcome) => {
            report_success(&mut status, &outcome, generation);
            None
        }
        Err(err) => Some(report_failure::<A>(res, ctx, key, &mut status, &err).await),
    };
    ctx.dependents.settled(key, action.is_some());
    status.observed_generation = generation;
    let ready = status
        .condition("Ready")
        .map(|c| (c.status == "True", c.reason.as_str()));
    ctx.metrics
        .set_ready(key.0, &format!("{}/{}", key.1, key.2), ready);
    // A failed status write goes to error_policy, whose backoff keeps growing: the reset comes
    // only once the outcome is recorded.
    if let Some(written) = write_if_changed(&ctx.kube, res, old, &status).await? {
        ctx.memo.remember(&written);
    }
    Ok(action.unwrap_or_else(|| {
        ctx.reset_backoff(key);
        Action::requeue(ctx.resync())
    }))
}

fn report_success(status: &mut ManagedStatus, outcome: &Outcome, generation: Option<i64>) {
    match outcome {
        Outcome::StillFailed => {}
        Outcome::Drifted => {
            let msg = format!("remote differs from spec at: {}", status.drift.join(", "));
            set_condition(
                &mut status.conditions,
                "Ready",
                false,
                "Drifted",
                msg,
                generation,
            );
            set_condition(
                &mut status.conditions,
                "Synced",
                true,
                "Observed",
                "drift reported, nothing written (Observe)",
                generation,
            );
        }
        Outcome::InSync | Outcome::Written => {
            set_condition(
                &mut status.conditions,
                "Ready",
                true,
                "Synced",
                "remote object matches the spec",
                generation,
            );
            set_condition(
                &mut status.conditions,
                "Synced",
                true,
                "ReconcileSuccess",
                "last reconcile succeeded",
                generation,
            );
        }
    }
}

async fn report_failure<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &Key,
    status: &mut ManagedStatus,
    err: &Error,
) -> Action {
    let generation = res.meta().generation;
    let message = err.to_string();
    let unchanged = status.condition("Synced").is_some_and(|c| {
        c.reason == err.reason() && c.message == message && c.observed_generation == generation
    });
    warn!(reason = err.reason(), error = %message, "reconcile failed");
    ctx.metrics.reconcile_error(key.0, err.reason());
    // A drift check that fails for a passing reason says nothing about the remote object: it
    // stays Ready (only Synced tells) while the spec and Secrets it last matched are current.
    let still_ready = err.is_transient()
        && status
            .condition("Ready")
            .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
        && secrets::versions(&ctx.secrets, &key.1, &A::secret_refs(res))
            .is_ok_and(|v| v == status.applied_secret_versions);
    if !still_ready {
        set_condition(
            &mut status.conditions,
            "Ready",
            false,
            err.reason(),
            message.clone(),
            generation,
        );
    }
    set_condition(
        &mut status.conditions,
        "Synced",
        false,
        err.reason(),
        message.clone(),
        generation,
    );
    // The same failure for the same spec is one Event, not one per retry.
    if !unchanged {
        publish(
            ctx,
            res,
            EventType::Warning,
            err.reason(),
            "Reconcile",
            message,
        )
        .await;
    }
    match err.next() {
        Next::Backoff => Action::requeue(ctx.next_backoff(key.clone())),
        Next::After(d) => {
            Action::requeue(super::jitter(d, 0.1) + std::time::Duration::from_millis(50))
        }
        // A change of the resource, its IdentityApi or a Secret requeues it at once; the slow
        // resync is only a safety net.
        Next::WaitForChange => Action::requeue(ctx.resync()),
    }
}

async fn sync<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &Key,
    status: &mut ManagedStatus,
) -> Result<Outcome, Error> {
    let (kind, ns, _) = key;
    let common = res.common();
    let policy = common.management_policy();
    let finalizer_wanted = policy == ManagementPolicy::Apply && A::deletes_remote(res);
    // A resource never linked to a remote object gets its finalizer once the lookup is done:
    // together with the creation record when it is about to create one (see below), and not
    // at all while its IdentityApi or Secrets are missing (nothing remote to clean up then).
    if !finalizer_wanted || status.external_id.is_some() || has_finalizer(res) {
        ensure_finalizer(res, ctx, finalizer_wanted, false).await?;
    }

    // Dereference: the IdentityApi and every Secret, recorded first so that creating a missing
    // one requeues this resource.
    let refs = A::secret_refs(res);
    let mut targets = vec![Target::Api {
        namespace: ns.clone(),
        name: common.api_ref.name.clone(),
    }];
    let secret_names = refs.iter().map(|r| r.name.clone());
    targets.extend(
        secret_names
            .chain(A::watched_secrets(res))
            .map(|name| Target::Secret {
                namespace: ns.clone(),
                name,
            }),
    );
    ctx.dependents.record(key.clone(), targets);
    let api = identity_api::<A>(ctx, ns, &common.api_ref.name)?;
    check_singleton::<A>(ctx, res, ns)?;
    let versions = secrets::versions(&ctx.secrets, ns, &refs)?;
    let resolved = A::resolve(ctx, res).await?;
    let res = resolved.as_ref();
    let view = A::desired(res, None)?;

    let mut attempt = format!(
        "generation={} api={} secrets={:?}",
        res.meta().generation.unwrap_or_default(),
        api.metadata.generation.unwrap_or_default(),
        versions
    );
    if matches!(resolved, std::borrow::Cow::Owned(_)) {
        // Inputs from outside the spec (a ConfigMap) may change without a new generation: a
        // rejected spec is retried once they do.
        attempt.push_str(&format!(" inputs={:x}", fingerprint(&view)));
    }
    if status.failed_attempt.as_deref() == Some(attempt.as_str()) {
        return Ok(Outcome::StillFailed);
    }
    status.failed_attempt = None;

    let client = ctx
        .connections
        .get(&api, &ctx.kube, &ctx.secrets, &ctx.metrics)
        .await?;
    let known_id = A::spec_id(res).or_else(|| status.external_id.clone());
    let observed = A::find(&client, res, known_id.as_deref()).await?;
    let secrets_changed = versions != status.applied_secret_versions;

    let found = match (observed, policy) {
        (None, ManagementPolicy::Observe) => {
            return Err(Error::RemoteNotFound(format!(
                "the remote {kind} does not exist (Observe never creates it)"
            )));
        }
        (Some(found), ManagementPolicy::Observe) => {
            status.drift = A::diff(&view, &found.remote);
            status.external_id = Some(found.id.clone());
            status.remote = A::summary(&found.remote);
            return Ok(if status.drift.is_empty() {
                Outcome::InSync
            } else {
                Outcome::Drifted
            });
        }
        (found, ManagementPolicy::Apply) => found,
    };
    let (remote, outcome) = match found {
        None => {
            if let Some(id) = A::spec_id(res) {
                return Err(Error::RemoteNotFound(format!(
                    "remote {kind} {id:?} to adopt does not exist"
                )));
            }
            // Recorded on the resource before the create call, in the finalizer's write: if the
            // operator dies or the call times out after the vendor created the object, the next
            // lookup finds it by name and still knows it is ours (deletionPolicy Delete).
            ensure_finalizer(res, ctx, finalizer_wanted, A::CREATES).await?;
            if status.external_id.is_some() {
                ctx.metrics.drift(kind);
                info!("remote object was deleted behind the operator's back; creating it again");
            }
            let values = secrets::read(&ctx.kube, ns, &refs).await?;
            let desired = A::desired(res, Some(&values))?;
            let created = A::create(&client, res, &desired).await;
            let created = remember_terminal(created, status, &attempt)?;
            info!(id = %created.id, "created remote object");
            let note = format!("created remote {kind} {}", created.id);
            publish(ctx, res, EventType::Normal, "Created", "Create", note).await;
            status.created = Some(true);
            record_write::<A>(status, &created, versions);
            (created, Outcome::Written)
        }
        Some(found) => {
            ensure_finalizer(res, ctx, finalizer_wanted, false).await?;
            status.created.get_or_insert(creation_recorded(res));
            let drift = A::diff(&view, &found.remote);
            if drift.is_empty() && !secrets_changed {
                status.external_id = Some(found.id.clone());
                status.remote = A::summary(&found.remote);
                status.drift.clear();
                (found, Outcome::InSync)
            } else {
                let spec_unchanged = res.meta().generation == status.observed_generation;
                if !drift.is_empty() && spec_unchanged {
                    ctx.metrics.drift(kind);
                }
                let values = secrets::read(&ctx.kube, ns, &refs).await?;
                let desired = A::desired(res, Some(&values))?;
                let updated = A::update(
                    &client,
                    res,
                    &found.id,
                    &desired,
                    &found.remote,
                    secrets_changed,
                )
                .await;
                let updated = remember_terminal(updated, status, &attempt)?;
                let what = match (drift.is_empty(), secrets_changed) {
                    (false, false) => drift.join(", "),
                    (true, _) => "credentials from Secrets".to_owned(),
                    (false, true) => format!("{} and credentials from Secrets", drift.join(", ")),
                };
                info!(id = %updated.id, fields = %what, "updated remote object");
                let note = format!("updated remote {kind} {}: {what}", updated.id);
                publish(ctx, res, EventType::Normal, "Updated", "Update", note).await;
                record_write::<A>(status, &updated, versions);
                (updated, Outcome::Written)
            }
        }
    };
    let fresh = matches!(outcome, Outcome::Written);
    A::finish(ctx, &client, res, &remote, fresh, status).await?;
    Ok(outcome)
}

/// Settings singletons: the oldest resource pointing at an IdentityApi owns its settings;
/// any other is told so, instead of the two fighting over the remote object.
fn check_singleton<A: Adapter>(ctx: &Context, res: &A::Resource, ns: &str) -> Result<(), Error> {
    if !A::SINGLETON {
        return Ok(());
    }
    let Some(store) = ctx.store::<A::Resource>() else {
        return Ok(());
    };
    let api = &res.common().api_ref.name;
    let age = |r: &A::Resource| {
        (
            r.meta().creation_timestamp.as_ref().map(|t| t.0),
            r.name_any(),
        )
    };
    let owner = store
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(ns) && &r.common().api_ref.name == api)
        // An owner being deleted keeps the settings until its own cleanup (for example
        // disabling them) is done and its finalizer is gone.
        .filter(|r| r.meta().deletion_timestamp.is_none() || has_finalizer(r.as_ref()))
        .min_by_key(|r| age(r));
    match owner {
        Some(owner) if owner.name_any() != res.name_any() => Err(Error::Conflict(format!(
            "{} {:?} already manages the settings of IdentityApi {api:?}; only one may",
            kind::<A>(),
            owner.name_any()
        ))),
        _ => Ok(()),
    }
}

/// A stable digest of the desired object (which, without Secrets, holds no secret value).
fn fingerprint(view: &impl std::fmt::Debug) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    format!("{view:?}").hash(&mut h);
    h.finish()
}

fn record_write<A: Adapter>(
    status: &mut ManagedStatus,
    written: &super::Observed<A::Remote>,
    versions: BTreeMap<String, String>,
) {
    status.external_id = Some(written.id.clone());
    status.remote = A::summary(&written.remote);
    status.applied_secret_versions = versions;
    status.last_sync_time = Some(now());
    status.drift.clear();
}

/// A rejected spec is remembered, so the same spec is not sent again until something changes.
fn remember_terminal<T>(
    result: Result<T, Error>,
    status: &mut ManagedStatus,
    attempt: &str,
) -> Result<T, Error> {
    if let Err(e) = &result
        && e.is_terminal()
    {
        status.failed_attempt = Some(attempt.to_owned());
    }
    result
}

fn identity_api<A: Adapter>(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Arc<IdentityApi>, Error> {
    let api = ctx
        .apis
        .get(&ObjectRef::new(name).within(ns))
        .ok_or_else(|| Error::ApiNotFound(name.to_owned()))?;
    if api.spec.provider != A::PROVIDER {
        return Err(Error::WrongProvider {
            name: name.to_owned(),
            kind: kind::<A>(),
            actual: api.spec.provider.as_str(),
            expected: A::PROVIDER.as_str(),
        });
    }
    Ok(api)
}

async fn cleanup<A: Adapter>(res: &A::Resource, ctx: &Context, key: &Key) -> Result<Action, Error> {
    if !has_finalizer(res) {
        return Ok(Action::await_change());
    }
    let (kind, ns, _) = key;
    let status = res.managed_status().cloned().unwrap_or_default();
    let policy = match res.common().deletion_policy {
        Some(policy) => policy,
        // Settings singletons are never created: they are "deleted" (for example disabled) only
        // when their spec asks for it.
        None if !A::CREATES && A::deletes_remote(res) => DeletionPolicy::Delete,
        None if A::CREATES && status.created == Some(true) => DeletionPolicy::Delete,
        None => DeletionPolicy::Orphan,
    };
    let id = status.external_id.clone();
    match (policy, id) {
        (DeletionPolicy::Delete, Some(id)) if is_paused(res) => {
            let msg = format!("remote {kind} {id} left in place: the resource is paused");
            publish(ctx, res, EventType::Warning, "Orphaned", "Delete", msg).await;
        }
        (DeletionPolicy::Delete, Some(id)) => match delete_remote::<A>(res, ctx, ns, &id).await {
            Ok(()) => {
                info!(%id, "deleted remote object");
                publish(
                    ctx,
                    res,
                    EventType::Normal,
                    "Deleted",
                    "Delete",
                    format!("deleted remote {kind} {id}"),
                )
                .await;
            }
            Err(err) if gives_up(res, ctx, &err) => {
                let msg = format!(
                    "remote {kind} {id} left in place after {:?}: {err}",
                    ctx.settings.deletion_grace
                );
                warn!(%id, error = %err, "giving up on deleting the remote object");
                publish(ctx, res, EventType::Warning, "Orphaned", "Delete", msg).await;
            }
            Err(err) => {
                warn!(%id, error = %err, "deleting the remote object failed");
                publish(
                    ctx,
                    res,
                    EventType::Warning,
                    err.reason(),
                    "Delete",
                    format!("deleting remote {kind} {id} failed: {err}"),
                )
                .await;
                return Ok(Action::requeue(ctx.next_backoff(key.clone())));
            }
        },
        (DeletionPolicy::Orphan, Some(id)) => {
            publish(
                ctx,
                res,
                EventType::Normal,
                "Orphaned",
                "Delete",
                format!("remote {kind} {id} left in place (deletionPolicy Orphan)"),
            )
            .await;
        }
        (_, None) => {}
    }
    remove_finalizer(res, ctx).await?;
    ctx.memo.forget(res);
    ctx.dependents.forget(key.clone());
    if A::SINGLETON {
        // A younger resource waiting for this singleton's IdentityApi may take over now.
        ctx.dependents.trigger(&Target::Api {
            namespace: ns.clone(),
            name: res.common().api_ref.name.clone(),
        });
    }
    ctx.reset_backoff(key);
    ctx.metrics
        .set_ready(kind, &format!("{}/{}", key.1, key.2), None);
    Ok(Action::await_change())
}

async fn delete_remote<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    ns: &str,
    id: &str,
) -> Result<(), Error> {
    let api = identity_api::<A>(ctx, ns, &res.common().api_ref.name)?;
    let client = ctx
        .connections
        .get(&api, &ctx.kube, &ctx.secrets, &ctx.metrics)
        .await?;
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

fn has_finalizer<K: Resource>(res: &K) -> bool {
    res.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether the operator recorded, before a create call, that it creates this remote object.
fn creation_recorded<K: Resource>(res: &K) -> bool {
    res.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CREATES_ANNOTATION))
}

/// Adds or removes the finalizer as `wanted`, and with `record_creation` also sets
/// [`CREATES_ANNOTATION`]: one write for both, and none when nothing changes.
async fn ensure_finalizer<K: Managed>(
    res: &K,
    ctx: &Context,
    wanted: bool,
    record_creation: bool,
) -> Result<(), Error> {
    if !wanted && has_finalizer(res) {
        return remove_finalizer(res, ctx).await;
    }
    let mut ops = Vec::new();
    if wanted && !has_finalizer(res) {
        ops.push(if res.finalizers().is_empty() {
            json!({"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]})
        } else {
            json!({"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER})
        });
    }
    if record_creation && !creation_recorded(res) {
        let path = format!(
            "/metadata/annotations/{}",
            CREATES_ANNOTATION.replace('/', "~1")
        );
        if res.meta().annotations.is_none() {
            ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
        }
        ops.push(json!({"op": "add", "path": path, "value": "true"}));
    }
    if ops.is_empty() {
        return Ok(());
    }
    patch_json(res, ctx, serde_json::Value::Array(ops)).await
}

async fn remove_finalizer<K: Managed>(res: &K, ctx: &Context) -> Result<(), Error> {
    let Some(i) = res.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{i}");
    // The test makes the patch fail rather than remove someone else's finalizer if the list
    // changed since we read it.
    let op =
        json!([{"op": "test", "path": path, "value": FINALIZER}, {"op": "remove", "path": path}]);
    patch_json(res, ctx, op).await
}

async fn patch_json<K: Managed>(
    res: &K,
    ctx: &Context,
    ops: serde_json::Value,
) -> Result<(), Error> {
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &res.namespace().unwrap_or_default());
    let patch: json_patch::Patch = serde_json::from_value(ops).expect("valid JSON patch");
    let written = api
        .patch(
            &res.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await?;
    ctx.memo.remember(&written);
    Ok(())
}

pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    res: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    // Queued: an Event is a report, and the reconcile (the remote write, the status) should
    // not wait for one more round trip to the API server.
    let note = truncate_note(note);
    let report = Report {
        type_,
        reason,
        action,
        note: &note,
    };
    ctx.events.send(&report, res.object_ref(&()));
}

/// Events notes are limited to 1 kB by the API server.
fn truncate_note(mut note: String) -> String {
    if note.len() > 1000 {
        let mut end = 997;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}
