//! A managed kind as the operator's wiring sees it: its CRD and its controller. The kinds list
//! themselves once (`crate::kinds::MANAGED`) as [`Registered`] adapters; everything that
//! iterates over kinds (the CRDs, the controllers) goes through that list.

use std::marker::PhantomData;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Client, CustomResourceExt};

use super::controller::{Scope, Shutdown, run_kind};
use super::key::kind_of;
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
}
