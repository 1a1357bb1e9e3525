//! The operator's finalizers and creation record on a resource, written with JSON patches
//! that touch nothing else (and fail rather than remove someone else's finalizer).

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};

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
    if wanted {
        ops = finalizer_ops(res.finalizers(), FINALIZER, true);
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
    patch_json(res, ctx, ops).await
}

pub async fn remove_finalizer<K: Managed>(res: &K, ctx: &Context) -> Result<(), Error> {
    match finalizer_ops(res.finalizers(), FINALIZER, false) {
        ops if ops.is_empty() => Ok(()),
        ops => patch_json(res, ctx, ops).await,
    }
}

/// The JSON patch operations that add (`wanted`) or remove `finalizer` in `finalizers`; none
/// when it is already as wanted. A removal tests the entry first, so the patch fails rather
/// than remove someone else's finalizer if the list changed since it was read.
pub fn finalizer_ops(finalizers: &[String], finalizer: &str, wanted: bool) -> Vec<Value> {
    let at = finalizers.iter().position(|f| f == finalizer);
    match (wanted, at) {
        (true, None) if finalizers.is_empty() => {
            vec![json!({"op": "add", "path": "/metadata/finalizers", "value": [finalizer]})]
        }
        (true, None) => {
            vec![json!({"op": "add", "path": "/metadata/finalizers/-", "value": finalizer})]
        }
        (false, Some(i)) => {
            let path = format!("/metadata/finalizers/{i}");
            vec![
                json!({"op": "test", "path": path, "value": finalizer}),
                json!({"op": "remove", "path": path}),
            ]
        }
        _ => Vec::new(),
    }
}

/// `ops` as a JSON patch.
pub fn json_patch(ops: Vec<Value>) -> json_patch::Patch {
    serde_json::from_value(Value::Array(ops)).expect("valid JSON patch")
}

async fn patch_json<K: Managed>(res: &K, ctx: &Context, ops: Vec<Value>) -> Result<(), Error> {
    let api: Api<K> = Api::namespaced(ctx.kube.clone(), &res.namespace().unwrap_or_default());
    let written = api
        .patch(
            &res.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(json_patch(ops)),
        )
        .await?;
    ctx.memo.remember(&written);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalizers_are_added_once_and_removed_only_where_they_are() {
        let none: Vec<String> = Vec::new();
        assert_eq!(
            finalizer_ops(&none, "f", true),
            vec![json!({"op": "add", "path": "/metadata/finalizers", "value": ["f"]})]
        );
        let other = vec!["other".to_owned()];
        assert_eq!(
            finalizer_ops(&other, "f", true),
            vec![json!({"op": "add", "path": "/metadata/finalizers/-", "value": "f"})]
        );
        assert!(finalizer_ops(&other, "f", false).is_empty());
        let both = vec!["other".to_owned(), "f".to_owned()];
        assert!(finalizer_ops(&both, "f", true).is_empty());
        assert_eq!(
            finalizer_ops(&both, "f", false),
            vec![
                json!({"op": "test", "path": "/metadata/finalizers/1", "value": "f"}),
                json!({"op": "remove", "path": "/metadata/finalizers/1"}),
            ]
        );
    }
}
