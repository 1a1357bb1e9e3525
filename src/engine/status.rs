//! Conditions and status writes. Status is written only when it changed, with server-side
//! apply under the operator's field manager, so the operator's own writes never loop back.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;

use super::{Error, MANAGER};
use crate::kinds::common::Condition;

pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Sets a condition, keeping its transition time when the status did not flip.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if ok { "True" } else { "False" };
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now();
            }
            c.status = status.into();
            c.reason = reason.into();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            last_transition_time: now(),
            observed_generation: generation,
        }),
    }
}

/// Writes `status` when it differs from `old`.
pub async fn write_if_changed<K, S>(
    kube: &kube::Client,
    res: &K,
    old: Option<&S>,
    new: &S,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(None);
    }
    let api: Api<K> = Api::namespaced(kube.clone(), &res.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    let written = api
        .patch_status(
            &res.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await?;
    Ok(Some(written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_a_flip() {
        let mut conds = Vec::new();
        set_condition(&mut conds, "Ready", false, "SecretNotFound", "x", Some(1));
        let first = conds[0].last_transition_time.clone();
        conds[0].last_transition_time = "2000-01-01T00:00:00Z".into();
        set_condition(&mut conds, "Ready", false, "Rejected", "y", Some(2));
        assert_eq!(conds[0].last_transition_time, "2000-01-01T00:00:00Z");
        assert_eq!(conds[0].reason, "Rejected");
        set_condition(&mut conds, "Ready", true, "Synced", "", Some(2));
        assert_ne!(conds[0].last_transition_time, "2000-01-01T00:00:00Z");
        assert!(!first.is_empty());
    }
}
