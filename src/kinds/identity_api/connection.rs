//! IdentityApis as the engine's [`Connector`]: an `apiRef` resolves to the IdentityApi of that
//! name in the resource's namespace, and each IdentityApi gets one [`IdentityClient`], kept
//! while its spec and Secrets are unchanged (so tokens, rate limits and connection pools are
//! shared by every resource using it).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::{ApiAuth, IdentityApi, IdentityApiSpec};
use crate::engine::connector::{Connection, Connector, Request};
use crate::engine::dependents::Target;
use crate::engine::error::Error;
use crate::engine::protection::{Wanted, add, want};
use crate::engine::reader::Reader;
use crate::engine::secrets::{self, SecretVersions};
use crate::engine::spec::{ApiKind, ApiRef, SecretKeyRef};
use crate::engine::usage::Usage;
use crate::identity::{ClientConfig, Credentials, IdentityClient};
use crate::kinds::cluster_identity_api::ClusterIdentityApi;
use crate::kinds::cluster_identity_api::connection::{self as cluster, ClusterApis};
use crate::metrics::Metrics;

/// Defaults of `spec.rateLimit` and `spec.timeoutSeconds`.
pub const DEFAULT_MAX_CONCURRENT: u32 = 32;
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 30;

/// What a connection's client is built from: its spec, which object it is, and where its
/// Secrets are (an IdentityApi's own namespace, a ClusterIdentityApi's credentials namespace).
pub struct Source<'a> {
    /// (namespace, name): the namespace is empty for a ClusterIdentityApi.
    pub key: (String, String),
    pub spec: &'a IdentityApiSpec,
    pub meta: &'a ObjectMeta,
    pub secrets_namespace: &'a str,
}

impl<'a> Source<'a> {
    pub fn of(api: &'a IdentityApi, namespace: &'a str) -> Self {
        Source {
            key: (namespace.to_owned(), api.name_any()),
            spec: &api.spec,
            meta: &api.metadata,
            secrets_namespace: namespace,
        }
    }
}

/// (namespace, name) of a connection → its client, and what it was built from.
type ClientCache = HashMap<(String, String), Cached>;

struct Cached {
    /// The IdentityApi's uid and generation.
    spec: String,
    /// The resourceVersions of its Secrets.
    versions: BTreeMap<String, String>,
    /// A digest of the Secret values, in memory only: a Secret whose resourceVersion moved
    /// without a new value (the in-use finalizer added or removed) keeps the client, its token
    /// and its Xelion session.
    values: u64,
    client: Arc<IdentityClient>,
}

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
            .map(|c| c.client.clone())
            .collect();
        for client in clients {
            client.close().await;
        }
    }

    /// The client of a connection, built anew when its generation or the value of one of its
    /// Secrets changed.
    pub async fn get(
        &self,
        source: &Source<'_>,
        reader: &dyn Reader,
        secret_store: &SecretVersions,
        metrics: &Arc<Metrics>,
    ) -> Result<Arc<IdentityClient>, Error> {
        let ns = source.secrets_namespace;
        let key = source.key.clone();
        let refs: Vec<SecretKeyRef> = source.spec.secret_refs().into_iter().cloned().collect();
        let versions = secrets::versions(secret_store, ns, &refs)?;
        let spec = format!("{:?}/{:?}", source.meta.uid, source.meta.generation);
        let cached = || {
            let clients = self.clients.lock().expect("lock");
            let c = clients.get(&key).filter(|c| c.spec == spec)?;
            Some((c.versions == versions, c.values, c.client.clone()))
        };
        if let Some((true, _, client)) = cached() {
            return Ok(client);
        }
        let _building = self.building.lock().await;
        let found = cached();
        if let Some((true, _, client)) = found {
            return Ok(client);
        }
        let values = secrets::read(reader, ns, &refs).await?;
        let digest = values.digest(&refs);
        if let Some((_, _, client)) = found.filter(|(_, v, _)| *v == digest) {
            let mut clients = self.clients.lock().expect("lock");
            if let Some(c) = clients.get_mut(&key) {
                c.versions = versions;
            }
            return Ok(client);
        }
        let mut config = client_config(source.spec, &values)?;
        config.user_agent = self.user_agent.clone();
        // The connection label of the call metrics: `namespace/name`, or the name of a
        // ClusterIdentityApi.
        config.connection = match &source.key {
            (ns, name) if ns.is_empty() => name.clone(),
            (ns, name) => format!("{ns}/{name}"),
        };
        let client = Arc::new(IdentityClient::new(config, metrics.clone()).map_err(Error::Api)?);
        let cached = Cached {
            spec,
            versions,
            values: digest,
            client: client.clone(),
        };
        let replaced = self.clients.lock().expect("lock").insert(key, cached);
        // Xelion refuses a second login for the same user and user space (10005) while a
        // session lives: the replaced client ends its session first.
        if let Some(old) = replaced {
            old.client.close().await;
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

fn client_config(
    spec: &IdentityApiSpec,
    values: &secrets::SecretValues,
) -> Result<ClientConfig, Error> {
    let secret = |r: &SecretKeyRef| values.require(r);
    let mut tenant_context = None;
    let credentials = match &spec.auth {
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
    let tls = spec.tls.clone().unwrap_or_default();
    let rate = spec.rate_limit.clone().unwrap_or_default();
    let rps = rate.requests_per_second;
    Ok(ClientConfig {
        provider: spec.provider,
        base_url: spec.url.clone(),
        tenant: spec.tenant.clone(),
        credentials,
        ca_pem: tls.ca_secret_ref.as_ref().map(secret).transpose()?,
        insecure_skip_verify: tls.insecure_skip_verify,
        timeout: Duration::from_secs(
            spec.timeout_seconds
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
                .into(),
        ),
        requests_per_second: rps,
        burst: rate.burst.or(rps),
        max_concurrent: spec.max_concurrent(),
        tenant_context,
        user_agent: concat!("identity-operator/", env!("CARGO_PKG_VERSION")).into(),
        connection: String::new(),
    })
}

/// The IdentityApis of the operator's scope, as the engine's [`Connector`].
pub struct IdentityApis {
    pub store: Store<IdentityApi>,
    pub clients: Connections,
    reader: Arc<dyn Reader>,
    secrets: Arc<SecretVersions>,
    metrics: Arc<Metrics>,
    /// The ClusterIdentityApis, shared by every scope.
    cluster: Option<Arc<ClusterApis>>,
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
            cluster: None,
        }
    }

    /// Resolves `apiRef`s of kind ClusterIdentityApi through `cluster`.
    pub fn with_cluster(mut self, cluster: Arc<ClusterApis>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The client of `api` (see [`Connections::get`]).
    pub async fn client_of(&self, api: &IdentityApi) -> Result<Arc<IdentityClient>, Error> {
        let ns = api.namespace().unwrap_or_default();
        let source = Source::of(api, &ns);
        self.clients
            .get(&source, &*self.reader, &self.secrets, &self.metrics)
            .await
    }
}

impl IdentityApis {
    /// The Secrets of `namespace` that an IdentityApi with holders needs, and why: what keeps
    /// them from being deleted while a resource may still delete through that IdentityApi.
    pub fn wanted_secrets(&self, namespace: &str, usage: &Usage) -> Wanted {
        let mut wanted = Wanted::new();
        let apis = self.store.state();
        let here = apis
            .iter()
            .filter(|a| a.namespace().as_deref() == Some(namespace));
        for api in here {
            let name = api.name_any();
            let holders = usage.holders(&target_of(namespace, &name));
            let names = api.secret_refs().into_iter().map(|r| &r.name);
            want(&mut wanted, &format!("IdentityApi {name}"), &holders, names);
        }
        let cluster = self.cluster.as_ref();
        if let Some(cluster) = cluster.filter(|c| c.credentials_namespace == namespace) {
            for (name, why) in cluster.wanted_secrets(usage) {
                add(&mut wanted, name, &why);
            }
        }
        wanted
    }
}

/// What the resources naming IdentityApi `name` in `namespace` depend on.
pub fn target_of(namespace: &str, name: &str) -> Target {
    Target::Api {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

impl Connector for IdentityApis {
    fn target(&self, namespace: &str, api_ref: &ApiRef) -> Target {
        match api_ref.kind() {
            ApiKind::IdentityApi => target_of(namespace, &api_ref.name),
            ApiKind::ClusterIdentityApi => cluster::target_of(&api_ref.name),
        }
    }

    fn resolve(&self, request: &Request) -> Result<Connection, Error> {
        let (namespace, api_ref) = (request.namespace, request.api_ref);
        let not_found = || Error::ApiNotFound {
            kind: api_ref.kind(),
            name: api_ref.name.clone(),
        };
        if api_ref.kind() == ApiKind::ClusterIdentityApi {
            let cluster = self.cluster.as_ref().ok_or_else(not_found)?;
            return cluster.resolve(request);
        }
        let api = self
            .store
            .get(&ObjectRef::new(&api_ref.name).within(namespace))
            .ok_or_else(not_found)?;
        Ok(Connection {
            provider: api.spec.provider,
            generation: api.metadata.generation.unwrap_or_default(),
            target: self.target(namespace, api_ref),
            handle: api,
            sharing: None,
        })
    }

    fn client<'a>(
        &'a self,
        connection: &'a Connection,
    ) -> BoxFuture<'a, Result<Arc<IdentityClient>, Error>> {
        async move {
            let handle = &connection.handle;
            if let Some(api) = handle.downcast_ref::<IdentityApi>() {
                return self.client_of(api).await;
            }
            let api = handle
                .downcast_ref::<ClusterIdentityApi>()
                .expect("a connection this connector resolved");
            let cluster = self.cluster.as_ref().expect("resolved through it");
            cluster.client_of(api).await
        }
        .boxed()
    }
}
