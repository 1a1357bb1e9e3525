//! ClusterIdentityApi: one connection for many namespaces, fenced. It has IdentityApi's
//! connection spec (the same types, flattened), its credential Secrets live in the operator's
//! credentials namespace (never in the namespaces that use it), and a required access rule
//! decides which namespaces, kinds and policies may use it (`access.rs`, checked by the
//! connector before any identity-API call). One client per ClusterIdentityApi serves every
//! namespace (`connection.rs`); its own reconcile (`reconcile.rs`) reports Ready, its users per
//! namespace, and holds its deletion while resources still need it.

pub mod access;
pub mod connection;
pub mod reconcile;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::spec::{Condition, HasConditions};
use crate::kinds::identity_api::IdentityApiSpec;

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "ClusterIdentityApi",
    status = "ClusterIdentityApiStatus",
    shortname = "cidapi",
    category = "identity",
    doc = "A connection to an identity system shared by many namespaces: IdentityApi's spec, credentials in the operator's credentials namespace, and an explicit rule of which namespaces (kinds, policies) may use it.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
/// A connection shared by the namespaces its `allowedNamespaces` names or selects: IdentityApi's
/// connection spec, whose Secret references name Secrets in the operator's credentials
/// namespace, and who may use it.
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentityApiSpec {
    /// The connection, exactly as an IdentityApi's; its Secret references name Secrets in the
    /// operator's credentials namespace.
    #[serde(flatten)]
    pub connection: IdentityApiSpec,
    /// Which namespaces may use this connection: those named, and those the selector matches.
    /// Required, with no default: `selector: {}` allows every namespace, written explicitly.
    pub allowed_namespaces: AllowedNamespaces,
    /// Only these kinds may use it (e.g. `IdentityBackend`); every managed kind when unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_kinds: Vec<String>,
    /// Only `Observe` resources may use it: nothing is ever written through it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Namespaces allowed to use a ClusterIdentityApi.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Namespaces allowed by their labels; `{}` matches every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Status of a ClusterIdentityApi.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIdentityApiStatus {
    /// `Ready`: whether the operator could authenticate; `Deleting` while users hold it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Namespace → the number of resources naming this connection there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, usize>,
}

impl HasConditions for ClusterIdentityApiStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}
