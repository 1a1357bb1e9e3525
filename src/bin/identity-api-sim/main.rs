//! identity-api-sim: one local HTTP server that speaks the five identity APIs the operator
//! manages (Boruta, Auth0, Xelion, VMware Cloud Director, Entrust IDaaS), each under its own
//! path prefix, plus `/_sim/*` endpoints to seed, inspect and disturb it.
//!
//! It is an independent implementation of the vendors' documented behaviour and shares no
//! code or types with the operator, so a mistake in the operator's wire types cannot be
//! mirrored here. See docs/simulator.md.

// Helpers return a ready vendor-shaped `Response` as their error: it is moved once, on
// the error path of a test server, so boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod auth;
mod auth0;
mod boruta;
mod boruta_schema;
mod control;
mod entrust;
mod faults;
#[cfg(test)]
mod fuzz;
mod record;
mod state;
mod tls;
mod vcd;
mod wire;
mod xelion;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use clap::Parser;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::faults::{Rejection, Spoil};
use crate::record::Call;
use crate::state::{Config, Sim};
use crate::wire::{Api, SimRequest, json_response, now_ms};

/// Local simulator of the Boruta, Auth0, Xelion, VCD and Entrust identity APIs.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the listening line tells which).
    #[arg(long, env = "SIM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The client id / user name every auth flow accepts.
    #[arg(long, env = "SIM_CLIENT_ID")]
    client_id: String,
    /// The secret / password every auth flow accepts.
    #[arg(long, env = "SIM_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Latency added to every vendor API call.
    #[arg(long, env = "SIM_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Seed file loaded at start if it exists; the full state is written back on SIGINT/SIGTERM.
    #[arg(long, env = "SIM_STATE")]
    state: Option<PathBuf>,
    /// Lifetime of every issued token and session.
    #[arg(long, env = "SIM_TOKEN_TTL_SECONDS", default_value_t = 3600)]
    token_ttl_seconds: u64,
    /// Boruta's /oauth/* limit per client IP and second (0 disables it).
    #[arg(long, default_value_t = 10)]
    boruta_oauth_rate_limit: u32,
    /// API versions the VCD cloudapi accepts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "9.1.0")]
    vcd_api_versions: Vec<String>,
    /// Largest accepted request body; larger ones get 413.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Entries kept in the /_sim/log ring buffer.
    #[arg(long, default_value_t = 20_000)]
    log_capacity: usize,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key); plain HTTP without it.
    #[arg(long, env = "SIM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SIM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "identity_api_sim=info".into()),
        )
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("identity-api-sim: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let cfg = Config {
        client_id: args.client_id,
        client_secret: args.client_secret,
        token_ttl_ms: args.token_ttl_seconds.saturating_mul(1000),
        latency_ms: args.latency_ms,
        max_body_bytes: args.max_body_bytes,
        boruta_oauth_rate_limit: args.boruta_oauth_rate_limit,
        vcd_api_versions: args.vcd_api_versions,
    };
    let sim = Arc::new(Sim::new(cfg, args.log_capacity));
    if let Some(path) = args.state.as_deref().filter(|p| p.exists()) {
        load_state(&sim, path)?;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = control::routes()
        .fallback(vendor_call)
        .with_state(sim.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    let shutdown = async move { stopped.notified().await };
    let (server, scheme) = match tls {
        None => {
            let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
            (tokio::spawn(serve.into_future()), "http")
        }
        Some(config) => {
            use axum::serve::ListenerExt as _;
            // tap_io: axum provides the peer address (ConnectInfo) for tapped listeners.
            let listener = tls::TlsListener::new(listener, config)
                .map_err(|e| e.to_string())?
                .tap_io(|_| {});
            let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
            (tokio::spawn(serve.into_future()), "https")
        }
    };
    println!("identity-api-sim listening on {scheme}://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    wait_for_signal().await;
    if let Some(path) = &args.state {
        save_state(&sim, path)?;
    }
    stop.notify_one();
    // Keep-alive connections of a client that never hangs up must not block the exit.
    let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
    Ok(())
}

fn load_state(sim: &Sim, path: &Path) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value = serde_json::from_slice(&text)
        .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    sim.seed(&value)
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn save_state(sim: &Sim, path: &Path) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(&sim.dump()).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Every request outside /_sim: find the API by prefix, apply faults, handle, record.
async fn vendor_call(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started_ms = now_ms();
    let (parts, body) = request.into_parts();
    let Some((api, rest)) = split_prefix(parts.uri.path()) else {
        let message =
            "unknown path: vendor APIs live under /boruta, /auth0, /xelion, /vcd and /entrust";
        return json_response(StatusCode::NOT_FOUND, &json!({"error": message}));
    };
    let decision = sim
        .faults
        .decide(api, parts.method.as_str(), rest, started_ms);
    let body = read_body(body, &parts.headers, sim.cfg.max_body_bytes).await;
    let raw_query = parts.uri.query().unwrap_or_default().to_string();
    let req = SimRequest::new(
        parts.method,
        rest,
        parts.uri.query(),
        parts.headers,
        body.clone().unwrap_or_default(),
        peer.ip(),
    );
    let latency = Duration::from_millis(sim.cfg.latency_ms) + decision.latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut response = match (body, decision.reject) {
        (None, _) => vendor_error(
            api,
            &req,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large.",
        ),
        (_, Some(rejection)) => reject(api, &req, rejection),
        _ => handle_guarded(api, &sim, &req),
    };
    if let Some(info) = decision.limit {
        add_rate_limit_headers(api, &mut response, info);
    }
    if decision.spoil == Some(Spoil::Truncate) {
        response = truncate(response, &sim, api).await;
    }
    sim.recorder.record(Call {
        api,
        request: &req,
        raw_query: &raw_query,
        status: response.status().as_u16(),
        started_ms,
        finished_ms: now_ms(),
    });
    if !decision.response_delay.is_zero() {
        tokio::time::sleep(decision.response_delay).await;
    }
    if decision.spoil == Some(Spoil::Drop) {
        return dropped_connection();
    }
    response
}

/// The answer with its 2xx body cut in half: a complete HTTP answer (the length header says
/// the shorter size) whose JSON ends too soon, as a proxy with a full buffer or a broken
/// gzip stream delivers it. Other answers pass unchanged.
async fn truncate(response: Response, sim: &Sim, api: Api) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    if bytes.is_empty() {
        return Response::from_parts(parts, Body::from(bytes));
    }
    sim.faults.truncated(api);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)))
}

/// An answer whose body fails before its first byte: hyper then closes the connection, and
/// the client never sees a complete answer to a request the API has already handled.
fn dropped_connection() -> Response {
    let failure = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: connection dropped after the request was handled",
        ))
    });
    Response::new(Body::from_stream(failure))
}

/// `/auth0/api/v2/...` → (Auth0, `/api/v2/...`).
fn split_prefix(path: &str) -> Option<(Api, &str)> {
    let trimmed = path.strip_prefix('/')?;
    let (name, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    Api::from_name(name).map(|api| (api, rest))
}

/// The body, or None when it is larger than the cap.
async fn read_body(body: Body, headers: &HeaderMap, max: usize) -> Option<Bytes> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return None;
    }
    axum::body::to_bytes(body, max).await.ok()
}

/// A handler bug must cost one 500, never the server: a panic is caught here, and the
/// stores' mutexes ignore poisoning.
fn handle_guarded(api: Api, sim: &Sim, req: &SimRequest) -> Response {
    std::panic::catch_unwind(AssertUnwindSafe(|| handle(api, sim, req))).unwrap_or_else(|_| {
        vendor_error(
            api,
            req,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error.",
        )
    })
}

fn handle(api: Api, sim: &Sim, req: &SimRequest) -> Response {
    match api {
        Api::Boruta => boruta::handle(sim, req),
        Api::Auth0 => auth0::handle(sim, req),
        Api::Xelion => xelion::handle(sim, req),
        Api::Vcd => vcd::handle(sim, req),
        Api::Entrust => entrust::handle(sim, req),
    }
}

fn vendor_error(api: Api, req: &SimRequest, status: StatusCode, message: &str) -> Response {
    match api {
        Api::Boruta => boruta::error(status, message),
        Api::Auth0 => auth0::error(status, message),
        Api::Xelion => xelion::error(req, status, message),
        Api::Vcd => vcd::error(status, message),
        Api::Entrust => entrust::error(status, message),
    }
}

fn reject(api: Api, req: &SimRequest, rejection: Rejection) -> Response {
    match rejection {
        Rejection::TooManyRequests(info) => match api {
            Api::Boruta => boruta::too_many_requests(),
            Api::Auth0 => auth0::too_many_requests(info),
            Api::Xelion => xelion::too_many_requests(req),
            _ => vendor_error(
                api,
                req,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests.",
            ),
        },
        Rejection::Injected(status) => vendor_error(api, req, status, "Injected fault."),
        Rejection::Html(status) => proxy_page(status),
    }
}

/// The page a reverse proxy (nginx here) answers with when it cannot or will not reach the
/// API: HTML, not the vendor's JSON.
fn proxy_page(status: StatusCode) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(Body::from(page));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html"),
    );
    response
}

fn add_rate_limit_headers(api: Api, response: &mut Response, info: faults::LimitInfo) {
    if api == Api::Auth0 {
        auth0::add_rate_limit_headers(response, info);
    }
}
