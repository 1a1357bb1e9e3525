//! LdapSettings: the LDAP settings of a VMware Cloud Director organisation
//! (`/cloudapi/v1/orgSettings/ldap`, a singleton per IdentityApi).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CommonSpec, ManagedStatus, SecretKeyRef};

/// The LDAP settings of the organisation an IdentityApi logs in to (one per IdentityApi).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "LdapSettings",
    plural = "ldapsettings",
    namespaced,
    status = "ManagedStatus",
    shortname = "ldaps",
    category = "identity",
    doc = "The LDAP settings of a VMware Cloud Director organisation (a singleton per IdentityApi), reconciled against the cloudapi.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.settingsSource) || self.settingsSource != 'DEFINED' || has(self.definedSettings)").message("settingsSource DEFINED needs definedSettings"))]
#[serde(rename_all = "camelCase")]
pub struct LdapSettingsSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Whether LDAP is enabled for the organisation.
    pub enabled: bool,
    /// `INHERIT_SYSTEM` or `DEFINED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings_source: Option<SettingsSource>,
    /// Custom users OU when inheriting the system settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_custom_users_ou: Option<String>,
    /// The organisation's own LDAP settings (with settingsSource DEFINED).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defined_settings: Option<DefinedLdapSettings>,
    /// On deletion, set `enabled: false` remotely (default: leave the settings as they are).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_on_delete: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum SettingsSource {
    #[serde(rename = "INHERIT_SYSTEM")]
    InheritSystem,
    #[serde(rename = "DEFINED")]
    Defined,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinedLdapSettings {
    /// LDAP server host name.
    #[schemars(length(min = 1))]
    pub host_name: String,
    /// LDAP server port (1..65335, as the cloudapi documents it).
    #[schemars(range(min = 1, max = 65335))]
    pub port: i32,
    /// Use LDAPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paged_search_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub page_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_results: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_user_groups: Option<i32>,
    /// Base DN of searches.
    #[schemars(length(min = 1))]
    pub search_base: String,
    /// Bind user name.
    #[schemars(length(min = 1))]
    pub user_name: String,
    /// Secret key holding the bind password. The API never returns it: it is sent on the first
    /// apply and whenever the Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_search_base: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ui_button_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attributes: Option<LdapUserAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_attributes: Option<LdapGroupAttributes>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapUserAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_membership_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_back_link_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_identifier: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapGroupAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_link_identifier: Option<String>,
}
