//! Where a reconcile reads the Secrets and ConfigMaps a resource refers to: the cluster for the
//! operator, manifests on disk (over the cluster) for `plan`. Reads only: what the operator
//! writes (status, finalizers, the Secret of an AdminApiApp) goes to the cluster directly.

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::NamespaceResourceScope;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

use super::Error;

pub trait Reader: Send + Sync + 'static {
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, Error>>;

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, Error>>;
}

/// Reads from the cluster.
pub struct ClusterReader(pub Client);

impl Reader for ClusterReader {
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Secret>, Error>> {
        self.get(namespace, name)
    }

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, Error>> {
        self.get(namespace, name)
    }
}

impl ClusterReader {
    fn get<'a, K>(&self, namespace: &str, name: &'a str) -> BoxFuture<'a, Result<Option<K>, Error>>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + 'static,
    {
        let api: Api<K> = Api::namespaced(self.0.clone(), namespace);
        async move { Ok(api.get_opt(name).await?) }.boxed()
    }
}
