//! The spec and status every managed kind shares: the engine's side of the contract with the
//! kinds (`apiRef`, policies, conditions, `status.externalId` …).

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::conditions::ConditionType;

/// Points at the connection this resource is reconciled against: an IdentityApi in the same
/// namespace, or a ClusterIdentityApi that allows the namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ApiRef {
    /// `IdentityApi` (when unset) or `ClusterIdentityApi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ApiKind>,
    /// Name of the IdentityApi in the resource's namespace, or of the ClusterIdentityApi.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

impl ApiRef {
    pub fn kind(&self) -> ApiKind {
        self.kind.unwrap_or_default()
    }
}

/// The kinds of connection a resource can name.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ApiKind {
    /// A connection in the resource's own namespace.
    #[default]
    IdentityApi,
    /// A cluster-wide connection, fenced by its `allowedNamespaces`.
    ClusterIdentityApi,
}

impl ApiKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKind::IdentityApi => "IdentityApi",
            ApiKind::ClusterIdentityApi => "ClusterIdentityApi",
        }
    }
}

/// A key of a Secret in the resource's namespace.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

impl std::fmt::Display for SecretKeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.name, self.key)
    }
}

/// Whether the operator may write to the identity system.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and delete the remote object so that it matches the spec.
    #[default]
    Apply,
    /// Only read the remote object and report differences in `status.drift`; never write.
    Observe,
}

/// What happens to the remote object when this resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the remote object.
    Delete,
    /// Leave the remote object in place.
    Orphan,
}

/// Fields every managed kind has in its spec.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonSpec {
    /// The IdentityApi (connection) this resource is reconciled against. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("apiRef is immutable"))]
    pub api_ref: ApiRef,
    /// `Apply` (default) makes the remote object match the spec; `Observe` only reports drift.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,
    /// `Delete` or `Orphan`. When unset: `Delete` for objects the operator created, `Orphan` for
    /// objects it adopted (found by id or by name) — it never destroys what it did not make
    /// unless told to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

impl CommonSpec {
    pub fn management_policy(&self) -> ManagementPolicy {
        self.management_policy.unwrap_or_default()
    }
}

/// A status condition in the usual Kubernetes shape.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable CamelCase reason.
    pub reason: String,
    /// Human-readable explanation (never empty: Kubernetes 1.20's server-side apply turns an
    /// empty string into null).
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The condition of `type_` in a status' conditions.
pub fn find_condition(conditions: &[Condition], type_: ConditionType) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == type_.as_str())
}

/// Status of every managed kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedStatus {
    /// `Ready` (the remote object exists and matches the spec) and `Synced` (the last
    /// reconcile succeeded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The remote object's identity (for example a backend id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// True when the operator created the remote object (then the default deletion policy is
    /// Delete); false when it adopted an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    /// When the operator last wrote the remote object (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// `resourceVersion` of every referenced Secret at the time its value was last sent,
    /// keyed `secretName/key`. Never secret material.
    // Atomic: Kubernetes 1.20's server-side apply turned a granular map whose last key the
    // operator let go (a Secret reference taken out of the spec) into `null`, which the schema
    // refuses: the status write failed until the reference came back.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub applied_secret_versions: BTreeMap<String, String>,
    /// Field paths where the remote object differs from the spec (reported under `Observe`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// A short summary of the remote object (for example a connection's name and strategy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub remote: BTreeMap<String, String>,
    /// Set while a terminal error (the identity API rejected the spec) holds for this
    /// generation and these Secret versions; the operator does not retry until they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_attempt: Option<String>,
    /// Spec fields (paths such as `definedSettings.pageSize`) the remote object was made to
    /// match at the last sync. A field taken out of the spec since is cleared remotely where the
    /// API allows it, and otherwise reported in the `FieldsKept` condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_fields: Vec<String>,
}

/// A status with conditions: the managed kinds', and the connections' (IdentityApi,
/// ClusterIdentityApi).
pub trait HasConditions {
    fn conditions(&self) -> &[Condition];

    fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        find_condition(self.conditions(), type_)
    }

    /// Whether the condition is `True`.
    fn is(&self, type_: ConditionType) -> bool {
        self.condition(type_).is_some_and(Condition::is_true)
    }
}

impl HasConditions for ManagedStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}
