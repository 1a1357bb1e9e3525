//! IdentityApis as the engine's [`Connector`]: an `apiRef` resolves to the IdentityApi of that
//! name in the resource's namespace, and each IdentityApi gets one [`IdentityClient`], kept
//! while its spec and Secrets are unchanged (so tokens, rate limits and connection pools are
//! shared by every resource using it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::{ApiAuth, IdentityApi};
use crate::engine::connector::{Connection, Connector};
use crate::engine::dependents::Target;
use crate::engine::error::Error;
use crate::engine::reader::Reader;
use crate::engine::secrets::{self, SecretVersions};
use crate::engine::spec::{ApiRef, SecretKeyRef};
use crate::identity::{ClientConfig, Credentials, IdentityClient};
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

    /// Ends every client's session: `plan` is a short-lived process, and Xelion refuses a
    /// second login of a user and user space while the first session lives.
    pub async fn close_all(&self) {
        let clients: Vec<_> = (self.clients.lock().expect("lock").values())
            .map(|(_, c)| c.clone())
            .collect();
        for client in clients {
            client.close().await;
        }
    }

    /// The client of `api`, built anew when its generation or one of its Secrets changed.
    pub async fn get(
        &self,
        api: &IdentityApi,
        reader: &dyn Reader,
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
        let values = secrets::read(reader, &ns, &refs).await?;
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
    let mut tenant_context = None;
    let credentials = match &api.spec.auth {
        ApiAuth::BearerToken(b) => Credentials::Bearer(secret(&b.secret_ref)?),
        ApiAuth::OAuth2ClientCredentials(o) => Credentials::OAuth2 {
            token_url: o.token_url.clone(),
            client_id: o.client_id.clone(),
            client_secret: secret(&o.client_secret_ref)?,
            audience: o.audience.clone(),
            scopes: o.scopes.clone(),
        },
        ApiAuth::VcdSession(v) => {
            tenant_context = v.tenant_context.clone();
            Credentials::VcdSession {
                org: v.org.clone(),
                username: v.username.clone(),
                password: secret(&v.password_secret_ref)?,
                provider: v.provider,
            }
        }
        ApiAuth::VcdApiToken(v) => Credentials::VcdApiToken {
            org: v.org.clone(),
            refresh_token: secret(&v.refresh_token_secret_ref)?,
        },
        ApiAuth::EntrustAdminApi(e) => Credentials::Entrust {
            application_id: e.application_id.clone(),
            shared_secret: secret(&e.shared_secret_ref)?,
        },
        ApiAuth::XelionLogin(x) => Credentials::Xelion {
            user_name: x.user_name.clone(),
            password: secret(&x.password_secret_ref)?,
            user_space: x.user_space.clone(),
        },
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

/// The IdentityApis of the operator's scope, as the engine's [`Connector`].
pub struct IdentityApis {
    pub store: Store<IdentityApi>,
    pub clients: Connections,
    reader: Arc<dyn Reader>,
    secrets: Arc<SecretVersions>,
    metrics: Arc<Metrics>,
}

impl IdentityApis {
    pub fn new(
        store: Store<IdentityApi>,
        reader: Arc<dyn Reader>,
        secrets: Arc<SecretVersions>,
        metrics: Arc<Metrics>,
        instance: &str,
    ) -> Self {
        Self {
            store,
            clients: Connections::new(instance),
            reader,
            secrets,
            metrics,
        }
    }

    /// The client of `api` (see [`Connections::get`]).
    pub async fn client_of(&self, api: &IdentityApi) -> Result<Arc<IdentityClient>, Error> {
        self.clients
            .get(api, &*self.reader, &self.secrets, &self.metrics)
            .await
    }
}

impl Connector for IdentityApis {
    fn target(&self, namespace: &str, api_ref: &ApiRef) -> Target {
        Target::Api {
            namespace: namespace.to_owned(),
            name: api_ref.name.clone(),
        }
    }

    fn resolve(&self, namespace: &str, api_ref: &ApiRef) -> Result<Connection, Error> {
        let api = self
            .store
            .get(&ObjectRef::new(&api_ref.name).within(namespace))
            .ok_or_else(|| Error::ApiNotFound(api_ref.name.clone()))?;
        Ok(Connection {
            provider: api.spec.provider,
            generation: api.metadata.generation.unwrap_or_default(),
            target: self.target(namespace, api_ref),
            handle: api,
        })
    }

    fn client<'a>(
        &'a self,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<Arc<IdentityClient>, Error>> {
        async move {
            let api = connection
                .handle
                .downcast_ref::<IdentityApi>()
                .expect("a connection this connector resolved");
            self.client_of(api).await
        }
        .boxed()
    }
}
