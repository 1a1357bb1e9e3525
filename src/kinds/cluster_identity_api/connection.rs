//! ClusterIdentityApis as connections: shared by every scope of the operator, so each one has
//! one client (one token cache, rate budget and concurrency cap) whatever the namespaces using
//! it. Its Secrets are read only in the credentials namespace; the namespaces' labels come from
//! a metadata-only watch, and a change of them requeues that namespace's users so access is
//! decided again without a restart.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::broadcast;

use super::ClusterIdentityApi;
use super::access::refusal;
use crate::engine::connector::{Connection, Request, Sharing};
use crate::engine::controller::watch_backoff;
use crate::engine::dependents::Target;
use crate::engine::error::Error;
use crate::engine::protection::{Wanted, want};
use crate::engine::reader::ClusterReader;
use crate::engine::secrets::SecretVersions;
use crate::engine::spec::ApiKind;
use crate::engine::turns::Turns;
use crate::engine::usage::Usage;
use crate::identity::IdentityClient;
use crate::kinds::identity_api::connection::{Connections, Source};
use crate::metrics::Metrics;

pub struct ClusterApis {
    pub store: Store<ClusterIdentityApi>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Where the Secrets of every ClusterIdentityApi live.
    pub credentials_namespace: String,
    /// The Secrets of the credentials namespace (metadata only).
    pub secrets: Arc<SecretVersions>,
    pub clients: Connections,
    /// Fair turns of the namespaces on each ClusterIdentityApi.
    turns: Arc<Turns>,
    reader: ClusterReader,
    metrics: Arc<Metrics>,
    requeues: broadcast::Sender<Requeue>,
}

/// Which resources of every scope a change of the ClusterIdentityApis requeues.
#[derive(Clone, Debug)]
pub enum Requeue {
    /// Those of a namespace whose labels changed (its access may have).
    Relabelled(String),
    /// Every user of a connection whose spec changed.
    All(Target),
    /// The users of a connection that failed so far (it became usable, or unusable).
    Failing(Target),
}

/// What the resources naming ClusterIdentityApi `name` depend on.
pub fn target_of(name: &str) -> Target {
    Target::ClusterApi {
        name: name.to_owned(),
    }
}

impl ClusterApis {
    pub fn new(
        store: Store<ClusterIdentityApi>,
        namespaces: Store<PartialObjectMeta<Namespace>>,
        credentials_namespace: String,
        kube: Client,
        metrics: Arc<Metrics>,
        instance: &str,
    ) -> Self {
        ClusterApis {
            store,
            namespaces,
            credentials_namespace,
            secrets: Arc::new(SecretVersions::default()),
            clients: Connections::new(instance),
            turns: Arc::default(),
            reader: ClusterReader(kube),
            metrics,
            requeues: broadcast::channel(1024).0,
        }
    }

    /// The ClusterIdentityApi `request` names, if the rule lets it use it.
    pub fn resolve(&self, request: &Request) -> Result<Connection, Error> {
        let name = &request.api_ref.name;
        let api = self
            .store
            .get(&ObjectRef::new(name))
            .ok_or_else(|| Error::ApiNotFound {
                kind: ApiKind::ClusterIdentityApi,
                name: name.clone(),
            })?;
        let namespace = self.namespaces.get(&ObjectRef::new(request.namespace));
        let labels = namespace.as_ref().map(|n| n.labels());
        if let Some(why) = refusal(&api.spec, request, labels) {
            let connection = format!("ClusterIdentityApi {name}");
            return Err(Error::ConnectionNotAllowed { connection, why });
        }
        Ok(Connection {
            provider: api.spec.connection.provider,
            generation: api.metadata.generation.unwrap_or_default(),
            target: target_of(name),
            sharing: Some(Sharing {
                turns: self.turns.clone(),
                cap: api.spec.connection.max_concurrent(),
            }),
            handle: api,
        })
    }

    pub async fn client_of(&self, api: &ClusterIdentityApi) -> Result<Arc<IdentityClient>, Error> {
        let source = Source {
            key: (String::new(), api.name_any()),
            spec: &api.spec.connection,
            meta: &api.metadata,
            secrets_namespace: &self.credentials_namespace,
        };
        self.clients
            .get(&source, &self.reader, &self.secrets, &self.metrics)
            .await
    }

    /// The Secrets of the credentials namespace that ClusterIdentityApis with holders need.
    pub fn wanted_secrets(&self, usage: &Usage) -> Wanted {
        let mut wanted = Wanted::new();
        for api in self.store.state() {
            let name = api.name_any();
            let holders = usage.holders(&target_of(&name));
            let names = api
                .spec
                .connection
                .secret_refs()
                .into_iter()
                .map(|r| &r.name);
            want(
                &mut wanted,
                &format!("ClusterIdentityApi {name}"),
                &holders,
                names,
            );
        }
        wanted
    }

    /// What to requeue in a scope, from now on (a receiver that fell behind goes on with what
    /// is still queued).
    pub fn requeues(&self) -> impl futures::Stream<Item = Requeue> + Send + 'static {
        futures::stream::unfold(self.requeues.subscribe(), |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(which) => return Some((which, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }

    /// Requeues `which` in every scope.
    pub fn requeue(&self, which: Requeue) {
        let _ = self.requeues.send(which);
    }

    /// Keeps the credentials namespace's Secret versions. A Secret that appeared, changed or
    /// went away requeues every ClusterIdentityApi reading it and its failing users (a
    /// rotation that fixes refused credentials is taken at once; the others build a new client
    /// at their next call). A re-list of unchanged Secrets requeues nothing.
    pub fn apply_secret(&self, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        let ns = &self.credentials_namespace;
        let changed = match event {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                let name = s.name_any();
                let now = s.metadata.resource_version.as_deref();
                (self.secrets.version(ns, &name).as_deref() != now).then_some(name)
            }
            watcher::Event::Delete(s) => Some(s.name_any()),
            _ => None,
        };
        self.secrets.apply(event);
        let Some(name) = changed else { return };
        for api in self.store.state() {
            if api
                .spec
                .connection
                .secret_refs()
                .iter()
                .any(|r| r.name == name)
            {
                self.requeue(Requeue::Failing(target_of(&api.name_any())));
            }
        }
    }
}

/// Watches namespaces (metadata only) into `writer`, telling `apis` which were relabelled.
pub async fn watch_namespaces(
    kube: Client,
    writer: reflector::store::Writer<PartialObjectMeta<Namespace>>,
    requeues: broadcast::Sender<Requeue>,
) {
    let seen = writer.as_reader();
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(kube);
    watcher::watcher(api, watcher::Config::default())
        .backoff(watch_backoff())
        .map(move |event| {
            if let Ok(watcher::Event::Apply(ns)) = &event {
                let before = seen.get(&ObjectRef::from_obj(ns));
                let labels = |n: &PartialObjectMeta<Namespace>| n.labels().clone();
                if before.is_some_and(|b| labels(&b) != labels(ns)) {
                    let _ = requeues.send(Requeue::Relabelled(ns.name_any()));
                }
            }
            event
        })
        .reflect(writer)
        .for_each(|_| futures::future::ready(()))
        .await;
}

impl ClusterApis {
    /// The sender `watch_namespaces` reports relabelled namespaces to.
    pub fn relabel_sender(&self) -> broadcast::Sender<Requeue> {
        self.requeues.clone()
    }
}
