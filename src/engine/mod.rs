//! The reconcile engine: one generic reconcile for every managed kind, driven by a small
//! [`Adapter`] per kind that knows only its vendor API.

pub mod connections;
pub mod controller;
pub mod dependents;
pub mod diff;
pub mod error;
pub mod events;
pub mod memo;
pub mod reasons;
pub mod reconcile;
pub mod secrets;
pub mod status;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::Store;
use kube::{Client, Resource};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::Error;

use crate::identity::IdentityClient;
use crate::kinds::common::{CommonSpec, ManagedStatus, SecretKeyRef};
use crate::kinds::identity_api::{IdentityApi, Provider};
use crate::metrics::Metrics;
use secrets::{SecretValues, SecretVersions};

/// The finalizer the operator holds while it may still have to delete something remote.
pub const FINALIZER: &str = "identity.operator.dev/cleanup";
/// `identity.operator.dev/paused: "true"` stops all writes to the identity API.
pub const PAUSED_ANNOTATION: &str = "identity.operator.dev/paused";
/// Set by the operator (with its finalizer) just before it creates a remote object, so that
/// the object is known as its own even when the create's answer is lost (crash, timeout).
pub const CREATES_ANNOTATION: &str = "identity.operator.dev/creates-remote";
/// Field manager of every write the operator makes.
pub const MANAGER: &str = "identity-operator";

/// A custom resource the engine can reconcile: it has the common spec fields and the common
/// status.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    fn common(&self) -> &CommonSpec;
    fn managed_status(&self) -> Option<&ManagedStatus>;
    fn set_managed_status(&mut self, status: Option<ManagedStatus>);
}

macro_rules! impl_managed {
    ($($kind:ty),* $(,)?) => {$(
        impl Managed for $kind {
            fn common(&self) -> &CommonSpec {
                &self.spec.common
            }
            fn managed_status(&self) -> Option<&ManagedStatus> {
                self.status.as_ref()
            }
            fn set_managed_status(&mut self, status: Option<ManagedStatus>) {
                self.status = status;
            }
        }
    )*};
}

impl_managed!(
    crate::kinds::identity_backend::IdentityBackend,
    crate::kinds::org_connection::OrgConnection,
    crate::kinds::ldap_settings::LdapSettings,
    crate::kinds::admin_api_app::AdminApiApp,
    crate::kinds::authentication_settings::AuthenticationSettings,
);

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
    type Remote: Clone + Debug + Send + Sync + 'static;
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

/// Operator-wide settings of the engine.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Drift check interval (jittered ±10 %).
    pub resync: Duration,
    /// How long a deletion may wait for a missing IdentityApi or credentials before the
    /// operator gives up on the remote object and releases the finalizer (Orphan).
    pub deletion_grace: Duration,
    /// Identity of this replica in Events.
    pub instance: String,
}

/// Shared state of all controllers.
pub struct Context {
    pub kube: Client,
    pub events: events::Events,
    pub apis: Store<IdentityApi>,
    pub secrets: SecretVersions,
    pub connections: connections::Connections,
    pub dependents: dependents::Dependents,
    pub memo: memo::Memo,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    failures: Mutex<HashMap<(&'static str, String, String), u32>>,
    stores: Mutex<HashMap<std::any::TypeId, Box<dyn std::any::Any + Send + Sync>>>,
}

impl Context {
    pub fn new(
        kube: Client,
        apis: Store<IdentityApi>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            events: events::Events::new(
                kube.clone(),
                MANAGER,
                &settings.instance,
                metrics.events_dropped.clone(),
            ),
            kube,
            apis,
            secrets: SecretVersions::default(),
            connections: connections::Connections::new(&settings.instance),
            dependents: Default::default(),
            memo: Default::default(),
            metrics,
            settings,
            failures: Mutex::default(),
            stores: Mutex::default(),
        }
    }

    /// Makes the watch cache of kind `K` available to reconciles of other objects.
    pub fn register_store<K: Managed>(&self, store: Store<K>) {
        self.stores
            .lock()
            .expect("lock")
            .insert(std::any::TypeId::of::<K>(), Box::new(store));
    }

    pub fn store<K: Managed>(&self) -> Option<Store<K>> {
        self.stores
            .lock()
            .expect("lock")
            .get(&std::any::TypeId::of::<K>())
            .and_then(|s| s.downcast_ref::<Store<K>>())
            .cloned()
    }

    /// Per-object exponential backoff: 1 s, 2 s, 4 s … up to 5 min, with ±20 % jitter.
    pub fn next_backoff(&self, key: (&'static str, String, String)) -> Duration {
        let mut failures = self.failures.lock().expect("lock");
        let n = failures.entry(key).or_insert(0);
        let base = Duration::from_secs(1).saturating_mul(1u32 << (*n).min(9));
        *n += 1;
        jitter(base.min(Duration::from_secs(300)), 0.2)
    }

    pub fn reset_backoff(&self, key: &(&'static str, String, String)) {
        self.failures.lock().expect("lock").remove(key);
    }

    /// The next drift check.
    pub fn resync(&self) -> Duration {
        jitter(self.settings.resync, 0.1)
    }
}

pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let f = rand::rng().random_range((1.0 - fraction)..=(1.0 + fraction));
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100), 0.1);
            assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
        }
    }
}
