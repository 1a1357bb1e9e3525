//! The reconcile engine: one generic reconcile for every managed kind, driven by a small
//! [`Adapter`] per kind that knows only its vendor API. The engine never names a kind: the
//! kinds register themselves in `crate::kinds`, and the connections resources use reach it
//! through the [`connector::Connector`] seam.
//!
//! A reconcile reads as its steps (`reconcile.rs`): dereference (the connection, Secrets,
//! inputs) → observe (find the remote object) → decide (`decide.rs`, a pure function that
//! `plan` calls too) → act (create, update, delete) → report (conditions, Events, status).

pub mod adapter;
pub mod cache;
mod cleanup;
pub mod conditions;
pub mod connector;
pub mod context;
pub mod controller;
pub mod decide;
pub mod dependents;
pub mod diff;
pub mod error;
pub mod events;
pub mod export;
pub mod finalizer;
pub mod key;
pub mod memo;
pub mod preview;
pub mod protection;
pub mod queue;
pub mod reader;
pub mod reconcile;
pub mod registry;
pub mod removal;
pub mod report;
pub mod secrets;
pub mod spec;
pub mod status;
pub mod turns;
pub mod usage;

pub use adapter::{Adapter, Managed, ManagedSpec, Observed};
pub use context::{Context, Settings, jitter};
pub use error::Error;
pub use key::ObjectKey;

/// The finalizer the operator holds while it may still have to delete something remote.
pub const FINALIZER: &str = "identity.operator.dev/cleanup";
/// The finalizer a connection and its credential Secrets carry while a resource may still need
/// them to delete something remote (see `usage.rs`).
pub const IN_USE_FINALIZER: &str = "identity.operator.dev/in-use";
/// `identity.operator.dev/paused: "true"` stops all writes to the identity API.
pub const PAUSED_ANNOTATION: &str = "identity.operator.dev/paused";
/// Set by the operator (with its finalizer) just before it creates a remote object, so that
/// the object is known as its own even when the create's answer is lost (crash, timeout).
pub const CREATES_ANNOTATION: &str = "identity.operator.dev/creates-remote";
/// Field manager of every write the operator makes.
pub const MANAGER: &str = "identity-operator";
