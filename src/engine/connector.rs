//! The seam between the engine and the connections its resources name with `spec.apiRef`.
//!
//! The engine asks "which connection does this `apiRef` name, for a resource in this
//! namespace?" and gets what it needs of it: the provider (checked against the kind), a
//! generation (part of a rejected attempt's record), what requeues the resource when the
//! connection changes, and a client. The kind that defines connections (IdentityApi) answers
//! from the cluster; `plan` answers from manifests. The engine never names that kind.

use std::any::Any;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::dependents::Target;
use super::error::Error;
use super::spec::{ApiRef, ManagementPolicy};
use super::turns::Turns;
use crate::identity::{IdentityClient, Provider};

/// A connection as a managed resource sees it.
#[derive(Clone)]
pub struct Connection {
    /// The identity-API family it speaks.
    pub provider: Provider,
    /// Changes whenever its settings change.
    pub generation: i64,
    /// What the resource depends on: a change of it requeues the resource.
    pub target: Target,
    /// What the connector needs to build the client; opaque to the engine.
    pub handle: Arc<dyn Any + Send + Sync>,
    /// For a connection several namespaces share: its turns (see `turns.rs`).
    pub sharing: Option<Sharing>,
}

/// The turns of a shared connection, sized by its concurrency cap.
#[derive(Clone)]
pub struct Sharing {
    pub turns: Arc<Turns>,
    pub cap: u32,
}

/// What a resource asks of its connection: which one, and what a connection's access rule
/// looks at (a cluster-wide connection may allow only some namespaces, kinds, or `Observe`).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub namespace: &'a str,
    pub kind: &'static str,
    pub api_ref: &'a ApiRef,
    pub policy: ManagementPolicy,
}

/// Resolves connections for the engine.
pub trait Connector: Send + Sync + 'static {
    /// What a resource in `namespace` naming `api_ref` depends on, whether it exists or not
    /// (so that creating it requeues the resource).
    fn target(&self, namespace: &str, api_ref: &ApiRef) -> Target;

    /// The connection a resource asks for, without I/O: an error when it does not exist or the
    /// resource may not use it (`ConnectionNotAllowed`, before any identity-API call).
    fn resolve(&self, request: &Request) -> Result<Connection, Error>;

    /// A client of `connection`, authenticated lazily and shared by every resource using it.
    fn client<'a>(
        &'a self,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<Arc<IdentityClient>, Error>>;
}
