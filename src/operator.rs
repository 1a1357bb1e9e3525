//! The operator's wiring for one scope (a namespace, or all): the Secret watch, the
//! IdentityApi controller (the connections), then every managed kind's controller, all
//! sharing one engine [`Context`].

use std::sync::Arc;

use futures::future;
use kube::Client;
use kube::runtime::reflector;
use tracing::info;

use crate::engine::controller::{Scope, Shutdown, until_ready, watch_secrets};
use crate::engine::reader::{ClusterReader, Reader};
use crate::engine::secrets::SecretVersions;
use crate::engine::{Context, Settings};
use crate::kinds::MANAGED;
use crate::kinds::identity_api::connection::IdentityApis;
use crate::kinds::identity_api::reconcile::{self as identity_api, ApiContext};
use crate::metrics::Metrics;

/// Everything a scope runs, until `shutdown` resolves.
pub async fn run_scope(
    client: Client,
    scope: Scope,
    settings: Settings,
    metrics: Arc<Metrics>,
    concurrency: u16,
    shutdown: Shutdown,
) {
    let (api_store, api_writer) = reflector::store();
    let api_stream = identity_api::watch(&client, &scope, api_writer, metrics.clone());
    // Secrets: metadata only, and of that only the resourceVersion is kept.
    let secrets = Arc::new(SecretVersions::default());
    let reader: Arc<dyn Reader> = Arc::new(ClusterReader(client.clone()));
    let apis = Arc::new(IdentityApis::new(
        api_store.clone(),
        reader.clone(),
        secrets.clone(),
        metrics.clone(),
        &settings.instance,
    ));
    let ctx = Arc::new(Context::new(
        client.clone(),
        apis.clone(),
        reader,
        secrets,
        metrics,
        settings,
    ));
    let secrets_task = watch_secrets(&client, &scope, ctx.clone());
    ctx.secrets.wait_until_ready().await;

    let api_ctx = Arc::new(ApiContext {
        engine: ctx.clone(),
        apis,
    });
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
