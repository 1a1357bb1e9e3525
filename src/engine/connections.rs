//! One [`IdentityClient`] per IdentityApi, kept while its spec and Secrets are unchanged (so
//! tokens, rate limits and connection pools are shared by every resource using it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::{Client, ResourceExt};

use super::error::Error;
use super::secrets::{self, SecretVersions};
use crate::identity::{ClientConfig, Credentials, IdentityClient};
use crate::kinds::common::SecretKeyRef;
use crate::kinds::identity_api::IdentityApi;
use crate::metrics::Metrics;

/// Defaults of `spec.rateLimit` and `spec.timeoutSeconds`.
pub const DEFAULT_MAX_CONCURRENT: u32 = 32;
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;

/// (namespace, name) of an IdentityApi → (fingerprint of its spec and Secrets, its client).
type ClientCache = HashMap<(String, String), (String, Arc<IdentityClient>)>;

pub struct Connections {
    clients: Mutex<ClientCache>,
    /// `identity-operator/VERSION (INSTANCE)`: tells the vendor (and the simulator's call log)
    /// which replica made a call.
    user_agent: String,
    /// Held while a client is built, so reconciles starting together share one client (one
    /// login, one rate-limit budget) instead of each building its own.
    building: tokio::sync::Mutex<()>,
}

impl Connections {
    pub fn new(instance: &str) -> Self {
        Connections {
            clients: Mutex::default(),
            user_agent: format!(
                "identity-operator/{} ({instance})",
                env!("CARGO_PKG_VERSION")
            ),
            building: tokio::sync::Mutex::default(),
        }
    }

    /// The client of `api`, built anew when its generation or one of its Secrets changed.
    pub async fn get(
        &self,
        api: &IdentityApi,
        kube: &Client,
        secret_store: &SecretVersions,
        metrics: &Arc<Metrics>,
    ) -> Result<Arc<IdentityClient>, Error> {
        let ns = api.namespace().unwrap_or_default();
        let key = (ns.clone(), api.name_any());
        let refs: Vec<SecretKeyRef> = api.secret_refs().into_iter().cloned().collect();
        let versions = secrets::versions(secret_store, &ns, &refs)?;
        let fingerprint = format!(
            "{:?}/{:?}/{versions:?}",
            api.metadata.uid, api.metadata.generation
        );
        let cached = || {
            self.clients
                .lock()
                .expect("lock")
                .get(&key)
                .filter(|(fp, _)| *fp == fingerprint)
                .map(|(_, client)| client.clone())
        };
        if let Some(client) = cached() {
            return Ok(client);
        }
        let _building = self.building.lock().await;
        if let Some(client) = cached() {
            return Ok(client);
        }
        let values = secrets::read(kube, &ns, &refs).await?;
        let mut config = client_config(api, &values)?;
        config.user_agent = self.user_agent.clone();
        let client = Arc::new(IdentityClient::new(config, metrics.clone()).map_err(Error::Api)?);
        let replaced = self
            .clients
            .lock()
            .expect("lock")
            .insert(key, (fingerprint, client.clone()));
        // Xelion refuses a second login for the same user and user space (10005) while a
        // session lives: the replaced client ends its session first.
        if let Some((_, old)) = replaced {
            old.close().await;
        }
        Ok(client)
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        self.clients
            .lock()
            .expect("lock")
            .remove(&(namespace.to_owned(), name.to_owned()));
    }
}

fn client_config(api: &IdentityApi, values: &secrets::SecretValues) -> Result<ClientConfig, Error> {
    let secret = |r: &SecretKeyRef| {
        values
            .get(r)
            .cloned()
            .ok_or_else(|| Error::SecretKeyNotFound {
                name: r.name.clone(),
                key: r.key.clone(),
            })
    };
    let a = &api.spec.auth;
    let mut tenant_context = None;
    let credentials = if let Some(b) = &a.bearer_token {
        Credentials::Bearer(secret(&b.secret_ref)?)
    } else if let Some(o) = &a.oauth2_client_credentials {
        Credentials::OAuth2 {
            token_url: o.token_url.clone(),
            client_id: o.client_id.clone(),
            client_secret: secret(&o.client_secret_ref)?,
            audience: o.audience.clone(),
            scopes: o.scopes.clone(),
        }
    } else if let Some(v) = &a.vcd_session {
        tenant_context = v.tenant_context.clone();
        Credentials::VcdSession {
            org: v.org.clone(),
            username: v.username.clone(),
            password: secret(&v.password_secret_ref)?,
            provider: v.provider,
        }
    } else if let Some(v) = &a.vcd_api_token {
        Credentials::VcdApiToken {
            org: v.org.clone(),
            refresh_token: secret(&v.refresh_token_secret_ref)?,
        }
    } else if let Some(e) = &a.entrust_admin_api {
        Credentials::Entrust {
            application_id: e.application_id.clone(),
            shared_secret: secret(&e.shared_secret_ref)?,
        }
    } else if let Some(x) = &a.xelion_login {
        Credentials::Xelion {
            user_name: x.user_name.clone(),
            password: secret(&x.password_secret_ref)?,
            user_space: x.user_space.clone(),
        }
    } else {
        return Err(Error::InvalidSpec(
            "spec.auth sets no authentication method".into(),
        ));
    };
    let tls = api.spec.tls.clone().unwrap_or_default();
    let rate = api.spec.rate_limit.clone().unwrap_or_default();
    let rps = rate.requests_per_second;
    Ok(ClientConfig {
        provider: api.spec.provider,
        base_url: api.spec.url.clone(),
        tenant: api.spec.tenant.clone(),
        credentials,
        ca_pem: tls.ca_secret_ref.as_ref().map(secret).transpose()?,
        insecure_skip_verify: tls.insecure_skip_verify,
        timeout: Duration::from_secs(
            api.spec
                .timeout_seconds
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
                .into(),
        ),
        requests_per_second: rps,
        burst: rate.burst.or(rps),
        max_concurrent: rate.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT),
        tenant_context,
        user_agent: concat!("identity-operator/", env!("CARGO_PKG_VERSION")).into(),
        connection: format!("{}/{}", api.namespace().unwrap_or_default(), api.name_any()),
    })
}
