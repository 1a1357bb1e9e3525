//! The reconcile contract, identical for every managed kind, as its steps:
//! dereference (the connection, Secrets, inputs) → observe (find the remote object) → decide
//! ([`decide`], pure) → act (create, update; delete in [`cleanup`]) → report (conditions,
//! Events, status written only when it changed) → requeue.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::queue::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use super::conditions::Reason;
use super::connector::{Connection, Request};
use super::decide::{self, Blocked, Facts, Step, Write};
use super::dependents::Target;
use super::diff::fingerprint;
use super::finalizer::{creation_recorded, ensure_finalizer, has_finalizer, is_paused};
use super::key::kind_of;
use super::report::{self, Outcome};
use super::spec::{HasConditions, ManagedStatus, ManagementPolicy, SecretKeyRef};
use super::status::{now, write_if_changed};
use super::turns::Turn;
use super::{Adapter, Context, Error, Managed, ObjectKey, Observed, secrets};
use crate::identity::IdentityClient;

pub use super::cleanup::cleanup;

pub async fn reconcile<A: Adapter>(
    res: Arc<A::Resource>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let key = ObjectKey::of(kind_of::<A::Resource>(), res.as_ref());
    // Every line of a reconcile (its writes too) names the connection it goes through: one
    // ClusterIdentityApi serves many namespaces.
    let api_ref = &res.common().api_ref;
    let connection = format!("{}/{}", api_ref.kind().as_str(), api_ref.name);
    let span = info_span!("reconcile", kind = key.kind, namespace = %key.namespace, object = %key.name, %connection);
    let res = ctx.memo.refresh(res.as_ref()).map(Arc::new).unwrap_or(res);
    let _turn = match take_turn::<A>(&ctx, &res, &key) {
        Some(Turn::Later(wait)) => {
            debug!(parent: &span, ?wait, "its namespace has its share of the connection: put off");
            ctx.metrics.put_off(&connection, &key.namespace);
            return Ok(Action::requeue(wait));
        }
        Some(Turn::Go(held)) => Some(held),
        None => None,
    };
    let started = Instant::now();
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
        .reconciled(key.kind, label, started.elapsed().as_secs_f64());
    result
}

/// A turn on the resource's connection, when several namespaces share it (see `turns.rs`).
/// A connection that cannot be resolved has none: the reconcile reports why.
fn take_turn<A: Adapter>(ctx: &Context, res: &A::Resource, key: &ObjectKey) -> Option<Turn> {
    let connection = connection_for::<A>(ctx, res, key).ok()?;
    let sharing = connection.sharing?;
    let wake = || ctx.dependents.senders(key.kind);
    Some(
        sharing
            .turns
            .take(&connection.target, key, sharing.cap, wake),
    )
}

/// kube-runtime calls this only for errors `reconcile` could not report itself (status writes).
pub fn error_policy(key: &ObjectKey, err: &Error, ctx: &Context) -> Action {
    warn!(kind = key.kind, namespace = %key.namespace, object = %key.name, error = %err, "reconcile failed");
    ctx.metrics.reconcile_error(key.kind, err.reason().as_str());
    Action::requeue(ctx.next_backoff(key))
}

async fn apply<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
) -> Result<Action, Error> {
    let generation = res.meta().generation;
    let old = res.managed_status();
    let mut status = old.cloned().unwrap_or_default();
    if is_paused(res) {
        report::paused(&mut status, generation);
        if let Some(written) = write_if_changed(&ctx.kube, res, old, &status).await? {
            ctx.memo.remember(&written);
        }
        return Ok(Action::await_change());
    }
    let action = match sync::<A>(res, ctx, key, &mut status).await {
        Ok(outcome) => {
            report::success(&mut status, &outcome, generation);
            // A write the API did not fully take is checked again soon, not at the resync:
            // a write loop is found (and stopped) within seconds.
            matches!(outcome, Outcome::Written { converged: false })
                .then(|| Action::requeue(ctx.next_backoff(key)))
        }
        Err(err) => Some(report::failure::<A>(res, ctx, key, &mut status, &err)),
    };
    ctx.dependents.settled(key, action.is_some());
    status.observed_generation = generation;
    let ready = status.condition(super::conditions::ConditionType::Ready);
    let ready = ready.map(|c| (c.is_true(), c.reason.as_str()));
    ctx.metrics.set_ready(key.kind, &key.object(), ready);
    // A failed status write goes to error_policy, whose backoff keeps growing: the reset comes
    // only once the outcome is recorded.
    if let Some(written) = write_if_changed(&ctx.kube, res, old, &status).await? {
        ctx.memo.remember(&written);
    }
    Ok(action.unwrap_or_else(|| {
        ctx.reset_backoff(key);
        // The drift check comes from the kind's sweep (`controller::sweep`), not a timer.
        Action::await_change()
    }))
}

/// What a reconcile knows once it has dereferenced everything the resource refers to.
pub(crate) struct Dereferenced<'a, A: Adapter> {
    pub connection: Connection,
    /// The resource with its inputs from outside Secrets (a ConfigMap) read in.
    pub res: Cow<'a, A::Resource>,
    pub refs: Vec<SecretKeyRef>,
    /// `name/key` → resourceVersion of every referenced Secret.
    pub versions: BTreeMap<String, String>,
    /// The desired remote object without Secret values: what is compared.
    pub view: A::Remote,
    /// What a write depends on; a failure recorded for it holds until one of these changes.
    pub attempt: String,
}

async fn sync<A: Adapter>(
    res: &A::Resource,
    ctx: &Context,
    key: &ObjectKey,
    status: &mut ManagedStatus,
) -> Result<Outcome, Error> {
    let finalizer_wanted = wants_finalizer::<A>(res);
    // A resource never linked to a remote object gets its finalizer once the lookup is done:
    // together with the creation record when it is about to create one (see `create`), and not
    // at all while its IdentityApi or Secrets are missing (nothing remote to clean up then).
    if !finalizer_wanted || status.external_id.is_some() || has_finalizer(res) {
        ensure_finalizer(res, ctx, finalizer_wanted, false).await?;
    }
    let Some(found) = gather::<A>(res, ctx, key, status).await? else {
        return Ok(Outcome::StillFailed);
    };
    let step = decide::decide(&found.facts(ctx, key, status));
    act::<A>(ctx, key, status, found, step).await
}

/// What a reconcile knows once it has dereferenced and observed: all [`decide::decide`]
/// needs.
pub(crate) struct Found<'a, A: Adapter> {
    pub input: Dereferenced<'a, A>,
    pub client: Arc<IdentityClient>,
    pub observed: Option<Observed<A::Remote>>,
    /// Where the observed object differs from the spec.
    pub drift: Vec<String>,
    /// The state a write starts from (spec, Secrets, remote object): writes that leave it as it
    /// was count towards a write loop.
    pub from: Option<String>,
    spec_id: Option<String>,
}

impl<A: Adapter> Found<'_, A> {
    pub fn facts<'s>(
        &'s self,
        ctx: &Context,
        key: &ObjectKey,
        status: &'s ManagedStatus,
    ) -> Facts<'s> {
        Facts {
            policy: self.input.res.common().management_policy(),
            remote: self.observed.as_ref().map(|o| decide::Remote {
                id: &o.id,
                drift: &self.drift,
            }),
            secrets_changed: self.input.versions != status.applied_secret_versions,
            spec_id: self.spec_id.as_deref(),
            linked_id: status.external_id.as_deref(),
            unconverged_writes: self
                .from
                .as_deref()
                .map_or(0, |from| ctx.unconverged_writes(key, from)),
        }
    }
}

/// Dereferences and observes; `None` when a failure recorded in the status still holds for
/// what was found (nothing is tried then).
pub(crate) async fn gather<'a, A: Adapter>(
    res: &'a A::Resource,
    ctx: &'a Context,
    key: &ObjectKey,
    status: &mut ManagedStatus,
) -> Result<Option<Found<'a, A>>, Error> {
    let input = dereference::<A>(res, ctx, key).await?;
    if status.failed_attempt.as_deref() == Some(input.attempt.as_str()) {
        return Ok(None);
    }
    let client = ctx.connector.client(&input.connection).await?;
    let observed = observe::<A>(&client, &input, status).await?;
    let drift = observed
        .as_ref()
        .map(|o| A::diff(&input.view, &o.remote))
        .unwrap_or_default();
    let from = observed.as_ref().map(|o| {
        let fingerprint = remote_fingerprint::<A>(&input, o);
        format!("{} remote={fingerprint:x}", input.attempt)
    });
    if from.is_some() && status.failed_attempt == from {
        return Ok(None);
    }
    status.failed_attempt = None;
    Ok(Some(Found {
        spec_id: A::spec_id(res),
        input,
        client,
        observed,
        drift,
        from,
    }))
}

/// Carries out `step`.
async fn act<A: Adapter>(
    ctx: &Context,
    key: &ObjectKey,
    status: &mut ManagedStatus,
    found: Found<'_, A>,
    step: Step,
) -> Result<Outcome, Error> {
    let Found {
        input,
        client,
        observed,
        from,
        ..
    } = found;
    let (remote, outcome) = match step {
        Step::Create { again } => create::<A>(ctx, &client, &input, status, again).await?,
        Step::Sync { write, .. } => {
            let found = observed.expect("Sync follows a found remote object");
            let res = input.res.as_ref();
            ensure_finalizer(res, ctx, wants_finalizer::<A>(res), false).await?;
            status.created.get_or_insert(creation_recorded(res));
            let from = from.expect("a found object has a state");
            update::<A>(ctx, key, &client, &input, status, found, write, from).await?
        }
        Step::Observe { drift } => {
            let found = observed.expect("Observe follows a found remote object");
            // Write-only values cannot be read back: the Secrets as they are when an object is
            // first observed are taken as what it holds. Switching to Apply then sends a value
            // only once its Secret changes (an exported tenant is promoted without a write).
            if status.external_id.as_deref() != Some(found.id.as_str())
                && status.applied_secret_versions.is_empty()
            {
                status.applied_secret_versions = input.versions.clone();
            }
            link::<A>(status, &found);
            status.drift = drift;
            return Ok(if status.drift.is_empty() {
                Outcome::InSync
            } else {
                Outcome::Drifted
            });
        }
        Step::Blocked(blocked) => return Err(blocked_error::<A>(ctx, status, blocked, from)),
    };
    let fresh = matches!(outcome, Outcome::Written { .. });
    A::finish(ctx, &client, &input.res, &remote, fresh, status).await?;
    Ok(outcome)
}

/// The finalizer is held while deleting the resource may mean a remote change.
fn wants_finalizer<A: Adapter>(res: &A::Resource) -> bool {
    res.common().management_policy() == ManagementPolicy::Apply && A::deletes_remote(res)
}

/// The connection, Secrets and inputs the resource refers to, each checked; recorded as its
/// dependencies first, so that creating a missing one requeues the resource.
async fn dereference<'a, A: Adapter>(
    res: &'a A::Resource,
    ctx: &'a Context,
    key: &ObjectKey,
) -> Result<Dereferenced<'a, A>, Error> {
    let ns = &key.namespace;
    let api_ref = &res.common().api_ref;
    let refs = A::secret_refs(res);
    let secrets = refs
        .iter()
        .map(|r| r.name.clone())
        .chain(A::watched_secrets(res))
        .map(|name| Target::Secret {
            namespace: ns.to_string(),
            name,
        });
    let targets = std::iter::once(ctx.connector.target(ns, api_ref))
        .chain(secrets)
        .collect();
    ctx.dependents.record(key.clone(), targets);

    let connection = connection_for::<A>(ctx, res, key)?;
    check_singleton::<A>(ctx, res, ns)?;
    let versions = secrets::versions(&ctx.secrets, ns, &refs)?;
    let resolved = A::resolve(ctx, res).await?;
    let view = A::desired(&resolved, None)?;
    let mut attempt = format!(
        "generation={} api={} secrets={:?}",
        res.meta().generation.unwrap_or_default(),
        connection.generation,
        versions
    );
    if matches!(resolved, Cow::Owned(_)) {
        // Inputs from outside the spec (a ConfigMap) may change without a new generation: a
        // rejected spec is retried once they do.
        attempt.push_str(&format!(" inputs={:x}", fingerprint(&view)));
    }
    Ok(Dereferenced {
        connection,
        res: resolved,
        refs,
        versions,
        view,
        attempt,
    })
}

/// The connection the resource names, of the provider its kind needs.
pub(super) fn connection_for<A: Adapter>(
    ctx: &Context,
    res: &A::Resource,
    key: &ObjectKey,
) -> Result<Connection, Error> {
    let common = res.common();
    let api_ref = &common.api_ref;
    let request = Request {
        namespace: &key.namespace,
        kind: key.kind,
        api_ref,
        policy: common.management_policy(),
    };
    let connection = ctx.connector.resolve(&request)?;
    if connection.provider != A::PROVIDER {
        return Err(Error::WrongProvider {
            name: api_ref.name.clone(),
            kind: key.kind,
            actual: connection.provider.as_str(),
            expected: A::PROVIDER.as_str(),
        });
    }
    Ok(connection)
}

/// Reads the remote object: by the id the spec or the status names, else by natural key.
async fn observe<A: Adapter>(
    client: &IdentityClient,
    input: &Dereferenced<'_, A>,
    status: &ManagedStatus,
) -> Result<Option<Observed<A::Remote>>, Error> {
    let known_id = A::spec_id(&input.res).or_else(|| status.external_id.clone());
    A::find(client, &input.res, known_id.as_deref()).await
}

/// A digest of the observed object as far as the spec speaks of it: what a write that changed
/// nothing leaves as it was (server-computed fields such as a last login time are left out).
fn remote_fingerprint<A: Adapter>(
    input: &Dereferenced<'_, A>,
    observed: &Observed<A::Remote>,
) -> u64 {
    let view = serde_json::to_value(&input.view).unwrap_or_default();
    let remote = serde_json::to_value(&observed.remote).unwrap_or_default();
    fingerprint(&super::diff::project(&remote, &view))
}

async fn create<A: Adapter>(
    ctx: &Context,
    client: &IdentityClient,
    input: &Dereferenced<'_, A>,
    status: &mut ManagedStatus,
    again: bool,
) -> Result<(Observed<A::Remote>, Outcome), Error> {
    let res = input.res.as_ref();
    let kind = kind_of::<A::Resource>();
    // Recorded on the resource before the create call, in the finalizer's write: if the
    // operator dies or the call times out after the vendor created the object, the next lookup
    // finds it by name and still knows it is ours (deletionPolicy Delete).
    ensure_finalizer(res, ctx, wants_finalizer::<A>(res), A::CREATES).await?;
    if again {
        ctx.metrics.drift(kind);
        info!("remote object was deleted behind the operator's back; creating it again");
    }
    let values = secrets::read(
        &*ctx.reader,
        &res.namespace().unwrap_or_default(),
        &input.refs,
    )
    .await?;
    let desired = A::desired(res, Some(&values))?;
    let created = match A::create(client, res, &desired).await {
        Err(err) => {
            // The create may have happened all the same (its answer lost, cut short, or
            // refused as a duplicate): no list fetched before it may answer the next lookup.
            client.lists().expire();
            match err {
                Error::AlreadyExists(exists) => {
                    adopt_created::<A>(client, input, status, &desired, exists).await
                }
                err => Err(err),
            }
        }
        created => created,
    };
    let created = remember_terminal(created, status, &input.attempt)?;
    info!(id = %created.id, "created remote object");
    let note = format!("created remote {kind} {}", created.id);
    ctx.events
        .emit(res, EventType::Normal, "Created", "Create", note);
    status.created = Some(true);
    record_write::<A>(status, &created, input.versions.clone());
    Ok((created, Outcome::Written { converged: true }))
}

/// A create refused because the object exists. After an earlier attempt of the operator whose
/// answer was lost, the object is that attempt's: it is read again (a fresh read), adopted as
/// the operator's creation and brought to the spec, instead of the resource being stuck at
/// `Rejected`. Without such an attempt, someone else made it since the lookup: that is said,
/// and the next (fresh) lookup adopts it as theirs.
async fn adopt_created<A: Adapter>(
    client: &IdentityClient,
    input: &Dereferenced<'_, A>,
    status: &mut ManagedStatus,
    desired: &A::Remote,
    exists: String,
) -> Result<Observed<A::Remote>, Error> {
    let res = input.res.as_ref();
    if !creation_recorded(res) || status.created == Some(false) {
        // Remembered in status, so that a later refusal is not taken for a lost attempt.
        status.created = Some(false);
        return Err(Error::AlreadyExists(format!(
            "{exists}, and the operator did not create it: someone else did since it looked. \
             The next reconcile adopts it, and leaves it in place on deletion unless \
             deletionPolicy is Delete"
        )));
    }
    let Some(found) = A::find(client, res, None).await? else {
        return Err(Error::AlreadyExists(format!(
            "{exists} (made by an earlier attempt of the operator whose answer was lost), but \
             it cannot be read yet; it is adopted once it can"
        )));
    };
    info!(id = %found.id, "adopted the object an earlier create made (its answer was lost)");
    if A::diff(&input.view, &found.remote).is_empty() {
        return Ok(found);
    }
    A::update(client, res, &found.id, desired, &found.remote, true).await
}

/// Links a found remote object, writing what differs.
#[allow(clippy::too_many_arguments)]
async fn update<A: Adapter>(
    ctx: &Context,
    key: &ObjectKey,
    client: &IdentityClient,
    input: &Dereferenced<'_, A>,
    status: &mut ManagedStatus,
    found: Observed<A::Remote>,
    write: Write,
    from: String,
) -> Result<(Observed<A::Remote>, Outcome), Error> {
    let res = input.res.as_ref();
    let Write::Fields {
        drift,
        secrets_changed,
    } = &write
    else {
        link::<A>(status, &found);
        status.drift.clear();
        ctx.converged(key);
        return Ok((found, Outcome::InSync));
    };
    let spec_unchanged = res.meta().generation == status.observed_generation;
    if !drift.is_empty() && spec_unchanged {
        ctx.metrics.drift(key.kind);
    }
    let values = secrets::read(&*ctx.reader, &key.namespace, &input.refs).await?;
    let desired = A::desired(res, Some(&values))?;
    let updated = A::update(
        client,
        res,
        &found.id,
        &desired,
        &found.remote,
        *secrets_changed,
    )
    .await;
    let updated = remember_terminal(updated, status, &input.attempt)?;
    let what = write.describe();
    info!(id = %updated.id, fields = %what, "updated remote object");
    let note = format!("updated remote {} {}: {what}", key.kind, updated.id);
    ctx.events
        .emit(res, EventType::Normal, "Updated", "Update", note);
    record_write::<A>(status, &updated, input.versions.clone());
    ctx.count_write(key, from);
    let converged = A::diff(&input.view, &updated.remote).is_empty();
    Ok((updated, Outcome::Written { converged }))
}

fn blocked_error<A: Adapter>(
    ctx: &Context,
    status: &mut ManagedStatus,
    blocked: Blocked,
    from: Option<String>,
) -> Error {
    let kind = kind_of::<A::Resource>();
    if let Blocked::WriteNotConverging { .. } = blocked {
        // Held until the spec, a Secret or the remote object changes.
        status.failed_attempt = from;
        ctx.metrics.write_loop(kind);
    }
    blocked_as_error(kind, blocked)
}

/// Why nothing can be done, as the condition's reason and message.
pub(crate) fn blocked_message(kind: &str, blocked: &Blocked) -> (Reason, String) {
    let err = blocked_as_error(kind, blocked.clone());
    (err.reason(), err.to_string())
}

fn blocked_as_error(kind: &str, blocked: Blocked) -> Error {
    match blocked {
        Blocked::NothingToObserve => Error::RemoteNotFound(format!(
            "the remote {kind} does not exist (Observe never creates it)"
        )),
        Blocked::NothingToAdopt { id } => {
            Error::RemoteNotFound(format!("remote {kind} {id:?} to adopt does not exist"))
        }
        Blocked::WriteNotConverging { drift } => Error::WriteNotConverging {
            drift,
            writes: decide::MAX_UNCONVERGED_WRITES,
        },
    }
}

/// Settings singletons: the oldest resource pointing at an IdentityApi owns its settings;
/// any other is told so, instead of the two fighting over the remote object.
fn check_singleton<A: Adapter>(ctx: &Context, res: &A::Resource, ns: &str) -> Result<(), Error> {
    if !A::SINGLETON {
        return Ok(());
    }
    let Some(cache) = ctx.cache::<A::Resource>() else {
        return Ok(());
    };
    let api = &res.common().api_ref.name;
    let age = |r: &A::Resource| {
        (
            r.meta().creation_timestamp.as_ref().map(|t| t.0),
            r.name_any(),
        )
    };
    let owner = cache
        .in_namespace(ns)
        .into_iter()
        .filter(|r| &r.common().api_ref.name == api)
        // An owner being deleted keeps the settings until its own cleanup (for example
        // disabling them) is done and its finalizer is gone.
        .filter(|r| r.meta().deletion_timestamp.is_none() || has_finalizer(r))
        .min_by_key(age);
    match owner {
        Some(owner) if owner.name_any() != res.name_any() => Err(Error::Conflict(format!(
            "{} {:?} already manages the settings of IdentityApi {api:?}; only one may",
            kind_of::<A::Resource>(),
            owner.name_any()
        ))),
        _ => Ok(()),
    }
}

/// Records the remote object the resource is linked to.
fn link<A: Adapter>(status: &mut ManagedStatus, found: &Observed<A::Remote>) {
    status.external_id = Some(found.id.clone());
    status.remote = A::summary(&found.remote);
}

fn record_write<A: Adapter>(
    status: &mut ManagedStatus,
    written: &Observed<A::Remote>,
    versions: BTreeMap<String, String>,
) {
    link::<A>(status, written);
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
