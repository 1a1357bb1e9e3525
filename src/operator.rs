//! The operator's wiring: per scope (a namespace, or all) the Secret watch, the IdentityApi
//! controller (the connections), then every managed kind's controller, all sharing one engine
//! [`Context`]; across scopes, the index of which resources still need which connection and
//! the ClusterIdentityApis (one client each, whatever the scopes using it).

use std::sync::Arc;

use futures::stream::{BoxStream, Stream};
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tracing::{info, warn};

use crate::engine::controller::{Scope, Shutdown, until_ready, watch_backoff, watch_secrets};
use crate::engine::dependents::Target;
use crate::engine::protection::Protector;
use crate::engine::reader::{ClusterReader, Reader};
use crate::engine::secrets::SecretVersions;
use crate::engine::usage::Usage;
use crate::engine::{Context, Settings};
use crate::kinds::MANAGED;
use crate::kinds::cluster_identity_api::ClusterIdentityApi;
use crate::kinds::cluster_identity_api::connection::{ClusterApis, Requeue, watch_namespaces};
use crate::kinds::cluster_identity_api::reconcile::{self as cluster_api, ClusterContext};
use crate::kinds::identity_api::connection::IdentityApis;
use crate::kinds::identity_api::reconcile::{self as identity_api, ApiContext};
use crate::metrics::Metrics;

/// Every scope's controllers, until `shutdown` resolves. The scopes share what spans
/// namespaces: which resources may still need which connection.
pub async fn run(
    client: Client,
    scopes: Vec<Scope>,
    settings: Settings,
    metrics: Arc<Metrics>,
    cluster: ClusterOptions,
    concurrency: u16,
    shutdown: Shutdown,
) {
    let usage = Arc::new(Usage::expecting(scopes.len() * MANAGED.len()));
    let (cluster_store, cluster_writer) = reflector::store();
    let selector = cluster.selector.as_deref();
    let cluster_stream = cluster_api::watch(&client, selector, cluster_writer).boxed();
    let credentials = cluster.credentials_namespace;
    let apis = start_cluster_apis(&client, cluster_store, credentials, &metrics, &settings).await;
    let mut cluster_controller = Some(ClusterController {
        stream: cluster_stream,
        manage: cluster.manage,
    });
    let cluster = apis;
    let scopes = scopes.into_iter().map(|scope| {
        let shared = Shared {
            usage: usage.clone(),
            cluster: cluster.clone(),
            cluster_controller: cluster_controller.take(),
        };
        run_scope(
            client.clone(),
            scope,
            settings.clone(),
            metrics.clone(),
            shared,
            concurrency,
            shutdown.clone(),
        )
    });
    future::join_all(scopes).await;
}

/// What the scopes of one operator share; the first scope also runs the ClusterIdentityApi
/// controller.
struct Shared {
    usage: Arc<Usage>,
    cluster: Arc<ClusterApis>,
    cluster_controller: Option<ClusterController>,
}

struct ClusterController {
    stream: BoxStream<'static, Result<ClusterIdentityApi, watcher::Error>>,
    manage: bool,
}

/// How this replica serves ClusterIdentityApis.
pub struct ClusterOptions {
    /// Where their Secrets live.
    pub credentials_namespace: String,
    /// Only those with these labels (shards of operators).
    pub selector: Option<String>,
    /// Whether this replica writes their status and in-use finalizers. Every replica resolves
    /// them; only one set of operators may manage them, or two would fight over who uses them.
    pub manage: bool,
}

/// The ClusterIdentityApis, with the watches they need (namespaces' labels, the credentials
/// namespace's Secrets) listed before any resource resolves one.
async fn start_cluster_apis(
    client: &Client,
    store: Store<ClusterIdentityApi>,
    credentials_namespace: String,
    metrics: &Arc<Metrics>,
    settings: &Settings,
) -> Arc<ClusterApis> {
    let (namespaces, writer) = reflector::store();
    let cluster = Arc::new(ClusterApis::new(
        store,
        namespaces.clone(),
        credentials_namespace,
        client.clone(),
        metrics.clone(),
        &settings.instance,
    ));
    tokio::spawn(watch_namespaces(
        client.clone(),
        writer,
        cluster.relabel_sender(),
    ));
    let apis = cluster.clone();
    let api: Api<PartialObjectMeta<Secret>> =
        Api::namespaced(client.clone(), &cluster.credentials_namespace);
    let events = watcher(api, watcher::Config::default()).backoff(watch_backoff());
    tokio::spawn(events.for_each(move |event| {
        if let Ok(event) = event {
            apis.apply_secret(&event);
        }
        future::ready(())
    }));
    // Without the namespaces' labels a selector allows nobody; a missing grant (or CRD) must not
    // stop the operator, only ClusterIdentityApis.
    let listed = async {
        until_ready(&namespaces).await;
        cluster.secrets.wait_until_ready().await;
    };
    if tokio::time::timeout(CLUSTER_WATCHES_READY, listed)
        .await
        .is_err()
    {
        warn!("namespaces or the credentials namespace's Secrets not listed yet; starting anyway");
    }
    cluster
}

/// How long the controllers wait for the ClusterIdentityApis' watches before starting.
const CLUSTER_WATCHES_READY: std::time::Duration = std::time::Duration::from_secs(30);

/// Everything a scope runs, until `shutdown` resolves.
async fn run_scope(
    client: Client,
    scope: Scope,
    settings: Settings,
    metrics: Arc<Metrics>,
    shared: Shared,
    concurrency: u16,
    shutdown: Shutdown,
) {
    let (api_store, api_writer) = reflector::store();
    let api_stream = identity_api::watch(&client, &scope, api_writer, metrics.clone());
    // Secrets: metadata only, and of that only the resourceVersion is kept.
    let secrets = Arc::new(SecretVersions::default());
    let reader: Arc<dyn Reader> = Arc::new(ClusterReader(client.clone()));
    let apis = Arc::new(
        IdentityApis::new(
            api_store.clone(),
            reader.clone(),
            secrets.clone(),
            metrics.clone(),
            &settings.instance,
        )
        .with_cluster(shared.cluster.clone()),
    );
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            apis.clone(),
            reader,
            secrets,
            metrics,
            settings,
        )
        .with_usage(shared.usage),
    );
    let secrets_task = watch_secrets(&client, &scope, ctx.clone());
    ctx.secrets.wait_until_ready().await;

    let api_ctx = Arc::new(ApiContext {
        engine: ctx.clone(),
        apis: apis.clone(),
        protector: Protector::new(client.clone()),
    });
    tokio::spawn(requeue_cluster_users(
        shared.cluster.requeues(),
        ctx.clone(),
    ));
    match shared.cluster_controller {
        Some(ClusterController {
            stream,
            manage: true,
        }) => {
            let cluster_ctx = Arc::new(ClusterContext {
                engine: ctx.clone(),
                apis: shared.cluster.clone(),
                namespaced: apis.clone(),
                protector: Protector::new(client.clone()),
            });
            let store = shared.cluster.store.clone();
            tokio::spawn(cluster_api::run(
                stream,
                store,
                cluster_ctx,
                shutdown.clone(),
            ));
        }
        // Read only: the watch still feeds the store the connector resolves from.
        Some(ClusterController { stream, .. }) => {
            tokio::spawn(stream.for_each(|_| future::ready(())));
        }
        None => {}
    }
    let api_controller = tokio::spawn(identity_api::run(
        api_stream,
        api_store.clone(),
        api_ctx,
        concurrency,
        shutdown.clone(),
    ));
    // The managed kinds start once the IdentityApis are known, so none of them reports a
    // missing IdentityApi (and writes a status and an Event for it) only because its watch
    // answered first.
    until_ready(&api_store).await;
    info!(namespace = ?scope.namespace, "controllers starting");
    let controllers = MANAGED.iter().map(|kind| {
        kind.run(
            client.clone(),
            scope.clone(),
            ctx.clone(),
            concurrency,
            shutdown.clone(),
        )
    });
    let _ = future::join(api_controller, future::join_all(controllers)).await;
    secrets_task.abort();
}

/// Requeues this scope's users of ClusterIdentityApis as the cluster side says: a namespace
/// relabelled (its resources check their access again), a connection changed.
async fn requeue_cluster_users(requeues: impl Stream<Item = Requeue>, ctx: Arc<Context>) {
    requeues
        .for_each(|which| {
            match which {
                Requeue::Relabelled(ns) => {
                    let cluster = |t: &Target| matches!(t, Target::ClusterApi { .. });
                    ctx.dependents.trigger_in(&ns, cluster);
                }
                Requeue::All(target) => {
                    ctx.dependents.trigger(&target);
                }
                Requeue::Failing(target) => {
                    ctx.dependents.trigger_failing(&target);
                }
            }
            future::ready(())
        })
        .await;
}
