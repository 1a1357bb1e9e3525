//! What a managed kind tells the engine: [`Managed`] (the resource has the common spec and
//! status) and [`Adapter`] (how its spec maps to the vendor's object, and how that object is
//! read, compared, created, updated and deleted). Everything else is the engine's.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;

use kube::Resource;
use kube::core::NamespaceResourceScope;
use kube::core::object::{HasSpec, HasStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::export::Listed;
use super::preview::WriteOnly;
use super::secrets::SecretValues;
use super::spec::{CommonSpec, ManagedStatus, SecretKeyRef};
use super::{Context, Error};
use crate::identity::{IdentityClient, Provider};

/// The spec of a managed kind: it embeds the common fields (`#[serde(flatten)] common`).
pub trait ManagedSpec {
    fn common(&self) -> &CommonSpec;
}

/// A custom resource the engine can reconcile: a namespaced kind whose spec has the common
/// fields and whose status is the common status. Every such kind is one, with no code of its
/// own beyond its [`ManagedSpec`] impl.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasSpec<Spec: ManagedSpec>
    + HasStatus<Status = ManagedStatus>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    fn common(&self) -> &CommonSpec {
        self.spec().common()
    }
    fn managed_status(&self) -> Option<&ManagedStatus> {
        self.status()
    }
    fn set_managed_status(&mut self, status: Option<ManagedStatus>) {
        *self.status_mut() = status;
    }
}

impl<K> Managed for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasSpec<Spec: ManagedSpec>
        + HasStatus<Status = ManagedStatus>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

/// A remote object as read from (or written to) the identity API, with its identity.
#[derive(Clone, Debug)]
pub struct Observed<R> {
    pub id: String,
    pub remote: R,
}

/// What is specific to one managed kind: how its spec maps to the vendor's object, and how
/// that object is read, compared, created, updated and deleted. Everything else (finalizer,
/// Secrets, conditions, Events, requeue, policies) is the engine's.
pub trait Adapter: Send + Sync + 'static {
    type Resource: Managed;
    /// The vendor's object, as the vendor names it.
    type Remote: Clone + Debug + Serialize + Send + Sync + 'static;
    /// The identity-API family the resource's IdentityApi must be.
    const PROVIDER: Provider;
    /// Whether the operator creates and deletes remote objects of this kind (false for
    /// singletons that always exist).
    const CREATES: bool;

    /// Every Secret key the resource references.
    fn secret_refs(res: &Self::Resource) -> Vec<SecretKeyRef>;

    /// The remote id given in the spec (explicit adoption), if any.
    fn spec_id(_res: &Self::Resource) -> Option<String> {
        None
    }

    /// The desired remote object. Without `secrets` (when only comparing) write-only fields
    /// are left out.
    fn desired(res: &Self::Resource, secrets: Option<&SecretValues>)
    -> Result<Self::Remote, Error>;

    /// Paths of the compared fields where `observed` differs from `desired` (write-only fields
    /// excluded).
    fn diff(desired: &Self::Remote, observed: &Self::Remote) -> Vec<String>;

    /// Reads the remote object: by `id` when one is known, otherwise by its natural key.
    fn find(
        api: &IdentityClient,
        res: &Self::Resource,
        id: Option<&str>,
    ) -> impl Future<Output = Result<Option<Observed<Self::Remote>>, Error>> + Send;

    fn create(
        api: &IdentityClient,
        res: &Self::Resource,
        desired: &Self::Remote,
    ) -> impl Future<Output = Result<Observed<Self::Remote>, Error>> + Send;

    /// Makes the remote object match `desired`. `secrets_changed` tells whether a referenced
    /// Secret changed since its value was last sent (or was never sent): APIs that treat an
    /// omitted password as "unchanged" send it only then.
    fn update(
        api: &IdentityClient,
        res: &Self::Resource,
        id: &str,
        desired: &Self::Remote,
        observed: &Self::Remote,
        secrets_changed: bool,
    ) -> impl Future<Output = Result<Observed<Self::Remote>, Error>> + Send;

    fn delete(
        api: &IdentityClient,
        res: &Self::Resource,
        id: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// For `export`: every remote object of this kind the API holds (every page of it), each
    /// with the spec drafted from it, or why none can be.
    fn export(
        api: &IdentityClient,
    ) -> impl Future<Output = Result<Vec<Listed<Self::Remote>>, Error>> + Send;

    /// The write-only fields `res` sets (passwords, shared secrets), for `plan`: where the spec
    /// sets each, its Secret key, and, where the API returns the value, whether the remote one
    /// differs from `values` (compared, never shown). By default the remote value is unknown.
    fn write_only(
        _api: &IdentityClient,
        res: &Self::Resource,
        _observed: Option<&Observed<Self::Remote>>,
        _values: &SecretValues,
    ) -> impl Future<Output = Result<Vec<WriteOnly>, Error>> + Send {
        let fields = super::preview::write_only_fields(res, Self::secret_refs(res));
        async move { Ok(fields) }
    }

    /// A few fields of the remote object worth showing in `status.remote`.
    fn summary(_observed: &Self::Remote) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// Whether deleting the resource may mean deleting (or changing) something remote.
    fn deletes_remote(_res: &Self::Resource) -> bool {
        Self::CREATES
    }

    /// One remote object per IdentityApi (settings singletons): a second resource pointing at
    /// the same IdentityApi is a conflict reported on the younger one.
    const SINGLETON: bool = false;

    /// Names of further Secrets whose changes should requeue the resource (for example a
    /// Secret the operator writes for the user).
    fn watched_secrets(_res: &Self::Resource) -> Vec<String> {
        Vec::new()
    }

    /// Reads what the spec takes from outside Secrets (for example a ConfigMap key) into a copy
    /// of the resource, before anything is compared or written. Such inputs are not watched: a
    /// change is picked up at the next drift check.
    fn resolve<'a>(
        _ctx: &'a Context,
        res: &'a Self::Resource,
    ) -> impl Future<Output = Result<Cow<'a, Self::Resource>, Error>> + Send + 'a {
        async move { Ok(Cow::Borrowed(res)) }
    }

    /// Kind-specific work once the remote object is in place (Apply only), for example writing
    /// a server-generated credential to a Secret. `fresh` is the object as the last write
    /// returned it (carrying what only a create or regenerate returns), `None` when nothing was
    /// written in this reconcile.
    fn finish(
        _ctx: &Context,
        _api: &IdentityClient,
        _res: &Self::Resource,
        _observed: &Observed<Self::Remote>,
        _fresh: bool,
        _status: &mut ManagedStatus,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }
}
