//! The report step: what a reconcile's outcome means for the conditions, the Events and the
//! next reconcile. The IdentityApi's reconcile reports its failures with [`is_repeat`] and
//! [`next_attempt`] too.

use std::time::Duration;

use super::queue::Action;
use kube::Resource;
use kube::runtime::events::EventType;
use tracing::warn;

use super::conditions::{ConditionType, Reason, set_condition};
use super::error::Next;
use super::spec::{Condition, HasConditions, ManagedStatus, find_condition};
use super::{Adapter, Context, Error, ObjectKey, PAUSED_ANNOTATION, secrets};

/// What a successful sync found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Remote equals spec; nothing written.
    InSync,
    /// A remote write was made; `converged` when its answer matches the spec.
    Written { converged: bool },
    /// Observe: the remote differs from the spec (paths in status.drift).
    Drifted,
    /// A failure recorded for exactly this spec, these Secrets (and remote state) still holds;
    /// nothing was tried.
    StillFailed,
}

pub fn paused(status: &mut ManagedStatus, generation: Option<i64>) {
    let msg = format!("the {PAUSED_ANNOTATION} annotation stops all writes");
    set_condition(
        &mut status.conditions,
        ConditionType::Synced,
        false,
        Reason::Paused,
        msg,
        generation,
    );
}

pub fn success(status: &mut ManagedStatus, outcome: &Outcome, generation: Option<i64>) {
    let conditions = &mut status.conditions;
    match outcome {
        // A write whose answer still differs is judged by the next reconcile, soon.
        Outcome::StillFailed | Outcome::Written { converged: false } => {}
        Outcome::Drifted => {
            let msg = format!("remote differs from spec at: {}", status.drift.join(", "));
            set_condition(
                conditions,
                ConditionType::Ready,
                false,
                Reason::Drifted,
                msg,
                generation,
            );
            set_condition(
                conditions,
                ConditionType::Synced,
                true,
                Reason::Observed,
                "drift reported, nothing written (Observe)",
                generation,
            );
        }
        Outcome::InSync | Outcome::Written { converged: true } => {
            set_condition(
                conditions,
                ConditionType::Ready,
                true,
                Reason::Synced,
                "remote object matches the spec",
                generation,
            );
            set_condition(
                conditions,
                ConditionType::Synced,
                true,
                Reason::ReconcileSuccess,
                "last reconcile succeeded",
                generation,
            );
        }
    }
}

/// Whether `err` is what the condition of `type_` already says for this generation: the same
/// failure retried, which gets no second Event.
pub fn is_repeat(
    conditions: &[Condition],
    type_: ConditionType,
    err: &Error,
    generation: Option<i64>,
) -> bool {
    find_condition(conditions, type_).is_some_and(|c| {
        c.reason == err.reason().as_str()
            && c.message == err.to_string()
            && c.observed_generation == generation
    })
}

/// Reports a failed reconcile and says when to try again.
pub fn failure<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
    status: &mut ManagedStatus,
    err: &Error,
) -> Action {
    let generation = res.meta().generation;
    warn!(reason = %err.reason(), error = %err, "reconcile failed");
    ctx.metrics.reconcile_error(key.kind, err.reason().as_str());
    // A drift check that fails for a passing reason says nothing about the remote object: it
    // stays Ready (only Synced tells) while the spec and Secrets it last matched are current.
    let still_ready = err.is_transient()
        && status
            .condition(ConditionType::Ready)
            .is_some_and(|c| c.is_true() && c.observed_generation == generation)
        && secrets::versions(&ctx.secrets, &key.namespace, &A::secret_refs(res))
            .is_ok_and(|v| v == status.applied_secret_versions);
    let repeat = is_repeat(&status.conditions, ConditionType::Synced, err, generation);
    let (reason, message) = (err.reason(), err.to_string());
    if !still_ready {
        let ready = ConditionType::Ready;
        set_condition(
            &mut status.conditions,
            ready,
            false,
            reason,
            &message,
            generation,
        );
    }
    let failed = Failed {
        reason,
        message,
        action: "Reconcile",
        repeat,
    };
    not_synced(res, ctx, status, failed);
    next_attempt(ctx, key, err)
}

/// A failure as `Synced=False` and its Warning Event reports it.
pub struct Failed {
    pub reason: Reason,
    pub message: String,
    /// The Event's action: what failed.
    pub action: &'static str,
    /// The condition already says so: no Event again.
    pub repeat: bool,
}

/// `Synced=False` with the failure's reason and message, and a Warning Event unless it repeats
/// (the same failure for the same spec is one Event, not one per retry).
pub fn not_synced<K: Resource<DynamicType = ()>>(
    res: &K,
    ctx: &Context,
    status: &mut ManagedStatus,
    failed: Failed,
) {
    let generation = res.meta().generation;
    let synced = ConditionType::Synced;
    let reason = failed.reason;
    set_condition(
        &mut status.conditions,
        synced,
        false,
        reason,
        &failed.message,
        generation,
    );
    if !failed.repeat {
        let (reason, action) = (reason.as_str(), failed.action);
        ctx.events
            .emit(res, EventType::Warning, reason, action, failed.message);
    }
}

/// When to try again after `err`.
pub fn next_attempt(ctx: &Context, key: &ObjectKey, err: &Error) -> Action {
    match err.next() {
        Next::Backoff => Action::requeue(ctx.next_backoff(key)),
        Next::After(d) => Action::requeue(super::jitter(d, 0.1) + Duration::from_millis(50)),
        // A change of the resource, its IdentityApi or a Secret requeues it at once; the kind's
        // drift sweep (`controller::sweep`) is only a safety net.
        Next::WaitForChange => Action::await_change(),
    }
}
