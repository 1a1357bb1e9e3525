//! IdentityApi: how to reach and authenticate to one identity system. The CRD here, the
//! client each one gets in `connection.rs` (the engine's `Connector`), its own reconcile
//! (Ready when the operator can authenticate) in `reconcile.rs`, and its protection while
//! resources still need it in `in_use.rs`.

pub mod connection;
mod in_use;
pub mod reconcile;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::engine::spec::{Condition, HasConditions, SecretKeyRef};
pub use crate::identity::Provider;

/// A connection to an identity system: base URL, authentication, TLS and rate limits.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "identity.operator.dev",
    version = "v1alpha1",
    kind = "IdentityApi",
    namespaced,
    status = "IdentityApiStatus",
    shortname = "idapi",
    category = "identity",
    doc = "A connection to an identity system (base URL, authentication, TLS, rate limit) that managed identity resources point at with spec.apiRef.",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.provider != 'xelion' || has(self.tenant)").message("spec.tenant is required for the xelion provider"))]
#[serde(rename_all = "camelCase")]
pub struct IdentityApiSpec {
    /// Which identity system family this is: boruta, auth0, vcd, entrust or xelion.
    pub provider: Provider,
    /// Base URL under which the vendor's documented paths live. A path prefix is allowed, for
    /// example `https://tenant.example/` or `http://127.0.0.1:8080/auth0`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("url must start with http:// or https://"))]
    pub url: String,
    /// Xelion tenant (the `{tenant}` in `/api/v1/{tenant}/...`), for example `master`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub tenant: Option<String>,
    /// How to authenticate: exactly one method.
    #[x_kube(validation = Rule::new("[has(self.bearerToken), has(self.oauth2ClientCredentials), has(self.vcdSession), has(self.vcdApiToken), has(self.entrustAdminApi), has(self.xelionLogin)].filter(x, x).size() == 1").message("set exactly one authentication method"))]
    pub auth: ApiAuth,
    /// TLS settings. Verification is on unless explicitly disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// Client-side rate limit and concurrency cap for calls to this API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Timeout of one HTTP call, in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: Option<u32>,
}

/// Authentication method: exactly one of the fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ApiAuth {
    /// A static bearer token.
    BearerToken(BearerToken),
    /// OAuth2 client credentials grant (Auth0, Boruta).
    #[serde(rename = "oauth2ClientCredentials")]
    OAuth2ClientCredentials(OAuth2ClientCredentials),
    /// VMware Cloud Director session login (Basic user@org:password).
    VcdSession(VcdSession),
    /// VMware Cloud Director API token (refresh token grant).
    VcdApiToken(VcdApiToken),
    /// Entrust IDaaS administration API application credentials.
    EntrustAdminApi(EntrustAdminApi),
    /// Xelion user login with session renewal.
    XelionLogin(XelionLogin),
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BearerToken {
    /// Secret key holding the token.
    pub secret_ref: SecretKeyRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2ClientCredentials {
    /// Token endpoint, absolute (`https://tenant/oauth/token`) or relative to spec.url
    /// (`oauth/token`).
    #[schemars(length(min = 1, max = 2048))]
    pub token_url: String,
    /// OAuth2 client id.
    #[schemars(length(min = 1, max = 512))]
    pub client_id: String,
    /// Secret key holding the client secret.
    pub client_secret_ref: SecretKeyRef,
    /// Audience (Auth0: `https://{tenant}/api/v2/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Scopes to request (Boruta: `identity-providers:manage:all`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VcdSession {
    /// Organisation to log in to (`System` for a provider session).
    #[schemars(length(min = 1, max = 256))]
    pub org: String,
    /// User name (sent as `user@org`).
    #[schemars(length(min = 1, max = 256))]
    pub username: String,
    /// Secret key holding the password.
    pub password_secret_ref: SecretKeyRef,
    /// Log in as a provider (`/sessions/provider`).
    #[serde(default)]
    pub provider: bool,
    /// For a provider session: the tenant organisation to act for
    /// (`X-VMWARE-VCLOUD-TENANT-CONTEXT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_context: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VcdApiToken {
    /// Organisation of the API token.
    #[schemars(length(min = 1, max = 256))]
    pub org: String,
    /// Secret key holding the API (refresh) token.
    pub refresh_token_secret_ref: SecretKeyRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntrustAdminApi {
    /// Administration API application id.
    #[schemars(length(min = 1, max = 256))]
    pub application_id: String,
    /// Secret key holding the application's shared secret.
    pub shared_secret_ref: SecretKeyRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct XelionLogin {
    /// Xelion user name.
    #[schemars(length(min = 1, max = 256))]
    pub user_name: String,
    /// Secret key holding the password.
    pub password_secret_ref: SecretKeyRef,
    /// The user space of the session (one session per user and user space is kept and renewed).
    #[schemars(length(min = 1, max = 200))]
    pub user_space: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// Secret key holding a PEM CA bundle to trust (in addition to the system roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Skip certificate verification. Never use in production.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained requests per second. Default: no client-side limit — the concurrency cap and
    /// the API's own 429 answers and rate-limit headers pace the calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub requests_per_second: Option<u32>,
    /// Burst size (default: requestsPerSecond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: Option<u32>,
    /// Maximum calls in flight at once (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: Option<u32>,
}

/// Status of an IdentityApi.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityApiStatus {
    /// `Ready`: whether the operator could authenticate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl HasConditions for IdentityApiStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl ApiAuth {
    /// The Secret key holding this method's credential.
    pub fn secret_ref(&self) -> &SecretKeyRef {
        match self {
            ApiAuth::BearerToken(b) => &b.secret_ref,
            ApiAuth::OAuth2ClientCredentials(o) => &o.client_secret_ref,
            ApiAuth::VcdSession(v) => &v.password_secret_ref,
            ApiAuth::VcdApiToken(v) => &v.refresh_token_secret_ref,
            ApiAuth::EntrustAdminApi(e) => &e.shared_secret_ref,
            ApiAuth::XelionLogin(x) => &x.password_secret_ref,
        }
    }
}

impl IdentityApiSpec {
    /// Every Secret key this connection reads: its credential, and its CA bundle if any.
    pub fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        let ca = self.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref());
        std::iter::once(self.auth.secret_ref()).chain(ca).collect()
    }

    /// Calls in flight at once, at most.
    pub fn max_concurrent(&self) -> u32 {
        self.rate_limit
            .as_ref()
            .and_then(|r| r.max_concurrent)
            .unwrap_or(connection::DEFAULT_MAX_CONCURRENT)
    }
}

impl IdentityApi {
    /// Every Secret key this connection reads (see [`IdentityApiSpec::secret_refs`]).
    pub fn secret_refs(&self) -> Vec<&SecretKeyRef> {
        self.spec.secret_refs()
    }
}
