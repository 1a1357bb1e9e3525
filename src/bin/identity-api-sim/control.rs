//! The `/_sim/*` endpoints tests and operators use to inspect and steer the simulator.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::FaultSpec;
use crate::state::Sim;
use crate::wire::{Api, json_response};

type Shared = State<Arc<Sim>>;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/state", get(state))
        .route("/_sim/calls", get(calls))
        .route("/_sim/log", get(log))
        .route(
            "/_sim/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_sim/reset", post(reset))
        .route("/_sim/seed", post(seed))
        .route("/_sim/tokens/expire", post(expire_tokens))
        // Seeds of thousands of objects are legitimately large.
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
}

fn bad_request(message: impl Into<String>) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": message.into()}))
}

fn ok() -> Response {
    json_response(StatusCode::OK, &json!({"ok": true}))
}

async fn state(State(sim): Shared) -> Response {
    json_response(StatusCode::OK, &sim.dump())
}

async fn calls(State(sim): Shared) -> Response {
    json_response(StatusCode::OK, &sim.recorder.calls())
}

#[derive(Deserialize)]
struct LogQuery {
    api: Option<String>,
    #[serde(default)]
    since: u64,
    limit: Option<usize>,
}

async fn log(State(sim): Shared, query: Result<Query<LogQuery>, QueryRejection>) -> Response {
    let Ok(Query(q)) = query else {
        return bad_request("query parameters: api=NAME, since=SEQ, limit=N");
    };
    if let Some(api) = &q.api
        && Api::from_name(api).is_none()
    {
        return bad_request(format!("unknown api {api:?}"));
    }
    let limit = q.limit.unwrap_or(usize::MAX);
    json_response(
        StatusCode::OK,
        &sim.recorder.log(q.api.as_deref(), q.since, limit),
    )
}

async fn get_faults(State(sim): Shared) -> Response {
    json_response(StatusCode::OK, &sim.faults.snapshot())
}

/// Accepts one fault object or an array of them.
async fn set_faults(State(sim): Shared, body: Bytes) -> Response {
    let specs: Vec<FaultSpec> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => match items.into_iter().map(serde_json::from_value).collect() {
            Ok(specs) => specs,
            Err(e) => return bad_request(format!("invalid fault: {e}")),
        },
        Ok(value) => match serde_json::from_value(value) {
            Ok(spec) => vec![spec],
            Err(e) => return bad_request(format!("invalid fault: {e}")),
        },
        Err(e) => return bad_request(format!("invalid JSON: {e}")),
    };
    for spec in specs {
        if let Err(e) = sim.faults.set(spec) {
            return bad_request(e);
        }
    }
    json_response(StatusCode::OK, &sim.faults.snapshot())
}

async fn clear_faults(State(sim): Shared) -> Response {
    sim.faults.clear();
    ok()
}

async fn reset(State(sim): Shared) -> Response {
    sim.reset();
    ok()
}

async fn seed(State(sim): Shared, body: Bytes) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("invalid JSON: {e}")),
    };
    match sim.seed(&value) {
        Ok(()) => json_response(StatusCode::OK, &sim.dump()),
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct ExpireQuery {
    api: Option<String>,
}

async fn expire_tokens(
    State(sim): Shared,
    query: Result<Query<ExpireQuery>, QueryRejection>,
) -> Response {
    let api = match query.ok().and_then(|Query(q)| q.api) {
        None => None,
        Some(name) => match Api::from_name(&name) {
            Some(api) => Some(api),
            None => return bad_request(format!("unknown api {name:?}")),
        },
    };
    let expired = sim.tokens.expire_all(api);
    json_response(StatusCode::OK, &json!({"expired": expired}))
}
