//! Status writes. Status is written only when it changed, with server-side
//! apply under the operator's field manager, so the operator's own writes never loop back.

use kube::api::{Patch, PatchParams};
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
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
    K: Resource<DynamicType = (), Scope: StatusScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
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
    let written = K::Scope::api(kube.clone(), res)
        .patch_status(
            &res.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await?;
    Ok(Some(written))
}

/// Where an object of this scope is written: in its namespace, or in the cluster.
pub trait StatusScope: Sized {
    fn api<K: Resource<DynamicType = (), Scope = Self>>(kube: kube::Client, res: &K) -> Api<K>;
}

impl StatusScope for NamespaceResourceScope {
    fn api<K: Resource<DynamicType = (), Scope = Self>>(kube: kube::Client, res: &K) -> Api<K> {
        Api::namespaced(kube, &res.namespace().unwrap_or_default())
    }
}

impl StatusScope for ClusterResourceScope {
    fn api<K: Resource<DynamicType = (), Scope = Self>>(kube: kube::Client, _: &K) -> Api<K> {
        Api::all(kube)
    }
}
