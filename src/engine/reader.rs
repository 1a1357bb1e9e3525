//! Where a reconcile reads the Secrets and ConfigMaps a resource refers to: the cluster for the
//! operator, manifests on disk (over the cluster) for `plan`. Reads only: what the operator
//! writes (status, finalizers, the Secret of an AdminApiApp) goes to the cluster directly.

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

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
        let api: Api<Secret> = Api::namespaced(self.0.clone(), namespace);
        async move { Ok(api.get_opt(name).await?) }.boxed()
    }

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConfigMap>, Error>> {
        let api: Api<ConfigMap> = Api::namespaced(self.0.clone(), namespace);
        async move { Ok(api.get_opt(name).await?) }.boxed()
    }
}
