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
    /// update leaves out. Each role id may appear once.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
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
    /// Role name (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Boruta admin API wire format and adapter
// ---------------------------------------------------------------------------------------------

use reqwest::Method;
use serde_json::json;

use crate::engine::diff::{camel_case, subset_diff};
use crate::engine::preview::{WriteOnly, write_only_fields};
use crate::engine::secrets::SecretValues;
use crate::engine::{Adapter, Error, Observed};
use crate::identity::IdentityClient;
use crate::identity::lists::Items;
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
    pub ldap_master_password: Option<crate::identity::SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_relay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<crate::identity::SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_ssl: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<i64>,
    /// Computed by Boruta; never sent.
    #[serde(default, skip_serializing)]
    pub features: Option<Vec<Value>>,
}

/// A role link. `scopes` is computed by Boruta and never sent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Role {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing)]
    pub scopes: Option<Value>,
}

const INTERNAL: &str = "Elixir.BorutaIdentity.Accounts.Internal";
const LDAP: &str = "Elixir.BorutaIdentity.Accounts.Ldap";

/// Write-only fields: Boruta returns them, but the operator compares Secret versions instead
/// of values, so no password is ever held longer than one write.
const WRITE_ONLY: &[&str] = &["ldap_master_password", "smtp_password"];

impl IdentityBackendSpec {
    fn to_backend(&self, secrets: Option<&SecretValues>) -> Result<Backend, Error> {
        let secret = |r: &Option<SecretKeyRef>| -> Result<_, Error> {
            match (r, secrets) {
                (Some(r), Some(values)) => {
                    values
                        .get(r)
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| Error::SecretKeyNotFound {
                            name: r.name.clone(),
                            key: r.key.clone(),
                        })
                }
                _ => Ok(None),
            }
        };
        Ok(Backend {
            id: None,
            name: Some(self.name.clone()),
            type_: Some(
                match self.type_.unwrap_or(BackendType::Internal) {
                    BackendType::Internal => INTERNAL,
                    BackendType::Ldap => LDAP,
                }
                .to_owned(),
            ),
            is_default: self.is_default,
            create_default_organization: self.create_default_organization,
            roles: self
                .roles
                .iter()
                .map(|r| Role {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    scopes: None,
                })
                .collect(),
            metadata_fields: self.metadata_fields.clone(),
            federated_servers: self.federated_servers.clone(),
            verifiable_credentials: self.verifiable_credentials.clone(),
            verifiable_presentations: self.verifiable_presentations.clone(),
            password_hashing_alg: Some(
                match self.password_hashing_alg {
                    PasswordHashingAlg::Argon2 => "argon2",
                    PasswordHashingAlg::Bcrypt => "bcrypt",
                    PasswordHashingAlg::Pbkdf2 => "pbkdf2",
                }
                .to_owned(),
            ),
            password_hashing_opts: self.password_hashing_opts.clone(),
            ldap_pool_size: self.ldap_pool_size,
            ldap_host: self.ldap_host.clone(),
            ldap_user_rdn_attribute: self.ldap_user_rdn_attribute.clone(),
            ldap_base_dn: self.ldap_base_dn.clone(),
            ldap_ou: self.ldap_ou.clone(),
            ldap_master_dn: self.ldap_master_dn.clone(),
            ldap_master_password: secret(&self.ldap_master_password_secret_ref)?,
            smtp_from: self.smtp_from.clone(),
            smtp_relay: self.smtp_relay.clone(),
            smtp_username: self.smtp_username.clone(),
            smtp_password: secret(&self.smtp_password_secret_ref)?,
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
        })
    }
}

impl serde::Serialize for crate::identity::SecretString {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

impl<'de> serde::Deserialize<'de> for crate::identity::SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(crate::identity::SecretString::new)
    }
}

/// Reconciles IdentityBackends against the Boruta admin API.
pub struct Boruta;

const BACKENDS: &str = "api/backends";

/// Every backend, without the passwords Boruta returns in plain text: they are never compared,
/// so they are not kept.
async fn list_backends(api: &IdentityClient) -> Result<Items<Backend>, crate::identity::ApiError> {
    /// `{"data": [...]}`, decoded straight from the answer's bytes.
    #[derive(Deserialize)]
    struct Data {
        data: Items<Backend>,
    }
    let resp = api.call(Method::GET, BACKENDS, None).await?;
    Ok(resp.decode::<Data>(BACKENDS)?.data)
}

impl crate::identity::lists::Item for Backend {
    const FORGET: &'static [&'static str] = WRITE_ONLY;

    fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    fn key(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

impl Backend {
    fn forget_passwords(&mut self) {
        self.ldap_master_password = None;
        self.smtp_password = None;
    }
}

/// Overlays a backend the operator just wrote on the shared list snapshot.
fn remember(api: &IdentityClient, written: &Observed<Backend>) {
    let mut backend = written.remote.clone();
    backend.forget_passwords();
    api.lists().record(BACKENDS, &written.id, Some(backend));
}

fn decode_data<T: serde::de::DeserializeOwned>(body: Value, path: &str) -> Result<T, Error> {
    let data = match body {
        Value::Object(mut map) if map.contains_key("data") => {
            map.remove("data").unwrap_or_default()
        }
        other => other,
    };
    serde_json::from_value(data).map_err(|e| {
        Error::Api(crate::identity::ApiError::Decode {
            path: path.to_owned(),
            message: e.to_string(),
        })
    })
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

impl Adapter for Boruta {
    type Resource = IdentityBackend;
    type Remote = Backend;
    const PROVIDER: Provider = Provider::Boruta;
    const CREATES: bool = true;

    fn secret_refs(res: &IdentityBackend) -> Vec<SecretKeyRef> {
        [
            &res.spec.ldap_master_password_secret_ref,
            &res.spec.smtp_password_secret_ref,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    fn spec_id(res: &IdentityBackend) -> Option<String> {
        res.spec.backend_id.clone()
    }

    fn desired(res: &IdentityBackend, secrets: Option<&SecretValues>) -> Result<Backend, Error> {
        res.spec.to_backend(secrets)
    }

    fn diff(desired: &Backend, observed: &Backend) -> Vec<String> {
        let mut d = serde_json::to_value(desired).expect("serializable");
        if let Some(map) = d.as_object_mut() {
            for k in WRITE_ONLY {
                map.remove(*k);
            }
        }
        let o = serde_json::to_value(observed).expect("serializable");
        subset_diff(&d, &o)
            .iter()
            .map(|p| format!("spec.{}", camel_case(p)))
            .collect()
    }

    async fn find(
        api: &IdentityClient,
        res: &IdentityBackend,
        id: Option<&str>,
    ) -> Result<Option<Observed<Backend>>, Error> {
        // One list call serves every backend of this IdentityApi looked up within a short
        // window (a burst of creations, a resync) instead of one call each.
        let listed = api.lists().get(BACKENDS, || list_backends(api)).await?;
        if let Some(id) = id {
            if let Some(found) = listed.get(id) {
                return observed(found).map(Some);
            }
            // Created after the snapshot by someone else, or gone: ask for it directly.
            let path = format!("{BACKENDS}/{id}");
            return match api.call(Method::GET, &path, None).await {
                Ok(resp) => observed(decode_data(resp.body(), &path)?).map(Some),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        // No id yet: find the backend by name, so a crash between create and the status write
        // never creates a second one.
        let mut named = listed.named(&res.spec.name);
        match (named.pop(), named.is_empty()) {
            (None, _) => Ok(None),
            (Some(b), true) => observed(b).map(Some),
            _ => Err(Error::Conflict(format!(
                "several Boruta backends are named {:?}; set spec.backendId to choose one",
                res.spec.name
            ))),
        }
    }

    async fn create(
        api: &IdentityClient,
        _res: &IdentityBackend,
        desired: &Backend,
    ) -> Result<Observed<Backend>, Error> {
        let body = json!({"backend": desired});
        let resp = api.call(Method::POST, BACKENDS, Some(&body)).await?;
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
        let resp = api
            .call(Method::PUT, &path, Some(&json!({"backend": desired})))
            .await?;
        let updated = observed(decode_data(resp.body(), &path)?)?;
        remember(api, &updated);
        Ok(updated)
    }

    async fn delete(api: &IdentityClient, _res: &IdentityBackend, id: &str) -> Result<(), Error> {
        let result = api
            .call(Method::DELETE, &format!("{BACKENDS}/{id}"), None)
            .await;
        if result.is_ok() || result.as_ref().is_err_and(|e| e.is_not_found()) {
            api.lists().record::<Backend>(BACKENDS, id, None);
        }
        result?;
        Ok(())
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
}
