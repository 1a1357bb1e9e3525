//! AuthenticationSettings: the Xelion server authentication settings of a tenant
//! (`/api/v1/{tenant}/server/authentication`, a singleton per IdentityApi).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus};

/// The authentication settings of a Xelion tenant (one per IdentityApi).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "AuthenticationSettings",
    plural = "authenticationsettings",
    namespaced,
    status = "ManagedStatus",
    shortname = "authsettings",
    category = "identity",
    doc = "The server authentication settings of a Xelion tenant (a singleton per IdentityApi), reconciled with minimal PATCH operation lists.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationSettingsSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub code: Option<String>,
    /// Windows security domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub security_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub domain_server1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub domain_server2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize_domain_time: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub token_retention_days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub minimum_password_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_number_of_false_logins: Option<i64>,
    /// OpenID connections linked to the tenant's authentication. When set, the list is
    /// authoritative: links missing here are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_id_connections: Option<Vec<OpenIdConnection>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenIdConnection {
    /// OID of an existing Xelion OpenID connection object.
    #[schemars(length(min = 1, max = 4000))]
    pub oid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub open_id_id: Option<String>,
    /// Provider, e.g. MICROSOFT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub open_id_provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_sync_on: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4000))]
    pub open_id_group_id: Option<String>,
}
