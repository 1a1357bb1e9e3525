//! IdentityBackend: a backend of the Boruta admin API (`/api/backends`).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{CommonSpec, ManagedStatus, SecretKeyRef, free_form_object_list};

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
#[x_kube(validation = Rule::new("!has(self.passwordHashingOpts) || (has(self.type) && self.type == 'Ldap') || (has(self.passwordHashingAlg) && self.passwordHashingAlg != 'argon2') || (!has(self.passwordHashingOpts.log_rounds) && !has(self.passwordHashingOpts.legacy) && !has(self.passwordHashingOpts.digest) && !has(self.passwordHashingOpts.length) && (!has(self.passwordHashingOpts.format) || self.passwordHashingOpts.format in ['encoded', 'raw_hash', 'report']))").message("argon2 (the default passwordHashingAlg) takes the passwordHashingOpts salt_len, t_cost, m_cost, parallelism, format (encoded, raw_hash or report), hashlen and argon2_type"))]
#[x_kube(validation = Rule::new("!has(self.passwordHashingOpts) || (has(self.type) && self.type == 'Ldap') || !has(self.passwordHashingAlg) || self.passwordHashingAlg != 'bcrypt' || (!has(self.passwordHashingOpts.salt_len) && !has(self.passwordHashingOpts.t_cost) && !has(self.passwordHashingOpts.m_cost) && !has(self.passwordHashingOpts.parallelism) && !has(self.passwordHashingOpts.format) && !has(self.passwordHashingOpts.hashlen) && !has(self.passwordHashingOpts.argon2_type) && !has(self.passwordHashingOpts.digest) && !has(self.passwordHashingOpts.length))").message("bcrypt takes the passwordHashingOpts log_rounds and legacy"))]
#[x_kube(validation = Rule::new("!has(self.passwordHashingOpts) || (has(self.type) && self.type == 'Ldap') || !has(self.passwordHashingAlg) || self.passwordHashingAlg != 'pbkdf2' || (!has(self.passwordHashingOpts.t_cost) && !has(self.passwordHashingOpts.m_cost) && !has(self.passwordHashingOpts.parallelism) && !has(self.passwordHashingOpts.hashlen) && !has(self.passwordHashingOpts.argon2_type) && !has(self.passwordHashingOpts.log_rounds) && !has(self.passwordHashingOpts.legacy) && (!has(self.passwordHashingOpts.format) || self.passwordHashingOpts.format in ['modular', 'django', 'hex']))").message("pbkdf2 takes the passwordHashingOpts salt_len, format (modular, django or hex), digest and length"))]
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
    /// `Internal` (Boruta's own user store) or `Ldap`. Left out, a new backend is `Internal`
    /// (Boruta's default) and an adopted backend keeps its type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<BackendType>,
    /// Make this the default backend (setting it demotes the previous default; Boruta refuses
    /// to unset the default flag on the current default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    /// Create a default organisation for new users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_default_organization: Option<bool>,
    /// Roles given to users of this backend, by id (a name is only a reminder: Boruta keeps
    /// its own). Always sent in full: Boruta clears the roles an update leaves out. Each role id
    /// may appear once; their order does not matter.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub roles: Vec<BackendRole>,
    /// Metadata fields of user profiles, in Boruta's own keys. Each attribute_name may appear
    /// once; their order does not matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["attribute_name"]))]
    pub metadata_fields: Option<Vec<MetadataField>>,
    /// Federated identity providers users may log in with, in Boruta's own keys, the client
    /// secret from a Secret (clientSecretRef). Each name may appear once; their order does not
    /// matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub federated_servers: Option<Vec<FederatedServer>>,
    /// Verifiable credentials, passed through as JSON objects (identified by their
    /// credential_identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_list")]
    pub verifiable_credentials: Option<Vec<Value>>,
    /// Verifiable presentations, passed through as JSON objects (identified by their
    /// presentation_identifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object_list")]
    pub verifiable_presentations: Option<Vec<Value>>,
    /// Password hashing algorithm. Left out, a new backend uses argon2 (Boruta's default) and
    /// an adopted backend keeps its algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hashing_alg: Option<PasswordHashingAlg>,
    /// Options of the hashing algorithm, in Boruta's keys: argon2 salt_len, t_cost, m_cost,
    /// parallelism, format, hashlen, argon2_type; bcrypt log_rounds, legacy; pbkdf2 salt_len,
    /// format, digest, length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hashing_opts: Option<PasswordHashingOpts>,
    /// LDAP connection pool size (1..50, Boruta's default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub ldap_pool_size: Option<i64>,
    /// LDAP host (required for Ldap backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub ldap_host: Option<String>,
    /// LDAP attribute holding the user RDN, e.g. `uid` (required for Ldap backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub ldap_user_rdn_attribute: Option<String>,
    /// LDAP base DN (required for Ldap backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
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

impl crate::engine::ManagedSpec for IdentityBackendSpec {
    fn common(&self) -> &CommonSpec {
        &self.common
    }
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
    /// Role name: a reminder for readers of the spec, never compared nor sent (Boruta names
    /// its roles itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A metadata field of user profiles, as Boruta's schema describes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct MetadataField {
    /// Name of the attribute in user metadata.
    #[schemars(length(min = 1))]
    pub attribute_name: String,
    /// Whether users may edit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_editable: Option<bool>,
    /// Scopes that expose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Value of new users (any JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub default_value: Option<Value>,
}

/// A federated identity provider, as Boruta's schema describes it, with its client secret taken
/// from a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.client_secret)").message("client_secret does not belong in a spec: put the secret in a Secret and name its key in clientSecretRef"))]
pub struct FederatedServer {
    /// Name of the server (no spaces): the key of its login button and callback.
    #[schemars(length(min = 1), regex(pattern = r"^[^ ]+$"))]
    pub name: String,
    /// OAuth client id at the server.
    pub client_id: String,
    /// Secret key holding the OAuth client secret.
    #[serde(rename = "clientSecretRef")]
    pub client_secret_ref: SecretKeyRef,
    /// Refused: a client secret is never written in a spec (see clientSecretRef). Declared
    /// only so that the API server keeps it for the operator to refuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Base URL of the server.
    pub base_url: String,
    /// OpenID discovery path; Boruta then fills in the authorize, token and userinfo paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_path: Option<String>,
    /// Scopes requested from the server, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_attributes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_endpoints: Option<Vec<MetadataEndpoint>>,
}

/// An endpoint of a federated server whose answer feeds user metadata.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct MetadataEndpoint {
    pub endpoint: String,
    pub claims: String,
}

/// The options of the password hashing algorithm, in Boruta's keys. Which keys an algorithm
/// takes is checked at admission, as Boruta checks it (for Internal backends).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct PasswordHashingOpts {
    /// argon2, pbkdf2: salt length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt_len: Option<i64>,
    /// argon2: time cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_cost: Option<i64>,
    /// argon2: memory cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_cost: Option<i64>,
    /// argon2: parallelism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    /// argon2: encoded, raw_hash or report; pbkdf2: modular, django or hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// argon2: hash length (1..128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 128))]
    pub hashlen: Option<i64>,
    /// argon2: 0 (argon2d), 1 (argon2i) or 2 (argon2id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2))]
    pub argon2_type: Option<i64>,
    /// bcrypt: log rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rounds: Option<i64>,
    /// bcrypt: legacy ($2a$) hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<bool>,
    /// pbkdf2: digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Pbkdf2Digest>,
    /// pbkdf2: derived key length (1..64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub length: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pbkdf2Digest {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// Schema for any JSON value.
fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-preserve-unknown-fields": true})
}

// ---------------------------------------------------------------------------------------------
// Boruta admin API wire format and adapter
// ---------------------------------------------------------------------------------------------

use reqwest::Method;
use serde_json::{Map, json};

use super::collection::Collection;
use super::common::{
    Blank, Clear, Removable, kept_fields, record_applied, removals, removed_drift, removed_fields,
    stated_fields,
};
use crate::engine::diff::{Shape, camel_case, shaped_diff};
use crate::engine::export::{Draft, Listed};
use crate::engine::finalizer::creation_recorded;
use crate::engine::preview::{WriteOnly, write_only_fields};
use crate::engine::secrets::SecretValues;
use crate::engine::{Adapter, Context, Error, Observed};
use crate::identity::lists::Items;
use crate::identity::{IdentityClient, SecretString, path_segment};
use crate::kinds::identity_api::Provider;

/// A backend as the Boruta admin API names it (`{"backend": …}` in, `{"data": …}` out).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Backend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_default_organization: Option<bool>,
    /// Always sent: Boruta clears the roles an update leaves out.
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_fields: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_servers: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifiable_credentials: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifiable_presentations: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hashing_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hashing_opts: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_pool_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_user_rdn_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_base_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_ou: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_master_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap_master_password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_relay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<i64>,
    /// Computed by Boruta; never sent.
    #[serde(default, skip_serializing)]
    pub features: Option<Vec<Value>>,
    /// In a desired backend: the fields taken out of the spec since the last sync.
    #[serde(skip)]
    pub removed: Vec<&'static Removable>,
}

/// A role link. Only the id is sent: the name and `scopes` are Boruta's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Role {
    pub id: String,
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    #[serde(default, skip_serializing)]
    pub scopes: Option<Value>,
}

const INTERNAL: &str = "Elixir.BorutaIdentity.Accounts.Internal";
const LDAP: &str = "Elixir.BorutaIdentity.Accounts.Ldap";

/// Write-only fields: Boruta returns them, but the operator compares Secret versions instead
/// of values, so no password is ever held longer than one write.
const WRITE_ONLY: &[&str] = &["ldap_master_password", "smtp_password"];

/// The federated servers' key that holds a secret (Boruta returns it in plain text).
const CLIENT_SECRET: &str = "client_secret";

/// How Boruta answers its lists and free-form columns. Roles are links in a join table,
/// answered without an ORDER BY; metadata fields, federated servers and verifiable credentials
/// and presentations are looked up by their identifier (a field by attribute_name, a login by
/// server name), their order only that of a form or of login buttons: all are compared by key,
/// in any order. The JSON columns are stored as sent, so a key the spec no longer has differs.
const SHAPE: Shape = Shape {
    keyed: &[
        ("roles", "id"),
        ("metadata_fields", "attribute_name"),
        ("federated_servers", "name"),
        ("federated_servers[].metadata_endpoints", "endpoint"),
        ("verifiable_credentials", "credential_identifier"),
        ("verifiable_presentations", "presentation_identifier"),
    ],
    exact: &[
        "metadata_fields[]",
        "federated_servers[]",
        "verifiable_credentials[]",
        "verifiable_presentations[]",
        "password_hashing_opts",
    ],
};

/// What taking a field out of the spec does to the backend (docs/vendor-choices.md): Boruta's
/// changeset casts a `null` (or the schema's default) like any value, except for the type, which
/// is never converted implicitly, and the default flag, which Boruta refuses to unset.
const REMOVABLE: &[Removable] = &[
    Removable::same(
        "type",
        Clear::Keep {
            why: "Boruta has no type to fall back to: the backend keeps its type until the spec states one",
            observable: false,
        },
    ),
    Removable::new(
        "isDefault",
        "is_default",
        Clear::Keep {
            why: "Boruta keeps one default backend: make another backend the default",
            observable: true,
        },
    ),
    Removable::new(
        "createDefaultOrganization",
        "create_default_organization",
        Clear::To(Blank::Bool(false)),
    ),
    Removable::new("metadataFields", "metadata_fields", Clear::To(Blank::List)),
    Removable::new(
        "federatedServers",
        "federated_servers",
        Clear::To(Blank::List),
    ),
    Removable::new(
        "verifiableCredentials",
        "verifiable_credentials",
        Clear::To(Blank::List),
    ),
    Removable::new(
        "verifiablePresentations",
        "verifiable_presentations",
        Clear::To(Blank::List),
    ),
    Removable::new(
        "passwordHashingAlg",
        "password_hashing_alg",
        Clear::To(Blank::Str("argon2")),
    ),
    Removable::new(
        "passwordHashingOpts",
        "password_hashing_opts",
        Clear::To(Blank::Object),
    ),
    Removable::new("ldapPoolSize", "ldap_pool_size", Clear::To(Blank::Int(5))),
    Removable::new("ldapHost", "ldap_host", Clear::To(Blank::Null)),
    Removable::new(
        "ldapUserRdnAttribute",
        "ldap_user_rdn_attribute",
        Clear::To(Blank::Null),
    ),
    Removable::new("ldapBaseDn", "ldap_base_dn", Clear::To(Blank::Null)),
    Removable::new("ldapOu", "ldap_ou", Clear::To(Blank::Null)),
    Removable::new("ldapMasterDn", "ldap_master_dn", Clear::To(Blank::Null)),
    Removable::new(
        "ldapMasterPasswordSecretRef",
        "ldap_master_password",
        Clear::Blind(Blank::Null),
    ),
    Removable::new("smtpFrom", "smtp_from", Clear::To(Blank::Null)),
    Removable::new("smtpRelay", "smtp_relay", Clear::To(Blank::Null)),
    Removable::new("smtpUsername", "smtp_username", Clear::To(Blank::Null)),
    Removable::new(
        "smtpPasswordSecretRef",
        "smtp_password",
        Clear::Blind(Blank::Null),
    ),
    Removable::new("smtpSsl", "smtp_ssl", Clear::To(Blank::Null)),
    Removable::new("smtpTls", "smtp_tls", Clear::To(Blank::Null)),
    Removable::new("smtpPort", "smtp_port", Clear::To(Blank::Null)),
];

fn secret(values: Option<&SecretValues>, r: &SecretKeyRef) -> Result<Option<SecretString>, Error> {
    values.map(|values| values.require(r)).transpose()
}

/// A list of the spec's typed objects as the JSON objects Boruta stores.
fn json_list<T: Serialize>(items: &Option<Vec<T>>) -> Option<Vec<Value>> {
    items.as_ref().map(|items| {
        items
            .iter()
            .map(|i| serde_json::to_value(i).expect("serializable"))
            .collect()
    })
}

impl FederatedServer {
    /// The server as Boruta stores it, with the client secret when `values` are given.
    fn to_wire(&self, values: Option<&SecretValues>) -> Result<Value, Error> {
        let mut wire = serde_json::to_value(self).expect("serializable");
        let object = wire.as_object_mut().expect("an object");
        object.remove("clientSecretRef");
        if let Some(secret) = secret(values, &self.client_secret_ref)? {
            object.insert(CLIENT_SECRET.into(), Value::from(secret.expose()));
        }
        Ok(wire)
    }
}

impl IdentityBackendSpec {
    /// A client secret written in the spec is refused, by name only: its value goes nowhere.
    fn refuse_plain_secrets(&self) -> Result<(), Error> {
        let servers = self.federated_servers.as_deref().unwrap_or_default();
        match servers.iter().find(|s| s.client_secret.is_some()) {
            Some(server) => Err(Error::InvalidSpec(format!(
                "federatedServers[{}].client_secret: a client secret does not belong in a spec; \
                 put it in a Secret and name its key in clientSecretRef",
                server.name
            ))),
            None => Ok(()),
        }
    }

    /// Every Secret key the spec names.
    fn secret_refs(&self) -> Vec<SecretKeyRef> {
        let servers = self.federated_servers.as_deref().unwrap_or_default();
        [
            &self.ldap_master_password_secret_ref,
            &self.smtp_password_secret_ref,
        ]
        .into_iter()
        .flatten()
        .chain(servers.iter().map(|s| &s.client_secret_ref))
        .cloned()
        .collect()
    }

    /// The removable fields this spec sets.
    fn stated(&self) -> Vec<String> {
        let spec = serde_json::to_value(self).expect("serializable");
        let paths: Vec<&str> = REMOVABLE.iter().map(|r| r.spec).collect();
        stated_fields(&spec, &paths)
    }

    fn to_backend(
        &self,
        secrets: Option<&SecretValues>,
        removed: Vec<&'static Removable>,
    ) -> Result<Backend, Error> {
        self.refuse_plain_secrets()?;
        let password = |r: &Option<SecretKeyRef>| match r {
            Some(r) => secret(secrets, r),
            None => Ok(None),
        };
        let federated_servers = match &self.federated_servers {
            Some(servers) => Some(
                servers
                    .iter()
                    .map(|s| s.to_wire(secrets))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let password_hashing_opts = self.password_hashing_opts.as_ref().map(|opts| {
            serde_json::from_value(serde_json::to_value(opts).expect("serializable"))
                .expect("options are an object")
        });
        Ok(Backend {
            id: None,
            name: Some(self.name.clone()),
            // Left out, Boruta makes a new backend Internal and keeps an adopted one's type.
            type_: self.type_.map(|t| {
                match t {
                    BackendType::Internal => INTERNAL,
                    BackendType::Ldap => LDAP,
                }
                .to_owned()
            }),
            is_default: self.is_default,
            create_default_organization: self.create_default_organization,
            roles: self
                .roles
                .iter()
                .map(|r| Role {
                    id: r.id.clone(),
                    ..Role::default()
                })
                .collect(),
            metadata_fields: json_list(&self.metadata_fields),
            federated_servers,
            verifiable_credentials: self.verifiable_credentials.clone(),
            verifiable_presentations: self.verifiable_presentations.clone(),
            password_hashing_alg: self.password_hashing_alg.map(|a| {
                match a {
                    PasswordHashingAlg::Argon2 => "argon2",
                    PasswordHashingAlg::Bcrypt => "bcrypt",
                    PasswordHashingAlg::Pbkdf2 => "pbkdf2",
                }
                .to_owned()
            }),
            password_hashing_opts,
            ldap_pool_size: self.ldap_pool_size,
            ldap_host: self.ldap_host.clone(),
            ldap_user_rdn_attribute: self.ldap_user_rdn_attribute.clone(),
            ldap_base_dn: self.ldap_base_dn.clone(),
            ldap_ou: self.ldap_ou.clone(),
            ldap_master_dn: self.ldap_master_dn.clone(),
            ldap_master_password: password(&self.ldap_master_password_secret_ref)?,
            smtp_from: self.smtp_from.clone(),
            smtp_relay: self.smtp_relay.clone(),
            smtp_username: self.smtp_username.clone(),
            smtp_password: password(&self.smtp_password_secret_ref)?,
            smtp_ssl: self.smtp_ssl,
            smtp_tls: self.smtp_tls.map(|t| {
                match t {
                    SmtpTls::Always => "always",
                    SmtpTls::Never => "never",
                    SmtpTls::IfAvailable => "if_available",
                }
                .to_owned()
            }),
            smtp_port: self.smtp_port,
            features: None,
            removed,
        })
    }
}

impl serde::Serialize for SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretString::new)
    }
}

impl Backend {
    /// The body of a create or update: `{"backend": …}` (Boruta answers 400 without the
    /// wrapper), with the blank of every removed field Boruta can clear.
    fn body(&self) -> Value {
        let mut backend = serde_json::to_value(self).expect("serializable");
        let fields = backend.as_object_mut().expect("an object");
        for removed in &self.removed {
            if let Clear::To(blank) | Clear::Blind(blank) = removed.clear {
                fields.insert(removed.wire.to_owned(), blank.value());
            }
        }
        json!({ "backend": backend })
    }

    /// The backend as compared: no password, no federated client secret (their Secret versions
    /// are compared instead), no role names.
    fn compared(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("serializable");
        let fields = value.as_object_mut().expect("an object");
        for key in WRITE_ONLY {
            fields.remove(*key);
        }
        forget_client_secrets(fields);
        value
    }

    fn forget_passwords(&mut self) {
        self.ldap_master_password = None;
        self.smtp_password = None;
        for server in self.federated_servers.iter_mut().flatten() {
            if let Some(server) = server.as_object_mut() {
                server.remove(CLIENT_SECRET);
            }
        }
    }
}

fn forget_client_secrets(fields: &mut Map<String, Value>) {
    let servers = fields
        .get_mut("federated_servers")
        .and_then(Value::as_array_mut);
    for server in servers.into_iter().flatten() {
        if let Some(server) = server.as_object_mut() {
            server.remove(CLIENT_SECRET);
        }
    }
}

/// Boruta writes the endpoints it discovers into a federated server with a discovery_path:
/// they are its own, unless the spec states them.
fn forget_discovered(desired: &Value, observed: &mut Value) {
    const DISCOVERED: [&str; 3] = ["authorize_path", "token_path", "userinfo_path"];
    let wanted = desired["federated_servers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let servers = observed
        .get_mut("federated_servers")
        .and_then(Value::as_array_mut);
    for server in servers.into_iter().flatten() {
        let stated = wanted.iter().find(|w| w["name"] == server["name"]);
        let Some(stated) = stated.filter(|s| s.get("discovery_path").is_some()) else {
            continue;
        };
        if let Some(fields) = server.as_object_mut() {
            fields.retain(|k, _| !DISCOVERED.contains(&k.as_str()) || stated.get(k).is_some());
        }
    }
}

/// `password_hashing_opts.m_cost` → `spec.passwordHashingOpts.m_cost`: the spec names Boruta's
/// fields in camelCase and keeps Boruta's own keys inside them.
fn spec_path(wire: &str) -> String {
    let split = wire.find(['.', '[']).unwrap_or(wire.len());
    format!("spec.{}{}", camel_case(&wire[..split]), &wire[split..])
}

/// Reconciles IdentityBackends against the Boruta admin API.
pub struct Boruta;

const BACKENDS: &str = "api/backends";

/// Every backend, without the passwords Boruta returns in plain text: they are never compared,
/// so they are not kept.
async fn list_backends(api: &IdentityClient) -> Result<Items<Backend>, crate::identity::ApiError> {
    /// `{"data": [...]}`, decoded as the answer arrives.
    #[derive(Deserialize)]
    struct Data {
        data: Items<Backend>,
    }
    Ok(api.get_decoded::<Data>(BACKENDS).await?.data)
}

impl crate::identity::lists::Item for Backend {
    fn forget(object: &mut Map<String, Value>) {
        object.retain(|k, _| !WRITE_ONLY.contains(&k.as_str()));
        forget_client_secrets(object);
    }

    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    fn key(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// The backends of a Boruta instance.
fn backends(api: &IdentityClient) -> Collection<'_, Backend> {
    Collection::new(api, BACKENDS, "Boruta backends", "backendId")
}

/// Overlays a backend the operator just wrote on the shared list snapshot.
fn remember(api: &IdentityClient, written: &Observed<Backend>) {
    let mut backend = written.remote.clone();
    backend.forget_passwords();
    backends(api).remember(&written.id, backend);
}

fn decode_data<T: serde::de::DeserializeOwned>(body: Value, path: &str) -> Result<T, Error> {
    let data = match body {
        Value::Object(mut map) if map.contains_key("data") => {
            map.remove("data").unwrap_or_default()
        }
        other => other,
    };
    // The message never quotes a value: a backend holds its passwords in plain text.
    serde_json::from_value(data)
        .map_err(|e| Error::Api(crate::identity::ApiError::decode(path, &e)))
}

fn observed(backend: Backend) -> Result<Observed<Backend>, Error> {
    let id = backend.id.clone().ok_or_else(|| {
        Error::Api(crate::identity::ApiError::Decode {
            path: "api/backends".into(),
            message: "backend without id".into(),
        })
    })?;
    Ok(Observed {
        id,
        remote: backend,
    })
}

/// What `plan` knows of the passwords Boruta returns: a digest of each, keyed for this process
/// only, so the Secret's value can be compared with the remote one without either being
/// kept (or ever printed).
#[derive(Deserialize, Clone)]
struct PasswordDigests {
    id: Option<String>,
    name: Option<String>,
    ldap_master_password: Option<u64>,
    smtp_password: Option<u64>,
}

impl crate::identity::lists::Item for PasswordDigests {
    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    fn key(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// The list snapshot of the digests; one list call serves every backend `plan` looks at.
const PASSWORD_DIGESTS: &str = "api/backends (password digests)";

fn digest(password: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new)
        .hash_one(password)
}

async fn list_password_digests(
    api: &IdentityClient,
) -> Result<Items<PasswordDigests>, crate::identity::ApiError> {
    #[derive(Deserialize)]
    struct Data {
        data: Vec<Value>,
    }
    let resp = api.call(Method::GET, BACKENDS, None).await?;
    let mut backends = resp.decode::<Data>(BACKENDS)?.data;
    for backend in &mut backends {
        for field in WRITE_ONLY {
            if let Some(password) = backend.get(*field).and_then(Value::as_str) {
                backend[*field] = digest(password).into();
            }
        }
    }
    serde_json::from_value(Value::Array(backends)).map_err(|e| crate::identity::ApiError::Decode {
        path: BACKENDS.into(),
        message: e.to_string(),
    })
}

/// The id the operator gives the backend it creates for `res`: the resource's uid (a UUID,
/// as Boruta's ids are).
fn own_id(res: &IdentityBackend) -> Option<&str> {
    res.metadata.uid.as_deref()
}

/// Boruta's answer to a create whose id it already has.
fn is_taken_id(e: &crate::identity::ApiError) -> bool {
    e.status() == Some(422) && e.to_string().contains("id: has already been taken")
}

/// One backend by id, read directly (not from a list): `None` when Boruta says it has none.
async fn read_backend(api: &IdentityClient, id: &str) -> Result<Option<Observed<Backend>>, Error> {
    let path = format!("{BACKENDS}/{}", path_segment(id));
    match api.call(Method::GET, &path, None).await {
        Ok(resp) => {
            let mut found: Backend = decode_data(resp.body(), &path)?;
            found.forget_passwords();
            observed(found).map(Some)
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn removed(res: &IdentityBackend) -> Vec<&'static Removable> {
    let stated = res.spec.stated();
    removals(REMOVABLE, &removed_fields(res.status.as_ref(), &stated))
}

/// A Secret key named after a federated server (Secret keys allow `[-._a-zA-Z0-9]`).
fn secret_key(server: &str, suffix: &str) -> String {
    let name: String = server
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{name}-{suffix}")
}

/// For `export`: the spec that manages `backend` as it is. `raw` is the backend as Boruta
/// answered it, read only for whether a password is set (never copied).
fn draft(raw: &Value, backend: &Observed<Backend>) -> Result<Draft, String> {
    let remote = &backend.remote;
    let name = remote.name.clone().unwrap_or_default();
    let mut wire = serde_json::to_value(remote).expect("serializable");
    let fields = wire.as_object_mut().expect("an object");
    fields.remove("id");
    fields.retain(|_, v| !v.is_null());
    let type_ = match remote.type_.as_deref() {
        Some(INTERNAL) => "Internal",
        Some(LDAP) => "Ldap",
        Some(other) => return Err(format!("its type {other:?} is neither Internal nor Ldap")),
        None => return Err("it has no type".into()),
    };
    fields.insert("type".into(), type_.into());
    let roles: Vec<Value> = remote
        .roles
        .iter()
        .map(|r| match &r.name {
            Some(name) => json!({"id": r.id, "name": name}),
            None => json!({"id": r.id}),
        })
        .collect();
    fields.insert("roles".into(), roles.into());
    let mut spec = crate::engine::export::camel_keys(wire);
    spec["backendId"] = backend.id.clone().into();
    let observed = serde_json::to_value(remote).expect("serializable");
    crate::engine::removal::leave_out_defaults(&mut spec, REMOVABLE, &observed);
    if spec["roles"].as_array().is_some_and(Vec::is_empty) {
        spec.as_object_mut().expect("an object").remove("roles");
    }
    let label = format!("Boruta backend {name:?} (id {}, {type_})", backend.id);
    let mut draft = Draft::new(name, label, spec);
    let set = |field: &str| raw[field].as_str().is_some_and(|v| !v.is_empty());
    if set("ldap_master_password") {
        draft = draft.write_only(
            "/ldapMasterPasswordSecretRef",
            "ldapMasterPassword",
            "the LDAP bind password (ldap_master_password)",
        );
    }
    if set("smtp_password") {
        draft = draft.write_only(
            "/smtpPasswordSecretRef",
            "smtpPassword",
            "the SMTP password (smtp_password)",
        );
    }
    let servers = remote.federated_servers.iter().flatten().enumerate();
    for (i, server) in servers {
        let server = server["name"].as_str().unwrap_or_default();
        draft = draft.write_only(
            format!("/federatedServers/{i}/clientSecretRef"),
            &secret_key(server, "clientSecret"),
            &format!("the client secret of federated server {server:?}"),
        );
    }
    Ok(draft)
}

impl Adapter for Boruta {
    type Resource = IdentityBackend;
    type Remote = Backend;
    const PROVIDER: Provider = Provider::Boruta;
    const CREATES: bool = true;

    fn secret_refs(res: &IdentityBackend) -> Vec<SecretKeyRef> {
        res.spec.secret_refs()
    }

    fn spec_id(res: &IdentityBackend) -> Option<String> {
        res.spec.backend_id.clone()
    }

    fn desired(res: &IdentityBackend, secrets: Option<&SecretValues>) -> Result<Backend, Error> {
        res.spec.to_backend(secrets, removed(res))
    }

    fn diff(desired: &Backend, observed: &Backend) -> Vec<String> {
        let d = desired.compared();
        let mut o = observed.compared();
        forget_discovered(&d, &mut o);
        let mut drift: Vec<String> = shaped_diff(&d, &o, &SHAPE)
            .iter()
            .map(|p| spec_path(p))
            .collect();
        let observed = serde_json::to_value(observed).expect("serializable");
        drift.extend(removed_drift(&desired.removed, &observed));
        drift
    }

    async fn find(
        api: &IdentityClient,
        res: &IdentityBackend,
        id: Option<&str>,
    ) -> Result<Option<Observed<Backend>>, Error> {
        let backends = backends(api);
        if let Some(id) = id {
            // A lone change reads its one backend; lookups that come together share a list.
            if let Some(_alone) = backends.alone() {
                return read_backend(api, id).await;
            }
            let listed = backends.listed(|| list_backends(api)).await?;
            return match listed.get(id) {
                Some(found) => observed(found).map(Some),
                None => read_backend(api, id).await,
            };
        }
        let listed = backends.listed(|| list_backends(api)).await?;
        // An earlier create may have made it, with the id the operator chose for it (and
        // whatever a list shows so far).
        if let Some(own) = own_id(res).filter(|_| creation_recorded(res)) {
            let found = match listed.get(own) {
                Some(found) => Some(observed(found)?),
                None => read_backend(api, own).await?,
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        // No id yet: find the backend by name, so a crash between create and the status write
        // never creates a second one.
        let named = backends.only_named(&listed, &res.spec.name)?;
        named.map(observed).transpose()
    }

    async fn create(
        api: &IdentityClient,
        res: &IdentityBackend,
        desired: &Backend,
    ) -> Result<Observed<Backend>, Error> {
        let mut backend = desired.clone();
        // Boruta takes the id of a new backend from the request and refuses one it already
        // has (422 "has already been taken"): the resource's uid makes the create idempotent,
        // so a create repeated after a lost answer can never make a second backend.
        backend.id = own_id(res).map(str::to_owned);
        let body = backend.body();
        let resp = match api.call(Method::POST, BACKENDS, Some(&body)).await {
            Err(e) if is_taken_id(&e) => {
                return Err(Error::AlreadyExists(format!(
                    "Boruta already has a backend with id {:?}",
                    backend.id.unwrap_or_default()
                )));
            }
            other => other?,
        };
        let created = if resp.body().get("data").is_some() {
            observed(decode_data(resp.body(), BACKENDS)?)?
        } else {
            // Only a location header: read the new backend from it.
            let location = resp
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.rsplit('/').next())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::Api(crate::identity::ApiError::Decode {
                        path: BACKENDS.into(),
                        message: "201 without body or location".into(),
                    })
                })?;
            let path = format!("{BACKENDS}/{location}");
            let resp = api.call(Method::GET, &path, None).await?;
            observed(decode_data(resp.body(), &path)?)?
        };
        remember(api, &created);
        Ok(created)
    }

    async fn update(
        api: &IdentityClient,
        _res: &IdentityBackend,
        id: &str,
        desired: &Backend,
        _observed: &Backend,
        _secrets_changed: bool,
    ) -> Result<Observed<Backend>, Error> {
        let path = format!("{BACKENDS}/{id}");
        let resp = api.call(Method::PUT, &path, Some(&desired.body())).await?;
        let updated = observed(decode_data(resp.body(), &path)?)?;
        remember(api, &updated);
        Ok(updated)
    }

    async fn delete(api: &IdentityClient, _res: &IdentityBackend, id: &str) -> Result<(), Error> {
        backends(api)
            .delete(&format!("{BACKENDS}/{id}"), id)
            .await?;
        Ok(())
    }

    async fn export(api: &IdentityClient) -> Result<Vec<Listed<Backend>>, Error> {
        #[derive(Deserialize)]
        struct Data {
            data: Vec<Value>,
        }
        let resp = api.call(Method::GET, BACKENDS, None).await?;
        let answered = resp.decode::<Data>(BACKENDS)?.data;
        let mut listed = Vec::with_capacity(answered.len());
        for raw in answered {
            let mut backend: Backend = decode_data(raw.clone(), BACKENDS)?;
            backend.forget_passwords();
            let backend = observed(backend)?;
            listed.push(Listed {
                draft: draft(&raw, &backend),
                observed: backend,
            });
        }
        Ok(listed)
    }

    /// Boruta returns the passwords: `plan` says whether they differ from the Secrets'.
    async fn write_only(
        api: &IdentityClient,
        res: &IdentityBackend,
        observed: Option<&Observed<Backend>>,
        values: &SecretValues,
    ) -> Result<Vec<WriteOnly>, Error> {
        let mut fields = write_only_fields(res, Self::secret_refs(res));
        let Some(observed) = observed else {
            return Ok(fields);
        };
        let listed = api
            .lists()
            .get(PASSWORD_DIGESTS, || list_password_digests(api))
            .await?;
        // Written after the snapshot (never by `plan`): unknown.
        let Some(remote) = listed.get(&observed.id) else {
            return Ok(fields);
        };
        for field in &mut fields {
            let theirs = if Some(&field.secret) == res.spec.ldap_master_password_secret_ref.as_ref()
            {
                remote.ldap_master_password
            } else {
                remote.smtp_password
            };
            let ours = values.get(&field.secret).map(|v| digest(v.expose()));
            field.differs = Some(ours != theirs);
        }
        Ok(fields)
    }

    fn summary(observed: &Backend) -> BTreeMap<String, String> {
        let mut s = BTreeMap::new();
        if let Some(n) = &observed.name {
            s.insert("name".into(), n.clone());
        }
        if let Some(t) = &observed.type_ {
            s.insert("type".into(), t.rsplit('.').next().unwrap_or(t).to_owned());
        }
        if let Some(d) = observed.is_default {
            s.insert("isDefault".into(), d.to_string());
        }
        s
    }

    async fn finish(
        _ctx: &Context,
        _api: &IdentityClient,
        res: &IdentityBackend,
        backend: &Observed<Backend>,
        _fresh: bool,
        status: &mut ManagedStatus,
    ) -> Result<(), Error> {
        let observed = serde_json::to_value(&backend.remote).expect("serializable");
        let kept = kept_fields(&removed(res), &observed);
        record_applied(status, res.spec.stated(), &kept, res.metadata.generation);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::lists::Item;

    const ROLE_A: &str = "0a000000-0000-4000-8000-000000000001";
    const ROLE_B: &str = "0b000000-0000-4000-8000-000000000002";

    fn resource(spec: Value) -> IdentityBackend {
        let mut all = json!({"apiRef": {"name": "boruta"}, "name": "corp"});
        for (k, v) in spec.as_object().unwrap() {
            all[k] = v.clone();
        }
        IdentityBackend::new("corp", serde_json::from_value(all).unwrap())
    }

    fn applied(mut res: IdentityBackend, fields: &[&str]) -> IdentityBackend {
        res.status = Some(ManagedStatus {
            applied_fields: fields.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        });
        res
    }

    fn backend(answer: Value) -> Backend {
        serde_json::from_value(answer).unwrap()
    }

    fn secrets(pairs: &[(&str, &str, &str)]) -> SecretValues {
        let mut values = SecretValues::default();
        for (name, key, value) in pairs {
            let r = SecretKeyRef {
                name: name.to_string(),
                key: key.to_string(),
            };
            values.insert(r, SecretString::new(*value));
        }
        values
    }

    fn server(name: &str, extra: Value) -> Value {
        let mut s = json!({"name": name, "client_id": format!("{name}-client"),
            "clientSecretRef": {"name": "idp", "key": name}, "base_url": format!("https://{name}.example")});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        s
    }

    #[test]
    fn roles_are_a_set_of_ids_whatever_their_names_and_order() {
        let res = resource(json!({"roles": [{"id": ROLE_A, "name": "Admin"}, {"id": ROLE_B}]}));
        let desired = Boruta::desired(&res, None).unwrap();
        // Boruta's own names, in its own order, with computed scopes.
        let observed = backend(json!({"name": "corp", "roles": [
            {"id": ROLE_B, "name": "viewer", "scopes": []},
            {"id": ROLE_A, "name": "admin", "scopes": [{"id": "s", "name": "users:manage:all"}]},
        ]}));
        assert!(Boruta::diff(&desired, &observed).is_empty());
        let missing = backend(
            json!({"name": "corp", "roles": [{"id": ROLE_B}, {"id": "0c000000-0000-4000-8000-000000000003"}]}),
        );
        assert_eq!(
            Boruta::diff(&desired, &missing),
            vec![
                format!("spec.roles[{ROLE_A}]"),
                "spec.roles[0c000000-0000-4000-8000-000000000003]".to_owned()
            ]
        );
        // Sent as ids only: the names are Boruta's.
        assert_eq!(
            desired.body()["backend"]["roles"],
            json!([{"id": ROLE_A}, {"id": ROLE_B}])
        );
    }

    #[test]
    fn metadata_fields_and_federated_servers_match_by_key_in_any_order() {
        let res = resource(json!({
            "metadataFields": [{"attribute_name": "dept"}, {"attribute_name": "site", "user_editable": true}],
            "federatedServers": [
                server("google", json!({})),
                server("github", json!({"scope": "user", "metadata_endpoints": [
                    {"endpoint": "/user", "claims": "login"}, {"endpoint": "/emails", "claims": "email"},
                ]})),
            ],
            "verifiableCredentials": [{"credential_identifier": "a", "version": "1"}, {"credential_identifier": "b"}],
            "verifiablePresentations": [{"presentation_identifier": "p1"}, {"presentation_identifier": "p2"}],
        }));
        let desired = Boruta::desired(&res, None).unwrap();
        let remote = |github_scope: &str, extra_field: Value| {
            backend(json!({"name": "corp", "roles": [],
                "metadata_fields": [{"attribute_name": "site", "user_editable": true}, extra_field],
                "federated_servers": [
                    {"name": "github", "client_id": "github-client", "client_secret": "s1",
                     "base_url": "https://github.example", "scope": github_scope,
                     "metadata_endpoints": [
                         {"endpoint": "/emails", "claims": "email"}, {"endpoint": "/user", "claims": "login"},
                     ]},
                    {"name": "google", "client_id": "google-client", "client_secret": "s2",
                     "base_url": "https://google.example"},
                ],
                "verifiable_credentials": [{"credential_identifier": "b"}, {"credential_identifier": "a", "version": "1"}],
                "verifiable_presentations": [{"presentation_identifier": "p2"}, {"presentation_identifier": "p1"}],
            }))
        };
        assert!(
            Boruta::diff(&desired, &remote("user", json!({"attribute_name": "dept"}))).is_empty()
        );
        assert_eq!(
            Boruta::diff(
                &desired,
                &remote(
                    "repo",
                    json!({"attribute_name": "dept", "user_editable": false})
                )
            ),
            vec![
                "spec.federatedServers[github].scope",
                "spec.metadataFields[dept].user_editable",
            ]
        );
    }

    #[test]
    fn endpoints_boruta_discovers_are_its_own_unless_the_spec_states_them() {
        let res = resource(json!({"federatedServers": [
            server("google", json!({"discovery_path": "/.well-known/openid-configuration"})),
            server("plain", json!({})),
        ]}));
        let desired = Boruta::desired(&res, None).unwrap();
        let discovered = json!({"authorize_path": "https://g/auth", "token_path": "https://g/token",
            "userinfo_path": "https://g/userinfo"});
        let mut google = server(
            "google",
            json!({"discovery_path": "/.well-known/openid-configuration"}),
        );
        let mut plain = server("plain", json!({}));
        for s in [&mut google, &mut plain] {
            s.as_object_mut().unwrap().remove("clientSecretRef");
        }
        for (k, v) in discovered.as_object().unwrap() {
            google[k] = v.clone();
        }
        let observed = backend(
            json!({"name": "corp", "roles": [], "federated_servers": [google, plain.clone()]}),
        );
        assert!(Boruta::diff(&desired, &observed).is_empty());
        // Without a discovery path they are the user's: one set by hand is drift.
        plain["token_path"] = json!("/token");
        let observed = backend(json!({"name": "corp", "roles": [], "federated_servers": [plain]}));
        assert!(
            Boruta::diff(&desired, &observed)
                .contains(&"spec.federatedServers[plain].token_path".to_owned())
        );
    }

    #[test]
    fn federated_client_secrets_come_from_secrets_and_never_from_the_spec() {
        let res = resource(json!({"federatedServers": [server("google", json!({}))]}));
        assert_eq!(
            Boruta::secret_refs(&res),
            vec![SecretKeyRef {
                name: "idp".into(),
                key: "google".into()
            }]
        );
        let values = secrets(&[("idp", "google", "fed-secret")]);
        let body = Boruta::desired(&res, Some(&values)).unwrap().body();
        let sent = &body["backend"]["federated_servers"][0];
        assert_eq!(sent["client_secret"], "fed-secret");
        assert!(sent.get("clientSecretRef").is_none());
        // Never compared: its Secret's version is.
        let view = Boruta::desired(&res, None).unwrap();
        let observed = backend(json!({"name": "corp", "roles": [], "federated_servers": [
            {"name": "google", "client_id": "google-client", "client_secret": "rotated elsewhere",
             "base_url": "https://google.example"}]}));
        assert!(Boruta::diff(&view, &observed).is_empty());
        // A missing key is named.
        let err = Boruta::desired(&res, Some(&SecretValues::default())).unwrap_err();
        assert_eq!(err.reason().as_str(), "SecretKeyNotFound");

        let plain = resource(
            json!({"federatedServers": [server("google", json!({"client_secret": "in-the-spec"}))]}),
        );
        let err = Boruta::desired(&plain, None).unwrap_err();
        assert!(err.is_terminal());
        let message = err.to_string();
        assert!(
            message.contains("federatedServers[google].client_secret")
                && message.contains("clientSecretRef"),
            "{message}"
        );
        assert!(!message.contains("in-the-spec"));
    }

    #[test]
    fn listed_backends_keep_no_secret() {
        let mut object = json!({"id": "b", "ldap_master_password": "p1", "smtp_password": "p2",
            "federated_servers": [{"name": "g", "client_secret": "p3"}]})
        .as_object()
        .cloned()
        .unwrap();
        <Backend as Item>::forget(&mut object);
        let kept = Value::Object(object).to_string();
        assert!(
            !kept.contains("p1") && !kept.contains("p2") && !kept.contains("p3"),
            "{kept}"
        );
    }

    #[test]
    fn type_and_algorithm_left_out_are_neither_sent_nor_compared() {
        let res = resource(json!({"smtpPort": 25}));
        let desired = Boruta::desired(&res, None).unwrap();
        let body = desired.body();
        assert!(body["backend"].get("type").is_none(), "{body}");
        assert!(
            body["backend"].get("password_hashing_alg").is_none(),
            "{body}"
        );
        let ldap = backend(json!({"name": "corp", "roles": [], "smtp_port": 25,
            "type": LDAP, "password_hashing_alg": "bcrypt"}));
        assert!(Boruta::diff(&desired, &ldap).is_empty());
        let stated = resource(json!({"type": "Internal", "passwordHashingAlg": "argon2"}));
        assert_eq!(
            Boruta::diff(&Boruta::desired(&stated, None).unwrap(), &ldap),
            vec!["spec.passwordHashingAlg", "spec.type"]
        );
    }

    #[test]
    fn password_hashing_options_are_compared_key_for_key() {
        let res =
            resource(json!({"passwordHashingAlg": "argon2", "passwordHashingOpts": {"t_cost": 3}}));
        let desired = Boruta::desired(&res, None).unwrap();
        assert_eq!(
            desired.body()["backend"]["password_hashing_opts"],
            json!({"t_cost": 3})
        );
        let same = backend(
            json!({"name": "corp", "roles": [], "password_hashing_alg": "argon2",
            "password_hashing_opts": {"t_cost": 3}}),
        );
        assert!(Boruta::diff(&desired, &same).is_empty());
        let more = backend(
            json!({"name": "corp", "roles": [], "password_hashing_alg": "argon2",
            "password_hashing_opts": {"t_cost": 3, "m_cost": 16}}),
        );
        assert_eq!(
            Boruta::diff(&desired, &more),
            vec!["spec.passwordHashingOpts.m_cost"]
        );
    }

    #[test]
    fn removed_fields_are_cleared_to_borutas_blanks() {
        let res = applied(
            resource(
                json!({"type": "Ldap", "ldapHost": "h", "ldapUserRdnAttribute": "uid", "ldapBaseDn": "dc=x"}),
            ),
            &[
                "type",
                "ldapHost",
                "ldapUserRdnAttribute",
                "ldapBaseDn",
                "smtpPort",
                "metadataFields",
                "ldapPoolSize",
                "passwordHashingAlg",
                "ldapMasterPasswordSecretRef",
                "isDefault",
            ],
        );
        let desired = Boruta::desired(&res, None).unwrap();
        let body = &desired.body()["backend"];
        assert_eq!(body["smtp_port"], Value::Null);
        assert_eq!(body["metadata_fields"], json!([]));
        assert_eq!(body["ldap_pool_size"], 5);
        assert_eq!(body["password_hashing_alg"], "argon2");
        assert_eq!(body["ldap_master_password"], Value::Null);
        assert!(
            body.get("is_default").is_none(),
            "Boruta cannot unset it: {body}"
        );
        let observed = backend(
            json!({"name": "corp", "roles": [], "type": LDAP, "ldap_host": "h",
            "ldap_user_rdn_attribute": "uid", "ldap_base_dn": "dc=x", "smtp_port": 25,
            "metadata_fields": [], "ldap_pool_size": 5, "password_hashing_alg": "bcrypt",
            "is_default": true}),
        );
        assert_eq!(
            Boruta::diff(&desired, &observed),
            vec![
                "spec.passwordHashingAlg",
                "spec.ldapMasterPasswordSecretRef",
                "spec.smtpPort"
            ]
        );
        // What Boruta cannot clear is reported, while it holds.
        let observed = serde_json::to_value(&observed).unwrap();
        let kept: Vec<String> = kept_fields(&removed(&res), &observed)
            .into_iter()
            .map(|k| k.path)
            .collect();
        assert_eq!(kept, vec!["isDefault"]);
        // Nothing is removed before the operator has applied anything.
        let fresh = resource(json!({}));
        assert!(Boruta::desired(&fresh, None).unwrap().removed.is_empty());
    }
}
