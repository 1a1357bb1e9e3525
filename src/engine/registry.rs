//! A managed kind as the operator's wiring sees it: its CRD and its controller. The kinds list
//! themselves once (`crate::kinds::MANAGED`) as [`Registered`] adapters; everything that
//! iterates over kinds (the CRDs, the controllers) goes through that list.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ApiResource;
use kube::{Client, CustomResourceExt};

use serde_json::Value;

use super::cache::Cache;
use super::conditions::Reason;
use super::controller::{Scope, Shutdown, run_kind};
use super::export::{Exported, check};
use super::key::kind_of;
use super::preview::{Preview, preview};
use super::{Adapter, Context, Error};
use crate::identity::{IdentityClient, Provider};

/// One managed kind, whatever its adapter.
pub trait ManagedKind: Sync {
    /// The kind's name, e.g. `IdentityBackend`.
    fn kind(&self) -> &'static str;
    /// Its CustomResourceDefinition, as derived from its Rust type.
    fn crd(&self) -> CustomResourceDefinition;
    /// Its controller, running until `shutdown`.
    fn run(
        &self,
        client: Client,
        scope: Scope,
        ctx: Arc<Context>,
        concurrency: u16,
        shutdown: Shutdown,
    ) -> BoxFuture<'static, ()>;
    /// Its API resource (group, version, kind, plural).
    fn api_resource(&self) -> ApiResource;
    /// Makes `objs` (manifests of this kind) the kind's store in `ctx`: what a reconcile sees
    /// of the other resources of its kind (the owner of a settings singleton).
    fn register(&self, ctx: &Context, objs: Vec<Value>);
    /// The identity-API family its resources speak to.
    fn provider(&self) -> Provider;
    /// Whether the operator creates and deletes its remote objects (not settings singletons).
    fn creates(&self) -> bool;
    /// `manifest` (a resource of this kind) as YAML, or JSON with `json`, its fields in the
    /// CRD's order; an error when it is no valid resource of the kind.
    fn render(&self, manifest: Value, json: bool) -> Result<String, String>;
    /// Every remote object of the kind `api` holds, drafted as specs and checked (`export`).
    fn export<'a>(&'a self, api: &'a IdentityClient)
    -> BoxFuture<'a, Result<Vec<Exported>, Error>>;
    /// What the reconcile would do with `obj` (a manifest of this kind) now; see
    /// [`preview`](super::preview::preview).
    fn preview<'a>(&'a self, ctx: &'a Context, obj: Value) -> BoxFuture<'a, Preview>;
}

/// The [`ManagedKind`] of adapter `A`.
pub struct Registered<A>(PhantomData<fn() -> A>);

impl<A> Registered<A> {
    pub const KIND: Self = Self(PhantomData);
}

impl<A: Adapter> ManagedKind for Registered<A>
where
    A::Resource: CustomResourceExt,
{
    fn kind(&self) -> &'static str {
        kind_of::<A::Resource>()
    }

    fn crd(&self) -> CustomResourceDefinition {
        A::Resource::crd()
    }

    fn run(
        &self,
        client: Client,
        scope: Scope,
        ctx: Arc<Context>,
        concurrency: u16,
        shutdown: Shutdown,
    ) -> BoxFuture<'static, ()> {
        run_kind::<A>(client, scope, ctx, concurrency, shutdown).boxed()
    }

    fn api_resource(&self) -> ApiResource {
        ApiResource::erase::<A::Resource>(&())
    }

    fn register(&self, ctx: &Context, objs: Vec<Value>) {
        let objects = objs
            .into_iter()
            .filter_map(|obj| serde_json::from_value::<A::Resource>(obj).ok());
        ctx.register_cache(Arc::new(Cache::of(objects)));
    }

    fn provider(&self) -> Provider {
        A::PROVIDER
    }

    fn creates(&self) -> bool {
        A::CREATES
    }

    fn render(&self, manifest: Value, json: bool) -> Result<String, String> {
        let res: A::Resource = serde_json::from_value(manifest).map_err(|e| e.to_string())?;
        match json {
            true => serde_json::to_string_pretty(&res).map_err(|e| e.to_string()),
            false => serde_yaml::to_string(&res).map_err(|e| e.to_string()),
        }
    }

    fn export<'a>(
        &'a self,
        api: &'a IdentityClient,
    ) -> BoxFuture<'a, Result<Vec<Exported>, Error>> {
        async move {
            let listed = A::export(api).await?;
            Ok(listed
                .into_iter()
                .map(check::<A>)
                .map(|l| Exported {
                    id: l.observed.id,
                    draft: l.draft,
                })
                .collect())
        }
        .boxed()
    }

    fn preview<'a>(&'a self, ctx: &'a Context, obj: Value) -> BoxFuture<'a, Preview> {
        async move {
            match serde_json::from_value::<A::Resource>(obj) {
                Ok(res) => preview::<A>(&res, ctx).await,
                Err(e) => Preview::blocked(
                    Reason::InvalidSpec.as_str(),
                    format!("not a valid {}: {e}", self.kind()),
                ),
            }
        }
        .boxed()
    }
}
