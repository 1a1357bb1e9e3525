//! IdentityBackend: a backend of the Boruta admin API (`/api/backends`).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{
    CommonSpec, ManagedStatus, SecretKeyRef, free_form_object, free_form_object_list,
};

/// A Boruta identity backend (internal user store or LDAP), with its SMTP settings and roles.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "IdentityBackend",
    namespaced,
    status = "ManagedStatus",
    shortname = "idb",
    category = "identity",
    doc = "A Boruta identity backend (internal user store or LDAP) reconciled against the Boruta admin API.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"External-ID","type":"string","jsonPath":".status.externalId"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(oldSelf.backendId) || (has(self.backendId) && self.backendId == oldSelf.backendId)").message("backendId is immutable"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'Ldap' || (has(self.ldapHost) && has(self.ldapUserRdnAttribute) && has(self.ldapBaseDn))").message("an Ldap backend needs ldapHost, ldapUserRdnAttribute and ldapBaseDn"))]
#[serde(rename_all = "camelCase")]
pub struct IdentityBackendSpec {
    #[serde(flatten)]
    pub common: CommonSpec,
    /// Id of an existing Boruta backend to adopt. When unset the operator looks for a backend
    /// with the same name and creates one if there is none. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub backend_id: Option<String>,
    /// Display name of the backend (also the key used to find an existing backend).
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// `Internal` (Boruta's own user store) or `Ldap`. Default `Internal`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<BackendType>,
    /// Make this the default backend (setting it demotes the previous default; Boruta refuses
    /// to unset the default flag on the current default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    /// Create a default organisation for new users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_default_organization: Option<bool>,
    /// Roles given to users of this backend. Always sent in full: Boruta clears the roles an
    /// update leaves out.
    #[serde(default)]
    pub roles: Vec<BackendRole>,
    /// Metadata fields of user profiles, passed through as JSON objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_list")]
    pub metadata_fields: Option<Vec<Value>>,
    /// Federated servers, passed through as JSON objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_list")]
    pub federated_servers: Option<Vec<Value>>,
    /// Verifiable credentials, passed through as JSON objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_list")]
    pub verifiable_credentials: Option<Vec<Value>>,
    /// Verifiable presentations, passed through as JSON objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_list")]
    pub verifiable_presentations: Option<Vec<Value>>,
    /// Password hashing algorithm.
    pub password_hashing_alg: PasswordHashingAlg,
    /// Options of the hashing algorithm, passed through as a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub password_hashing_opts: Option<BTreeMap<String, Value>>,
    /// LDAP connection pool size (1..50, Boruta's default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub ldap_pool_size: Option<i64>,
    /// LDAP host (required for Ldap backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_host: Option<String>,
    /// LDAP attribute holding the user RDN, e.g. `uid` (required for Ldap backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_user_rdn_attribute: Option<String>,
    /// LDAP base DN (required for Ldap backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_base_dn: Option<String>,
    /// LDAP organisational unit of users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_ou: Option<String>,
    /// DN of the LDAP bind user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_master_dn: Option<String>,
    /// Secret key holding the LDAP bind password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_master_password_secret_ref: Option<SecretKeyRef>,
    /// Sender address of emails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_from: Option<String>,
    /// SMTP relay host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_relay: Option<String>,
    /// SMTP user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    /// Secret key holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password_secret_ref: Option<SecretKeyRef>,
    /// Use implicit TLS (SMTPS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_ssl: Option<bool>,
    /// STARTTLS policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<SmtpTls>,
    /// SMTP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub smtp_port: Option<i64>,
}

/// Kind of Boruta backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum BackendType {
    /// `Elixir.BorutaIdentity.Accounts.Internal`
    Internal,
    /// `Elixir.BorutaIdentity.Accounts.Ldap`
    Ldap,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PasswordHashingAlg {
    Argon2,
    Bcrypt,
    Pbkdf2,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    Always,
    Never,
    IfAvailable,
}

/// A role linked to the backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct BackendRole {
    /// Role id.
    #[schemars(length(min = 1))]
    pub id: String,
    /// Role name (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
