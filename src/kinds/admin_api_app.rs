//! AdminApiApp: an Entrust IDaaS administration API application
//! (`/api/web/v1/applications/adminapi`).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus};

/// An Entrust IDaaS administration API application; its server-generated shared secret is
/// written to the Secret named by sharedSecretTarget.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "AdminApiApp",
    namespaced,
    status = "ManagedStatus",
    shortname = "adminapp",
    category = "identity",
    doc = "An Entrust IDaaS administration API application, reconciled against the Entrust administration API.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.roleId) != has(self.spRoleId)").message("set exactly one of roleId and spRoleId"))]
#[x_kube(validation = Rule::new("!has(oldSelf.applicationId) || (has(self.applicationId) && self.applicationId == oldSelf.applicationId)").message("applicationId is immutable"))]
#[x_kube(validation = Rule::new("!(has(self.logo) && has(self.logoFrom))").message("set at most one of logo and logoFrom"))]
#[serde(rename_all = "camelCase")]
pub struct AdminApiAppSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Id of an existing application to adopt. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub application_id: Option<String>,
    /// Application name (also the key used to find an existing application).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Allow tokens that do not expire quickly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_long_lived_token: Option<bool>,
    /// Template of the application; only used when creating it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_template_id: Option<String>,
    /// IP list restricting where the application may authenticate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_list_id: Option<String>,
    /// Logo, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    /// Logo taken from a ConfigMap key (base64-encoded text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_from: Option<ConfigMapKeyRef>,
    /// Administrator role of the application (set exactly one of roleId and spRoleId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    /// Service-provider role of the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sp_role_id: Option<String>,
    /// Secret (owned by this resource) that receives the keys `applicationId` and `sharedSecret`.
    pub shared_secret_target: SharedSecretTarget,
    /// Change this value to any new token to regenerate the shared secret once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_shared_secret: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKeyRef {
    /// ConfigMap name in the same namespace.
    pub name: String,
    /// Key in the ConfigMap's data.
    pub key: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SharedSecretTarget {
    /// Name of the Secret to write.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}
