//! Xelion REST API v1: session login/renew/logout under `/api/v1/{tenant}/me/` and the
//! authentication settings singleton `/api/v1/{tenant}/server/authentication`, changed by
//! PATCH operation lists.
//!
//! Choices where the docs are silent [I]:
//! - Tenant `master` always exists; other tenants exist once seeded (unknown → 404).
//! - Error codes: 10001 wrong credentials (401), 10002 missing/invalid/expired session
//!   (401), 10004 invalid request or operation (400), 10005 second login for the same user
//!   and userSpace while a session is live (401), 10006 unknown tenant, OID or member (404),
//!   10400 too many requests (429, no headers).
//! - PATCH answers 204 No Content; it is atomic (an invalid operation changes nothing).
//! - `add` of an OID that is already a member fails (add is not idempotent); `remove` unlinks
//!   the member, the OpenID connection object itself stays in the tenant; editing a member
//!   (`replace /openIdConnections/<oid>/<field>`) needs it to be a member.
//! - As the document's examples show, the virtual id of an `add` is a number ('1'; anything
//!   else is refused, 10004), and members are edited and removed by their OID only: a `replace`
//!   or `remove` through a virtual id is refused (10004), also within the PATCH that added it.
//! - A renewal token stays usable until the next renew, login or logout of its session, even
//!   after the session's authentication token expired; renew issues a new pair.
//! - `validUntil` is an RFC 3339 UTC timestamp.

use std::collections::{BTreeMap, HashMap};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::auth::{Subject, TokenError};
use crate::state::Sim;
use crate::wire::{
    Api, Locked, SimRequest, empty, iso8601, json_response, random_string, type_name,
};

const MAX_STRING: usize = 4000;
const MAX_USER_SPACE: usize = 200;
const STRING_FIELDS: &[&str] = &["code", "securityDomain", "domainServer1", "domainServer2"];
const BOOL_FIELDS: &[&str] = &["synchronizeDomainTime"];
const INT_FIELDS: &[&str] = &[
    "tokenRetentionDays",
    "minimumPasswordLength",
    "maxNumberOfFalseLogins",
];
const MEMBER_FIELDS: &[&str] = &["openIdId", "openIdProvider", "liveSyncOn", "openIdGroupId"];

#[derive(Clone)]
struct Tenant {
    /// The scalar fields of the authentication object (oid and objectType included).
    auth: Map<String, Value>,
    /// OIDs of the OpenID connections linked to the authentication object, in order.
    members: Vec<String>,
    /// Every OpenID connection object of the tenant, by OID.
    openid: BTreeMap<String, Map<String, Value>>,
}

impl Tenant {
    fn new() -> Tenant {
        let auth = json!({"oid": new_oid(), "objectType": "Authentication", "code": null,
            "securityDomain": "", "domainServer1": "", "domainServer2": "",
            "synchronizeDomainTime": false, "tokenRetentionDays": 30,
            "minimumPasswordLength": 8, "maxNumberOfFalseLogins": 5});
        Tenant {
            auth: auth.as_object().cloned().unwrap_or_default(),
            members: vec![],
            openid: BTreeMap::new(),
        }
    }

    fn view(&self) -> Value {
        let mut out = self.auth.clone();
        let members: Vec<Value> = self
            .members
            .iter()
            .filter_map(|oid| self.openid.get(oid).cloned().map(Value::Object))
            .collect();
        out.insert("openIdConnections".into(), members.into());
        Value::Object(out)
    }
}

fn new_oid() -> String {
    rand::rng()
        .random_range(1_000_000_000u64..10_000_000_000)
        .to_string()
}

struct Session {
    auth_token: String,
    renewal_token: String,
}

pub struct Store {
    tenants: BTreeMap<String, Tenant>,
    /// Sessions by (tenant, userName, userSpace).
    sessions: HashMap<(String, String, String), Session>,
}

impl Default for Store {
    fn default() -> Self {
        let mut tenants = BTreeMap::new();
        tenants.insert("master".to_string(), Tenant::new());
        Store {
            tenants,
            sessions: HashMap::new(),
        }
    }
}

impl Store {
    pub fn seed(&mut self, seed: &Value) -> Result<(), String> {
        for item in seed["tenants"].as_array().into_iter().flatten() {
            let name = item["name"]
                .as_str()
                .ok_or("xelion.tenants[].name is required")?;
            let tenant = self
                .tenants
                .entry(name.to_string())
                .or_insert_with(Tenant::new);
            for conn in item["openIdConnections"].as_array().into_iter().flatten() {
                let mut conn = conn
                    .as_object()
                    .cloned()
                    .ok_or("xelion openIdConnections[] must be objects")?;
                let oid = conn
                    .get("oid")
                    .and_then(Value::as_str)
                    .map_or_else(new_oid, str::to_string);
                conn.insert("oid".into(), oid.clone().into());
                conn.insert("objectType".into(), "OpenIdConnection".into());
                for field in MEMBER_FIELDS {
                    conn.entry(field.to_string()).or_insert(Value::Null);
                }
                tenant.openid.insert(oid, conn);
            }
            if let Some(auth) = item.get("authentication") {
                let auth = auth
                    .as_object()
                    .ok_or("xelion authentication must be an object")?;
                for (key, value) in auth {
                    if key == "openIdConnections" {
                        tenant.members = member_oids(value)?;
                    } else {
                        tenant.auth.insert(key.clone(), value.clone());
                    }
                }
            }
            if let Some(missing) = tenant
                .members
                .iter()
                .find(|oid| !tenant.openid.contains_key(*oid))
            {
                return Err(format!(
                    "xelion tenant {name}: member {missing} is not one of its openIdConnections"
                ));
            }
        }
        Ok(())
    }

    pub fn dump(&self) -> Value {
        let tenants: Vec<Value> = self
            .tenants
            .iter()
            .map(|(name, t)| {
                let mut auth = t.auth.clone();
                auth.insert("openIdConnections".into(), json!(t.members));
                let conns: Vec<&Map<String, Value>> = t.openid.values().collect();
                json!({"name": name, "authentication": auth, "openIdConnections": conns})
            })
            .collect();
        json!({"tenants": tenants})
    }
}

/// Seeded members may be given as OIDs or as objects with an `oid`.
fn member_oids(value: &Value) -> Result<Vec<String>, String> {
    let items = value
        .as_array()
        .ok_or("xelion authentication.openIdConnections must be an array")?;
    items
        .iter()
        .map(|m| {
            m.as_str()
                .or_else(|| m["oid"].as_str())
                .map(str::to_string)
                .ok_or_else(|| "xelion members must be OIDs".to_string())
        })
        .collect()
}

// ---- responses ----

fn xelion_error(req: &SimRequest, status: StatusCode, code: u32, message: &str) -> Response {
    let info = format!("resource={} {}", req.method, req.path);
    json_response(
        status,
        &json!({"errorCode": code, "message": message, "info": info}),
    )
}

/// A generic error (injected fault, body too large, ...) in Xelion's shape.
pub fn error(req: &SimRequest, status: StatusCode, message: &str) -> Response {
    let code = match status.as_u16() {
        401 => 10002,
        404 => 10006,
        429 => 10400,
        s if s >= 500 => 10000,
        _ => 10004,
    };
    xelion_error(req, status, code, message)
}

pub fn too_many_requests(req: &SimRequest) -> Response {
    let message = "Too many concurrent requests in this session.";
    xelion_error(req, StatusCode::TOO_MANY_REQUESTS, 10400, message)
}

fn invalid(req: &SimRequest, message: &str) -> Response {
    xelion_error(req, StatusCode::BAD_REQUEST, 10004, message)
}

// ---- routing ----

pub fn handle(sim: &Sim, req: &SimRequest) -> Response {
    let segs = req.segs();
    let (["api", "v1", tenant, rest @ ..], method) = (segs.as_slice(), &req.method) else {
        return error(req, StatusCode::NOT_FOUND, "Unknown resource.");
    };
    let known = matches!(
        (rest, method),
        (["me", "login" | "renew" | "logout"], &Method::POST)
            | (["server", "authentication"], &Method::GET | &Method::PATCH)
    );
    if !known {
        return error(req, StatusCode::NOT_FOUND, "Unknown resource.");
    }
    if !sim.xelion.locked().tenants.contains_key(*tenant) {
        return xelion_error(req, StatusCode::NOT_FOUND, 10006, "Unknown tenant.");
    }
    let body = match req.json() {
        Ok(body) => body,
        Err(e) => return invalid(req, &e),
    };
    match rest {
        [_, "login"] => login(sim, req, tenant, body),
        [_, "renew"] => renew(sim, req, tenant, body),
        _ => {
            let token = match authorize(sim, req, tenant) {
                Ok(token) => token,
                Err(response) => return response,
            };
            match rest {
                [_, "logout"] => logout(sim, tenant, &token),
                _ if req.method == Method::GET => {
                    let store = sim.xelion.locked();
                    json_response(
                        StatusCode::OK,
                        &json!({"object": store.tenants[*tenant].view()}),
                    )
                }
                _ => patch(sim, req, tenant, body),
            }
        }
    }
}

fn login(sim: &Sim, req: &SimRequest, tenant: &str, body: Option<Value>) -> Response {
    let field = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let (user, password, user_space) = (field("userName"), field("password"), field("userSpace"));
    if user_space.is_empty() || user_space.chars().count() > MAX_USER_SPACE {
        let message =
            format!("userSpace is required and at most {MAX_USER_SPACE} characters long.");
        return invalid(req, &message);
    }
    if !sim.client_ok(user, password) {
        return xelion_error(
            req,
            StatusCode::UNAUTHORIZED,
            10001,
            "Invalid user name or password.",
        );
    }
    let key = (tenant.to_string(), user.to_string(), user_space.to_string());
    let mut store = sim.xelion.locked();
    if let Some(existing) = store.sessions.get(&key)
        && sim
            .tokens
            .check(Api::Xelion, Some(&existing.auth_token))
            .is_ok()
    {
        let message = "This user is already logged in with this userSpace; renew that session.";
        return xelion_error(req, StatusCode::UNAUTHORIZED, 10005, message);
    }
    let (session, reply) = new_session(sim, tenant);
    store.sessions.insert(key, session);
    json_response(StatusCode::OK, &reply)
}

fn new_session(sim: &Sim, tenant: &str) -> (Session, Value) {
    let subject = Subject::Xelion {
        tenant: tenant.to_string(),
    };
    let (auth_token, valid_until) =
        sim.tokens
            .issue(Api::Xelion, sim.cfg.token_ttl_ms, vec![], subject);
    let renewal_token = random_string(48);
    let reply = json!({"authentication": auth_token, "renewalToken": renewal_token, "validUntil": iso8601(valid_until)});
    (
        Session {
            auth_token,
            renewal_token,
        },
        reply,
    )
}

fn renew(sim: &Sim, req: &SimRequest, tenant: &str, body: Option<Value>) -> Response {
    let Some(Value::String(renewal)) = body else {
        return invalid(req, "The body must be the renewal token as a JSON string.");
    };
    let mut store = sim.xelion.locked();
    let found = store
        .sessions
        .iter_mut()
        .find(|((t, _, _), s)| t == tenant && s.renewal_token == renewal);
    let Some((_, session)) = found else {
        return xelion_error(
            req,
            StatusCode::UNAUTHORIZED,
            10002,
            "Unknown or used renewal token.",
        );
    };
    sim.tokens.revoke(&session.auth_token);
    let (fresh, reply) = new_session(sim, tenant);
    *session = fresh;
    json_response(StatusCode::OK, &reply)
}

fn logout(sim: &Sim, tenant: &str, token: &str) -> Response {
    sim.tokens.revoke(token);
    let mut store = sim.xelion.locked();
    store
        .sessions
        .retain(|(t, _, _), s| !(t == tenant && s.auth_token == token));
    empty(StatusCode::NO_CONTENT)
}

/// `Authorization: xelion <token>`, for this tenant.
fn authorize(sim: &Sim, req: &SimRequest, tenant: &str) -> Result<String, Response> {
    let token = req
        .header("authorization")
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("xelion"))
        .map(|(_, token)| token.trim().to_string());
    let message = match sim.tokens.check(Api::Xelion, token.as_deref()) {
        Ok(t) => match t.subject {
            Subject::Xelion { tenant: ref t } if t == tenant => {
                return Ok(token.unwrap_or_default());
            }
            _ => "This session belongs to another tenant.",
        },
        Err(TokenError::Missing) => "Not authenticated: send Authorization: xelion <token>.",
        Err(TokenError::Invalid) => "Invalid authentication token.",
        Err(TokenError::Expired) => "The session has expired; renew it.",
    };
    Err(xelion_error(req, StatusCode::UNAUTHORIZED, 10002, message))
}

// ---- PATCH operations ----

/// Why an operation failed: 400/10004 or 404/10006.
enum OpError {
    Invalid(String),
    NotFound(String),
}

fn patch(sim: &Sim, req: &SimRequest, tenant: &str, body: Option<Value>) -> Response {
    let operations = match body.as_ref().and_then(|b| b.get("operations")) {
        Some(Value::Array(ops))
            if body
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|o| o.len() == 1) =>
        {
            ops.clone()
        }
        _ => return invalid(req, "The body must be {\"operations\": [...]}."),
    };
    let mut store = sim.xelion.locked();
    let mut draft = store.tenants[tenant].clone();
    let mut virtual_ids: HashMap<String, String> = HashMap::new();
    for (i, op) in operations.iter().enumerate() {
        if let Err(e) = apply(&mut draft, &mut virtual_ids, op) {
            return match e {
                OpError::Invalid(m) => invalid(req, &format!("operations[{i}]: {m}")),
                OpError::NotFound(m) => xelion_error(
                    req,
                    StatusCode::NOT_FOUND,
                    10006,
                    &format!("operations[{i}]: {m}"),
                ),
            };
        }
    }
    sim.faults
        .keep_ignored(Api::Xelion, &store.tenants[tenant].auth, &mut draft.auth);
    store.tenants.insert(tenant.to_string(), draft);
    empty(StatusCode::NO_CONTENT)
}

fn apply(
    tenant: &mut Tenant,
    virtual_ids: &mut HashMap<String, String>,
    op: &Value,
) -> Result<(), OpError> {
    let invalid = |m: &str| OpError::Invalid(m.to_string());
    let op = op
        .as_object()
        .ok_or_else(|| invalid("an operation must be an object"))?;
    if let Some(key) = op
        .keys()
        .find(|k| !["op", "path", "value"].contains(&k.as_str()))
    {
        return Err(OpError::Invalid(format!("unknown property {key}")));
    }
    let kind = op
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("op is required"))?;
    let path = op
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("path is required"))?;
    let value = op.get("value");
    let parts: Vec<String> = path
        .strip_prefix('/')
        .ok_or_else(|| invalid("path must start with /"))?
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (kind, parts.as_slice()) {
        ("replace", [field]) => replace_field(tenant, field, value),
        ("add", ["openIdConnections", virtual_id]) => {
            check_virtual_id(virtual_ids, virtual_id)?;
            let oid = value
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("add needs the OID of an OpenID connection as value"))?;
            if !tenant.openid.contains_key(oid) {
                return Err(OpError::NotFound(format!(
                    "no OpenID connection with OID {oid}"
                )));
            }
            if tenant.members.iter().any(|m| m == oid) {
                return Err(OpError::Invalid(format!(
                    "OpenID connection {oid} is already a member"
                )));
            }
            tenant.members.push(oid.to_string());
            virtual_ids.insert(virtual_id.to_string(), oid.to_string());
            Ok(())
        }
        ("remove", ["openIdConnections", member]) => {
            let oid = member_oid(tenant, virtual_ids, member)?;
            tenant.members.retain(|m| *m != oid);
            Ok(())
        }
        ("replace", ["openIdConnections", member, field]) => {
            let oid = member_oid(tenant, virtual_ids, member)?;
            let value = value.ok_or_else(|| invalid("replace needs a value"))?;
            check_member_field(field, value)?;
            if let Some(conn) = tenant.openid.get_mut(&oid) {
                conn.insert(field.to_string(), value.clone());
            }
            Ok(())
        }
        ("add" | "remove" | "replace", _) => Err(OpError::Invalid(format!(
            "unknown path {path} for op {kind}"
        ))),
        _ => Err(OpError::Invalid(format!(
            "unknown op {kind}: expected add, remove or replace"
        ))),
    }
}

/// The document's `add` uses a number ('1') as the virtual id, with the OID as the value.
fn check_virtual_id(virtual_ids: &HashMap<String, String>, id: &str) -> Result<(), OpError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OpError::Invalid(format!(
            "the virtual id {id:?} of an added OpenID connection must be a number, such as 1"
        )));
    }
    if virtual_ids.contains_key(id) {
        return Err(OpError::Invalid(format!(
            "the virtual id {id} is used twice in this PATCH"
        )));
    }
    Ok(())
}

/// A member addressed by its OID. The document edits and removes members by OID only: a
/// virtual id of this PATCH names no linked connection yet.
fn member_oid(
    tenant: &Tenant,
    virtual_ids: &HashMap<String, String>,
    key: &str,
) -> Result<String, OpError> {
    if virtual_ids.contains_key(key) {
        return Err(OpError::Invalid(format!(
            "{key} is the virtual id of a connection added in this PATCH: address a linked \
             OpenID connection by its OID"
        )));
    }
    if tenant.members.iter().any(|m| m == key) {
        Ok(key.to_string())
    } else {
        Err(OpError::NotFound(format!(
            "{key} is not a member of openIdConnections"
        )))
    }
}

fn replace_field(tenant: &mut Tenant, field: &str, value: Option<&Value>) -> Result<(), OpError> {
    let value = value.ok_or_else(|| OpError::Invalid("replace needs a value".into()))?;
    let ok = if STRING_FIELDS.contains(&field) {
        check_string(field, value)?;
        true
    } else if BOOL_FIELDS.contains(&field) {
        value.is_boolean()
    } else if INT_FIELDS.contains(&field) {
        value.as_u64().is_some_and(|n| n <= i32::MAX as u64)
    } else {
        return Err(OpError::Invalid(format!("unknown path /{field}")));
    };
    if !ok {
        return Err(OpError::Invalid(format!(
            "invalid value for /{field}: {}",
            type_name(value)
        )));
    }
    tenant.auth.insert(field.to_string(), value.clone());
    Ok(())
}

fn check_string(field: &str, value: &Value) -> Result<(), OpError> {
    match value {
        Value::Null => Ok(()),
        Value::String(s) if s.chars().count() <= MAX_STRING => Ok(()),
        Value::String(_) => Err(OpError::Invalid(format!(
            "{field} is longer than {MAX_STRING} characters"
        ))),
        other => Err(OpError::Invalid(format!(
            "{field} must be a string, not {}",
            type_name(other)
        ))),
    }
}

fn check_member_field(field: &str, value: &Value) -> Result<(), OpError> {
    match field {
        "liveSyncOn" if value.is_boolean() => Ok(()),
        "liveSyncOn" => Err(OpError::Invalid("liveSyncOn must be a boolean".into())),
        "openIdId" | "openIdProvider" | "openIdGroupId" => check_string(field, value),
        _ => Err(OpError::Invalid(format!(
            "unknown OpenID connection field {field}"
        ))),
    }
}
