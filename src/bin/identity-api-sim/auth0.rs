//! Auth0: `/oauth/token` (client credentials for the Management API) and the organization
//! connections of Management API v2, both the current family
//! (`/api/v2/organizations/{id}/connections`) and the legacy `enabled_connections` one.

use std::collections::{BTreeMap, HashMap};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::auth::{Subject, TokenError};
use crate::faults::LimitInfo;
use crate::state::Sim;
use crate::wire::{
    Api, Locked, SimRequest, empty, json_response, now_ms, random_string, set_header, type_name,
};

/// Scopes granted to the sim's client (the Management API grants what the client may have).
const SCOPES: &str = "read:organizations read:organization_connections \
                      create:organization_connections update:organization_connections \
                      delete:organization_connections read:connections";
const MAX_PER_PAGE: u64 = 100;

#[derive(Clone)]
struct Connection {
    name: String,
    strategy: String,
}

#[derive(Clone)]
struct OrgConnection {
    connection_id: String,
    /// The settable fields; unset optional ones are absent.
    fields: Map<String, Value>,
    /// When the API enabled it (0: seeded), for reads that lag behind (`readLagMs`).
    created_ms: u64,
}

#[derive(Default)]
pub struct Store {
    organizations: BTreeMap<String, Value>,
    connections: BTreeMap<String, Connection>,
    /// Per organization, in the order the connections were enabled.
    org_connections: HashMap<String, Vec<OrgConnection>>,
}

/// Defaults of a new organization connection [I]: show_as_button true and
/// is_signup_enabled false as documented; is_enabled true; access level "none" (which is
/// also what a PATCH with `null` resets it to, so null is never returned).
fn defaults() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("assign_membership_on_login".into(), false.into());
    m.insert("show_as_button".into(), true.into());
    m.insert("is_signup_enabled".into(), false.into());
    m.insert("organization_access_level".into(), "none".into());
    m.insert("is_enabled".into(), true.into());
    m
}

const ACCESS_LEVELS: &[&str] = &["none", "readonly", "limited", "full"];
const FIELDS: &[&str] = &[
    "organization_connection_name",
    "assign_membership_on_login",
    "show_as_button",
    "is_signup_enabled",
    "organization_access_level",
    "is_enabled",
];
/// The legacy `enabled_connections` family knows only these.
const LEGACY_FIELDS: &[&str] = &[
    "assign_membership_on_login",
    "show_as_button",
    "is_signup_enabled",
];

impl Store {
    fn view(&self, oc: &OrgConnection, legacy: bool) -> Value {
        let mut out = Map::new();
        out.insert("connection_id".into(), oc.connection_id.clone().into());
        for (k, v) in &oc.fields {
            if !legacy || LEGACY_FIELDS.contains(&k.as_str()) {
                out.insert(k.clone(), v.clone());
            }
        }
        if let Some(c) = self.connections.get(&oc.connection_id) {
            out.insert(
                "connection".into(),
                json!({"name": c.name, "strategy": c.strategy}),
            );
        }
        Value::Object(out)
    }

    pub fn seed(&mut self, seed: &Value) -> Result<(), String> {
        for org in seed["organizations"].as_array().into_iter().flatten() {
            let mut org = org
                .as_object()
                .cloned()
                .ok_or("auth0.organizations[] must be objects")?;
            let id = str_or(&org, "id", || format!("org_{}", random_string(16)));
            org.insert("id".into(), id.clone().into());
            org.entry("name")
                .or_insert_with(|| id.to_lowercase().into());
            self.organizations.insert(id, Value::Object(org));
        }
        for conn in seed["connections"].as_array().into_iter().flatten() {
            let conn = conn
                .as_object()
                .ok_or("auth0.connections[] must be objects")?;
            let id = str_or(conn, "id", || format!("con_{}", random_string(16)));
            let name = str_or(conn, "name", || id.clone());
            let strategy = str_or(conn, "strategy", || "auth0".into());
            self.connections.insert(id, Connection { name, strategy });
        }
        for oc in seed["organizationConnections"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let oc = oc
                .as_object()
                .ok_or("auth0.organizationConnections[] must be objects")?;
            let org = oc
                .get("organization_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let conn = oc
                .get("connection_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !self.organizations.contains_key(org) || !self.connections.contains_key(conn) {
                return Err(format!(
                    "auth0 organization connection {org}/{conn}: seed the organization and the connection too"
                ));
            }
            validate_fields(oc, FIELDS, &["organization_id", "connection_id"])?;
            let mut fields = defaults();
            apply(&mut fields, oc);
            let list = self.org_connections.entry(org.to_string()).or_default();
            list.retain(|c| c.connection_id != conn);
            list.push(OrgConnection {
                connection_id: conn.to_string(),
                fields,
                created_ms: 0,
            });
        }
        Ok(())
    }

    pub fn dump(&self) -> Value {
        let connections: Vec<Value> = self
            .connections
            .iter()
            .map(|(id, c)| json!({"id": id, "name": c.name, "strategy": c.strategy}))
            .collect();
        let mut org_connections = vec![];
        for org in self.organizations.keys() {
            for oc in self.org_connections.get(org).into_iter().flatten() {
                let mut v = self.view(oc, false);
                v.as_object_mut().map(|m| m.remove("connection"));
                v["organization_id"] = org.clone().into();
                org_connections.push(v);
            }
        }
        let organizations: Vec<&Value> = self.organizations.values().collect();
        json!({
            "organizations": organizations,
            "connections": connections,
            "organizationConnections": org_connections,
        })
    }
}

fn str_or(map: &Map<String, Value>, key: &str, default: impl FnOnce() -> String) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .map_or_else(default, str::to_string)
}

/// Applies validated fields; `null` resets a field to its default (absent for the name).
fn apply(fields: &mut Map<String, Value>, body: &Map<String, Value>) {
    for key in FIELDS {
        match body.get(*key) {
            None => {}
            Some(Value::Null) => match defaults().remove(*key) {
                Some(default) => {
                    fields.insert(key.to_string(), default);
                }
                None => {
                    fields.remove(*key);
                }
            },
            Some(v) => {
                fields.insert(key.to_string(), v.clone());
            }
        }
    }
}

/// Checks a POST/PATCH body against the documented schema; the error is Auth0's message.
fn validate_fields(
    body: &Map<String, Value>,
    allowed: &[&str],
    extra: &[&str],
) -> Result<(), String> {
    let payload = |detail: String| format!("Payload validation error: {detail}");
    if let Some(key) = body
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && !extra.contains(&k.as_str()))
    {
        return Err(payload(format!(
            "'Additional properties not allowed: {key}'."
        )));
    }
    for (key, value) in body {
        let expected = match key.as_str() {
            "assign_membership_on_login" | "show_as_button" | "is_signup_enabled" => "boolean",
            "is_enabled" => "boolean,null",
            "organization_connection_name" | "organization_access_level" => "string,null",
            "connection_id" => "string",
            _ => continue,
        };
        let found = type_name(value);
        if !expected.split(',').any(|t| t == found) {
            let message =
                format!("'Expected type {expected} but found type {found}' on property {key}.");
            return Err(payload(message));
        }
        match (key.as_str(), value) {
            ("organization_connection_name", Value::String(s)) => {
                if s.is_empty() || s.chars().count() > 50 {
                    return Err(payload(format!(
                        "'String length must be between 1 and 50 ({} chars)' on property {key}.",
                        s.chars().count()
                    )));
                }
                if s.chars().any(char::is_whitespace) {
                    return Err(payload(format!(
                        "'String does not match pattern ^[^\\s]+$' on property {key}."
                    )));
                }
            }
            ("organization_access_level", Value::String(s))
                if !ACCESS_LEVELS.contains(&s.as_str()) =>
            {
                return Err(payload(format!(
                    "'No enum match for: \"{s}\"' on property {key}."
                )));
            }
            ("connection_id", Value::String(s)) if s.is_empty() || s.len() > 50 => {
                return Err(payload(format!(
                    "'String length must be between 1 and 50' on property {key}."
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

// ---- responses ----

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

fn api_error(status: StatusCode, message: &str, error_code: &str) -> Response {
    json_response(
        status,
        &json!({"statusCode": status.as_u16(), "error": reason(status), "message": message, "errorCode": error_code}),
    )
}

/// A generic error (injected fault, body too large, ...) in Auth0's shape.
pub fn error(status: StatusCode, message: &str) -> Response {
    let code = reason(status).to_ascii_lowercase().replace(' ', "_");
    api_error(status, message, &code)
}

/// 401s carry `attributes` instead of an errorCode.
fn unauthorized(message: &str) -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"statusCode": 401, "error": "Unauthorized", "message": message, "attributes": {"error": message}}),
    )
}

pub fn too_many_requests(info: LimitInfo) -> Response {
    let mut response = api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "Global limit has been reached",
        "too_many_requests",
    );
    add_rate_limit_headers(&mut response, info);
    let retry_after = info
        .reset
        .saturating_sub(crate::wire::now_ms() / 1000)
        .max(1);
    set_header(&mut response, "retry-after", &retry_after.to_string());
    response
}

/// Auth0 sends its rate-limit headers on every answer, not only on 429s.
pub fn add_rate_limit_headers(response: &mut Response, info: LimitInfo) {
    set_header(response, "x-ratelimit-limit", &info.limit.to_string());
    set_header(
        response,
        "x-ratelimit-remaining",
        &info.remaining.to_string(),
    );
    set_header(response, "x-ratelimit-reset", &info.reset.to_string());
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

// ---- routing ----

pub fn handle(sim: &Sim, req: &SimRequest) -> Response {
    let segs = req.segs();
    match (segs.as_slice(), &req.method) {
        (["oauth", "token"], &Method::POST) => token(sim, req),
        (["api", "v2", "organizations"], &Method::GET) => {
            if let Err(response) = authorize(sim, req) {
                return response;
            }
            organizations(&sim.auth0.locked(), req)
        }
        (["api", "v2", "organizations", org, rest @ ..], _) => {
            let (legacy, rest) = match rest {
                ["connections", rest @ ..] => (false, rest),
                ["enabled_connections", rest @ ..] => (true, rest),
                _ => return error(StatusCode::NOT_FOUND, "Not Found"),
            };
            if let Err(response) = authorize(sim, req) {
                return response;
            }
            org_connections(sim, req, org, rest, legacy)
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn token(sim: &Sim, req: &SimRequest) -> Response {
    let Ok(params) = req.form_or_json() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid request body",
        );
    };
    let param = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
    if param("grant_type").is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: grant_type",
        );
    }
    if !sim.client_ok(param("client_id"), param("client_secret")) {
        return oauth_error(StatusCode::UNAUTHORIZED, "access_denied", "Unauthorized");
    }
    if param("grant_type") != "client_credentials" {
        let description = format!(
            "Grant type '{}' not allowed for the client.",
            param("grant_type")
        );
        return oauth_error(StatusCode::FORBIDDEN, "unauthorized_client", &description);
    }
    // The tenant's domain is whatever host the client used, so any `.../api/v2/` audience is
    // the Management API here.
    let audience = param("audience");
    if audience.is_empty() {
        let description =
            "No audience parameter was provided, and no default audience has been configured";
        return oauth_error(StatusCode::FORBIDDEN, "access_denied", description);
    }
    if !audience.trim_end_matches('/').ends_with("/api/v2") {
        let description = format!("Service not enabled within domain: {audience}");
        return oauth_error(StatusCode::FORBIDDEN, "access_denied", &description);
    }
    let ttl = sim.cfg.token_ttl_ms;
    let scopes = SCOPES.split_whitespace().map(str::to_string).collect();
    let (access_token, _) = sim.tokens.issue(Api::Auth0, ttl, scopes, Subject::Client);
    json_response(
        StatusCode::OK,
        &json!({"access_token": access_token, "scope": SCOPES, "expires_in": ttl / 1000, "token_type": "Bearer"}),
    )
}

fn authorize(sim: &Sim, req: &SimRequest) -> Result<(), Response> {
    match sim.tokens.check(Api::Auth0, req.bearer()) {
        Ok(_) => Ok(()),
        Err(TokenError::Missing) => Err(unauthorized("Missing authentication")),
        Err(TokenError::Invalid) => Err(unauthorized("Invalid token")),
        Err(TokenError::Expired) => Err(unauthorized(
            "Expired token received for JSON Web Token validation",
        )),
    }
}

fn org_connections(
    sim: &Sim,
    req: &SimRequest,
    org: &str,
    rest: &[&str],
    legacy: bool,
) -> Response {
    if org.is_empty() || org.chars().count() > 50 {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Path validation error: 'String is too long (max 50)' on property id (Organization identifier).",
            "invalid_uri",
        );
    }
    let body = match req.json() {
        Ok(body) => body,
        Err(_) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "Invalid request payload JSON format",
                "invalid_body",
            );
        }
    };
    let mut store = sim.auth0.locked();
    if !store.organizations.contains_key(org) {
        return api_error(
            StatusCode::NOT_FOUND,
            "No organization found by that id or name",
            "inexistent_organization",
        );
    }
    let now = now_ms();
    let seen = |oc: &OrgConnection| !sim.faults.hides(Api::Auth0, oc.created_ms, now);
    match (rest, &req.method) {
        ([], &Method::GET) => list(&store, req, org, legacy, seen),
        ([], &Method::POST) => create(&mut store, org, body, legacy),
        ([conn], &Method::GET) => match find(&store, org, conn).filter(|oc| seen(oc)) {
            Some(oc) => json_response(StatusCode::OK, &store.view(oc, legacy)),
            None => not_enabled(),
        },
        ([conn], &Method::PATCH) => update(sim, &mut store, org, conn, body, legacy),
        ([conn], &Method::DELETE) => {
            let list = store.org_connections.entry(org.to_string()).or_default();
            let before = list.len();
            list.retain(|c| c.connection_id != *conn);
            if list.len() == before {
                not_enabled()
            } else {
                empty(StatusCode::NO_CONTENT)
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn find<'a>(store: &'a Store, org: &str, conn: &str) -> Option<&'a OrgConnection> {
    store
        .org_connections
        .get(org)?
        .iter()
        .find(|c| c.connection_id == conn)
}

fn not_enabled() -> Response {
    api_error(
        StatusCode::NOT_FOUND,
        "No connection found by that id for this organization",
        "inexistent_organization_connection",
    )
}

/// A page of a list as Auth0 answers one (offset pagination): the bare array, or with
/// `include_totals=true` the items under `key` with start, limit and total.
fn page_of(req: &SimRequest, key: &str, all: Vec<Value>) -> Response {
    let (page, per_page, include_totals) = match page_params(req) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let total = all.len();
    let items: Vec<Value> = all
        .into_iter()
        .skip(page.saturating_mul(per_page) as usize)
        .take(per_page as usize)
        .collect();
    if !include_totals {
        return json_response(StatusCode::OK, &Value::Array(items));
    }
    json_response(
        StatusCode::OK,
        &json!({key: items, "start": page * per_page, "limit": per_page, "total": total}),
    )
}

/// `GET /api/v2/organizations`: every organization, by id, a page at a time.
fn organizations(store: &Store, req: &SimRequest) -> Response {
    let all = store.organizations.values().cloned().collect();
    page_of(req, "organizations", all)
}

/// A page of the organization's connections; `seen` leaves out those a lagging read misses.
fn list(
    store: &Store,
    req: &SimRequest,
    org: &str,
    legacy: bool,
    seen: impl Fn(&OrgConnection) -> bool,
) -> Response {
    let all: Vec<Value> = store
        .org_connections
        .get(org)
        .into_iter()
        .flatten()
        .filter(|oc| seen(oc))
        .map(|oc| store.view(oc, legacy))
        .collect();
    let key = if legacy {
        "enabled_connections"
    } else {
        "connections"
    };
    page_of(req, key, all)
}

/// `page`, `per_page` and `include_totals`, checked as Auth0 checks them.
#[allow(clippy::result_large_err)]
fn page_params(req: &SimRequest) -> Result<(u64, u64, bool), Response> {
    let number = |name: &str, default: u64| match req.query_param(name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().map_err(|_| name.to_string()),
    };
    let (page, per_page) = match (number("page", 0), number("per_page", 50)) {
        (Ok(page), Ok(per_page)) if (1..=MAX_PER_PAGE).contains(&per_page) => (page, per_page),
        (Err(name), _) | (_, Err(name)) => {
            return Err(invalid_query(&format!(
                "'Expected type integer' on property {name}"
            )));
        }
        _ => {
            return Err(invalid_query(&format!(
                "'Value must be between 1 and {MAX_PER_PAGE}' on property per_page"
            )));
        }
    };
    let include_totals = match req.query_param("include_totals") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(invalid_query(
                "'Expected type boolean' on property include_totals",
            ));
        }
    };
    Ok((page, per_page, include_totals))
}

fn invalid_query(detail: &str) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        &format!("Query validation error: {detail}."),
        "invalid_query_string",
    )
}

fn body_object(body: Option<Value>) -> Result<Map<String, Value>, Response> {
    match body {
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(api_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Payload validation error: 'Expected type object but found type {}'.",
                type_name(&other)
            ),
            "invalid_body",
        )),
        None => Ok(Map::new()),
    }
}

fn create(store: &mut Store, org: &str, body: Option<Value>, legacy: bool) -> Response {
    let body = match body_object(body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let allowed = if legacy { LEGACY_FIELDS } else { FIELDS };
    if let Err(message) = validate_fields(&body, allowed, &["connection_id"]) {
        return api_error(StatusCode::BAD_REQUEST, &message, "invalid_body");
    }
    let Some(conn) = body.get("connection_id").and_then(Value::as_str) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Payload validation error: 'Missing required property: connection_id'.",
            "invalid_body",
        );
    };
    if !store.connections.contains_key(conn) {
        return api_error(
            StatusCode::NOT_FOUND,
            "No connection found by that id",
            "inexistent_connection",
        );
    }
    if find(store, org, conn).is_some() {
        // [I] the code and text of this 409 are not documented.
        return api_error(
            StatusCode::CONFLICT,
            "The connection is already enabled for this organization.",
            "connection_already_enabled",
        );
    }
    let mut fields = defaults();
    apply(&mut fields, &body);
    let oc = OrgConnection {
        connection_id: conn.to_string(),
        fields,
        created_ms: now_ms(),
    };
    let view = store.view(&oc, legacy);
    store
        .org_connections
        .entry(org.to_string())
        .or_default()
        .push(oc);
    json_response(StatusCode::CREATED, &view)
}

fn update(
    sim: &Sim,
    store: &mut Store,
    org: &str,
    conn: &str,
    body: Option<Value>,
    legacy: bool,
) -> Response {
    let body = match body_object(body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let allowed = if legacy { LEGACY_FIELDS } else { FIELDS };
    if let Err(message) = validate_fields(&body, allowed, &[]) {
        return api_error(StatusCode::BAD_REQUEST, &message, "invalid_body");
    }
    if body.is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "Payload validation error: 'Too few properties defined (0), minimum 1'.",
            "invalid_body",
        );
    }
    let Some(oc) = store
        .org_connections
        .get_mut(org)
        .and_then(|list| list.iter_mut().find(|c| c.connection_id == conn))
    else {
        return not_enabled();
    };
    let before = oc.fields.clone();
    apply(&mut oc.fields, &body);
    sim.faults.keep_ignored(Api::Auth0, &before, &mut oc.fields);
    let oc = oc.clone();
    json_response(StatusCode::OK, &store.view(&oc, legacy))
}
