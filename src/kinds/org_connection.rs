//! OrgConnection: a connection enabled for an Auth0 organization
//! (`/api/v2/organizations/{id}/connections/{connection_id}`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus};

/// An Auth0 connection enabled for an organization, with its per-organization settings.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "OrgConnection",
    namespaced,
    status = "ManagedStatus",
    shortname = "orgconn",
    category = "identity",
    doc = "An Auth0 connection enabled for an organization, reconciled against the Auth0 Management API v2.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OrgConnectionSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Auth0 organization id (`org_...`). Immutable.
    #[schemars(length(min = 1, max = 50))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("organizationId is immutable"))]
    pub organization_id: String,
    /// Auth0 connection id (`con_...`). Immutable.
    #[schemars(length(min = 1, max = 50))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("connectionId is immutable"))]
    pub connection_id: String,
    /// Name of the connection shown for this organization (1..50 characters, no spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50), regex(pattern = r"^\S+$"))]
    pub organization_connection_name: Option<String>,
    /// Give users who log in through this connection membership of the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign_membership_on_login: Option<bool>,
    /// Show a login button for this connection (enterprise connections; Auth0's default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_as_button: Option<bool>,
    /// Allow sign-up through this connection (database connections; Auth0's default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_signup_enabled: Option<bool>,
    /// What members of the organization may do with this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_access_level: Option<OrganizationAccessLevel>,
    /// Whether the connection is enabled for the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrganizationAccessLevel {
    None,
    Readonly,
    Limited,
    Full,
}
