//! A managed kind as the operator's wiring sees it: its CRD and its controller. The kinds list
//! themselves once (`crate::kinds::MANAGED`) as [`Registered`] adapters; everything that
//! iterates over kinds (the CRDs, the controllers) goes through that list.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ApiResource;
use kube::runtime::{reflector, watcher};
use kube::{Client, CustomResourceExt};

use serde_json::Value;

use super::conditions::Reason;
use super::controller::{Scope, Shutdown, run_kind};
use super::key::kind_of;
use super::preview::{Preview, preview};
use super::{Adapter, Context};

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
        let (store, mut writer) = reflector::store::<A::Resource>();
        writer.apply_watcher_event(&watcher::Event::Init);
        for obj in objs {
            if let Ok(res) = serde_json::from_value::<A::Resource>(obj) {
                writer.apply_watcher_event(&watcher::Event::InitApply(res));
            }
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        ctx.register_store(store);
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
