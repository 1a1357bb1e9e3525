//! The operator's finalizer and creation record on a resource, written with JSON patches
//! that touch nothing else (and fail rather than remove someone else's finalizer).

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::{CREATES_ANNOTATION, Context, Error, FINALIZER, Managed, PAUSED_ANNOTATION};

pub fn is_paused<K: Resource>(res: &K) -> bool {
    res.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(PAUSED_ANNOTATION))
        .is_some_and(|v| v == "true")
}

pub fn has_finalizer<K: Resource>(res: &K) -> bool {
    res.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether the operator recorded, before a create call, that it creates this remote object.
pub fn creation_recorded<K: Resource>(res: &K) -> bool {
    res.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CREATES_ANNOTATION))
}

/// Adds or removes the finalizer as `wanted`, and with `record_creation` also sets
/// [`CREATES_ANNOTATION`]: one write for both, and none when nothing changes.
pub async fn ensure_finalizer<K: Managed>(
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

pub async fn remove_finalizer<K: Managed>(res: &K, ctx: &Context) -> Result<(), Error> {
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
