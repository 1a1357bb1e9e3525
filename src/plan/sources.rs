//! What `plan` reads in place of the operator's watch caches: the manifests given, over the
//! cluster when one is reachable. Objects given win over the cluster's; what is referenced and
//! given nowhere is missing, as it would be for the operator.

use std::collections::{BTreeMap, BTreeSet};

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Resource;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;

use crate::engine::Error;
use crate::engine::reader::{ClusterReader, Reader};
use crate::engine::secrets::SecretVersions;

/// `(namespace, name)`.
pub type Name = (String, String);

/// Secrets and ConfigMaps from the manifests, read before the cluster's.
pub struct PlanReader {
    pub secrets: BTreeMap<Name, Secret>,
    pub config_maps: BTreeMap<Name, ConfigMap>,
    pub cluster: Option<ClusterReader>,
}

fn key(namespace: &str, name: &str) -> Name {
    (namespace.to_owned(), name.to_owned())
}

impl Reader for PlanReader {
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, Error>> {
        async move {
            match (self.secrets.get(&key(namespace, name)), &self.cluster) {
                (Some(given), _) => Ok(Some(given.clone())),
                (None, Some(cluster)) => cluster.secret(namespace, name).await,
                (None, None) => Ok(None),
            }
        }
        .boxed()
    }

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, Error>> {
        async move {
            match (self.config_maps.get(&key(namespace, name)), &self.cluster) {
                (Some(given), _) => Ok(Some(given.clone())),
                (None, Some(cluster)) => cluster.config_map(namespace, name).await,
                (None, None) => Ok(None),
            }
        }
        .boxed()
    }
}

/// The resourceVersion of every Secret `plan` can see. A Secret given in the manifests keeps
/// the cluster's version when its data is the cluster's (`same`: nothing new would be sent),
/// else it gets a version no status has recorded (its value would be sent).
pub fn secret_versions(
    given: &BTreeMap<Name, Secret>,
    cluster: &[PartialObjectMeta<Secret>],
    same: &BTreeSet<Name>,
) -> SecretVersions {
    let versions = SecretVersions::default();
    versions.apply(&watcher::Event::Init);
    for secret in cluster {
        versions.apply(&watcher::Event::InitApply(secret.clone()));
    }
    for (n, (name, secret)) in given.iter().enumerate() {
        if same.contains(name) {
            continue;
        }
        let mut meta = PartialObjectMeta::<Secret>::default();
        meta.metadata = secret.meta().clone();
        meta.metadata.namespace = Some(name.0.clone());
        meta.metadata.resource_version = Some(format!("plan-input-{n}"));
        versions.apply(&watcher::Event::InitApply(meta));
    }
    versions.apply(&watcher::Event::InitDone);
    versions
}

/// A Secret's data with `stringData` folded in, as the API server would store it.
pub fn data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

/// Shared by the manifests' objects: a namespace for those without one.
pub fn with_namespace(mut value: serde_json::Value, default: &str) -> serde_json::Value {
    if value["metadata"]["namespace"].as_str().is_none() {
        value["metadata"]["namespace"] = default.into();
    }
    value
}
