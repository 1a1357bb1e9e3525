//! Status writes. Status is written only when it changed, with server-side
//! apply under the operator's field manager, so the operator's own writes never loop back.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;

use super::{Error, MANAGER};

pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
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
    let api: Api<K> = Api::namespaced(kube.clone(), &res.namespace().unwrap_or_default());
    apply_status(&api, res, old, new).await
}

/// [`write_if_changed`] for a cluster-scoped object.
pub async fn write_cluster_if_changed<K, S>(
    kube: &kube::Client,
    res: &K,
    old: Option<&S>,
    new: &S,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    apply_status(&Api::all(kube.clone()), res, old, new).await
}

async fn apply_status<K, S>(
    api: &Api<K>,
    res: &K,
    old: Option<&S>,
    new: &S,
) -> Result<Option<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(None);
    }
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
