//! An IdentityApi in use: while resources may still delete remote objects through it (its
//! holders), it and the Secrets holding its credentials carry the in-use finalizer. Deleted,
//! it stays usable, says in a `Deleting` condition and an Event who it waits for, and goes as
//! soon as the last of them is done. A Secret deleted meanwhile waits the same way.

use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::IdentityApi;
use super::connection::target_of;
use super::reconcile::ApiContext;
use crate::engine::conditions::Reason;
use crate::engine::protection::{SecretScope, report_held as report_held_in};
use crate::engine::status::write_if_changed;
use crate::engine::usage::Holders;
use crate::engine::{Error, ObjectKey};

const KIND: &str = "IdentityApi";

/// How often a held IdentityApi reports its holders again.
const HELD_REPORT: Duration = Duration::from_secs(5);

/// Keeps the in-use finalizer of `api`, and of the Secrets of its namespace, as the holders say.
pub async fn protect(api: &IdentityApi, ctx: &ApiContext, holders: &Holders) -> Result<(), Error> {
    let engine = &ctx.engine;
    let complete = engine.usage.is_complete();
    if !holders.is_empty() || complete {
        let objects = Api::namespaced(engine.kube.clone(), &namespace(api));
        ctx.protector
            .connection(&objects, api, !holders.is_empty())
            .await?;
    }
    protect_secrets(ctx, &namespace(api), complete).await
}

/// A deleted IdentityApi: released once no resource needs it any more; until then it keeps its
/// client and reports who it waits for.
pub async fn deleting(
    api: &IdentityApi,
    ctx: &ApiContext,
    key: &ObjectKey,
    holders: &Holders,
) -> Result<Action, Error> {
    let engine = &ctx.engine;
    let complete = engine.usage.is_complete();
    // Its own Secrets are no longer wanted once it has no holder.
    protect_secrets(ctx, &key.namespace, complete).await?;
    if !holders.is_empty() {
        report_held(api, ctx, holders).await?;
        return Ok(Action::requeue(HELD_REPORT));
    }
    if !complete {
        // The index's completion reconciles every IdentityApi.
        return Ok(Action::await_change());
    }
    let objects = Api::namespaced(engine.kube.clone(), &key.namespace);
    ctx.protector.connection(&objects, api, false).await?;
    ctx.apis.clients.forget(&key.namespace, &key.name);
    engine
        .dependents
        .trigger(&target_of(&key.namespace, &key.name));
    Ok(Action::await_change())
}

async fn protect_secrets(ctx: &ApiContext, ns: &str, may_release: bool) -> Result<(), Error> {
    let engine = &ctx.engine;
    let wanted = ctx.apis.wanted_secrets(ns, &engine.usage);
    let scope = SecretScope {
        namespace: ns,
        versions: &engine.secrets,
        dependents: &engine.dependents,
        events: &engine.events,
    };
    ctx.protector.secrets(&scope, &wanted, may_release).await
}

/// `Deleting=True, reason=InUse` naming the holders, and an Event when it is first set.
async fn report_held(api: &IdentityApi, ctx: &ApiContext, holders: &Holders) -> Result<(), Error> {
    let engine = &ctx.engine;
    let old = api.status.as_ref();
    let mut status = old.cloned().unwrap_or_default();
    let generation = api.meta().generation;
    if let Some(message) = report_held_in(&mut status.conditions, generation, KIND, holders) {
        let reason = Reason::InUse.as_str();
        engine
            .events
            .emit(api, EventType::Normal, reason, "Delete", message);
    }
    write_if_changed(&engine.kube, api, old, &status).await?;
    Ok(())
}

fn namespace(api: &IdentityApi) -> String {
    api.namespace().unwrap_or_default()
}
