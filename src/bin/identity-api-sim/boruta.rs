//! Boruta: the OAuth server (`/oauth/token`) and the admin API for identity backends
//! (`/api/backends`), modelled on boruta-server's Phoenix controllers and Ecto changesets.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::auth::Subject;
use crate::boruta_schema;
use crate::state::Sim;
use crate::wire::{
    Api, Locked, SimRequest, empty, is_uuid, json_response, new_uuid, now_ms, set_header,
    status_code_name,
};

pub const ADMIN_SCOPE: &str = "identity-providers:manage:all";
const INTERNAL: &str = "Elixir.BorutaIdentity.Accounts.Internal";
const LDAP: &str = "Elixir.BorutaIdentity.Accounts.Ldap";
/// A fresh Boruta install has one internal backend, the default; ours has a fixed id.
pub const DEFAULT_BACKEND_ID: &str = "00000000-0000-0000-0000-000000000001";

const INTERNAL_FEATURES: &[&str] = &[
    "authenticable",
    "totpable",
    "webauthnable",
    "registrable",
    "user_editable",
    "confirmable",
    "reset_password",
    "consentable",
    "destroyable",
];
const LDAP_FEATURES: &[&str] = &[
    "authenticable",
    "totpable",
    "webauthnable",
    "consentable",
    "user_editable",
    "reset_password",
    "confirmable",
];

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Bool,
    Int,
    Map,
    ListOfMaps,
}

/// The fields the changeset casts, in the order the view renders them.
const FIELDS: &[(&str, Kind)] = &[
    ("id", Kind::Str),
    ("name", Kind::Str),
    ("type", Kind::Str),
    ("is_default", Kind::Bool),
    ("create_default_organization", Kind::Bool),
    ("metadata_fields", Kind::ListOfMaps),
    ("federated_servers", Kind::ListOfMaps),
    ("verifiable_credentials", Kind::ListOfMaps),
    ("verifiable_presentations", Kind::ListOfMaps),
    ("password_hashing_alg", Kind::Str),
    ("password_hashing_opts", Kind::Map),
    ("ldap_pool_size", Kind::Int),
    ("ldap_host", Kind::Str),
    ("ldap_user_rdn_attribute", Kind::Str),
    ("ldap_base_dn", Kind::Str),
    ("ldap_ou", Kind::Str),
    ("ldap_master_dn", Kind::Str),
    ("ldap_master_password", Kind::Str),
    ("smtp_from", Kind::Str),
    ("smtp_relay", Kind::Str),
    ("smtp_username", Kind::Str),
    ("smtp_password", Kind::Str),
    ("smtp_ssl", Kind::Bool),
    ("smtp_tls", Kind::Str),
    ("smtp_port", Kind::Int),
];

type Errors = BTreeMap<String, Vec<String>>;

fn add_error(errors: &mut Errors, field: &str, message: impl Into<String>) {
    errors
        .entry(field.to_string())
        .or_default()
        .push(message.into());
}

#[derive(Clone)]
struct Backend {
    seq: u64,
    fields: Map<String, Value>,
    role_ids: Vec<String>,
    /// Users registered in this backend (seeded); a backend with users cannot be deleted.
    users: u64,
    /// When the API created it (0: seeded), for reads that lag behind (`readLagMs`).
    created_ms: u64,
}

pub struct Store {
    backends: HashMap<String, Backend>,
    /// Roles that backends may link to: `{id, name, scopes:[{id, name}]}`.
    roles: BTreeMap<String, Value>,
    next_seq: u64,
    /// The /oauth/* limiter: the current UNIX second and requests per client IP in it.
    oauth_window: (u64, HashMap<IpAddr, u32>),
}

impl Default for Store {
    fn default() -> Self {
        let mut store = Store {
            backends: HashMap::new(),
            roles: BTreeMap::new(),
            next_seq: 0,
            oauth_window: (0, HashMap::new()),
        };
        let mut fields = defaults();
        fields.insert("id".into(), DEFAULT_BACKEND_ID.into());
        fields.insert("name".into(), "Default".into());
        fields.insert("is_default".into(), true.into());
        store.insert(fields, vec![], 0, 0);
        store
    }
}

/// Schema defaults of a new backend (`create_backend` starts from an internal backend).
fn defaults() -> Map<String, Value> {
    let mut m = Map::new();
    for (name, kind) in FIELDS {
        let value = match kind {
            Kind::ListOfMaps => json!([]),
            Kind::Map => json!({}),
            _ => Value::Null,
        };
        m.insert(name.to_string(), value);
    }
    m["type"] = INTERNAL.into();
    m["is_default"] = false.into();
    m["create_default_organization"] = false.into();
    m["ldap_pool_size"] = 5.into();
    m["password_hashing_alg"] = "argon2".into();
    m
}

impl Store {
    /// Stores a backend; `created_ms` is kept from an existing one.
    fn insert(
        &mut self,
        fields: Map<String, Value>,
        role_ids: Vec<String>,
        users: u64,
        created_ms: u64,
    ) {
        let id = fields["id"].as_str().unwrap_or_default().to_string();
        if fields["is_default"] == Value::Bool(true) {
            self.demote_defaults();
        }
        let (seq, created_ms) = match self.backends.get(&id) {
            Some(existing) => (existing.seq, existing.created_ms),
            None => {
                self.next_seq += 1;
                (self.next_seq, created_ms)
            }
        };
        self.backends.insert(
            id,
            Backend {
                seq,
                fields,
                role_ids,
                users,
                created_ms,
            },
        );
    }

    fn demote_defaults(&mut self) {
        for backend in self.backends.values_mut() {
            backend.fields["is_default"] = false.into();
        }
    }

    fn sorted(&self) -> Vec<&Backend> {
        let mut all: Vec<&Backend> = self.backends.values().collect();
        all.sort_by_key(|b| b.seq);
        all
    }

    fn view(&self, backend: &Backend) -> Value {
        let mut out = backend.fields.clone();
        // `get_backend_roles/1` joins the role links without an ORDER BY: Boruta answers in an
        // order of its own, here the roles' id order, whatever order the client sent.
        let mut role_ids: Vec<&String> = backend.role_ids.iter().collect();
        role_ids.sort();
        let roles: Vec<Value> = role_ids
            .into_iter()
            .filter_map(|id| self.roles.get(id).cloned())
            .collect();
        let features = if out["type"] == LDAP {
            LDAP_FEATURES
        } else {
            INTERNAL_FEATURES
        };
        out.insert("roles".into(), roles.into());
        out.insert("features".into(), json!(features));
        Value::Object(out)
    }

    /// Counts one /oauth/* request; false when this IP is over `limit` in the current second.
    fn oauth_allowed(&mut self, ip: IpAddr, limit: u32, now_ms: u64) -> bool {
        let second = now_ms / 1000;
        if self.oauth_window.0 != second {
            self.oauth_window = (second, HashMap::new());
        }
        let count = self.oauth_window.1.entry(ip).or_default();
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    pub fn seed(&mut self, seed: &Value) -> Result<(), String> {
        for role in seed["roles"].as_array().into_iter().flatten() {
            let id = role["id"].as_str().map_or_else(new_uuid, str::to_string);
            let scopes = role.get("scopes").cloned().unwrap_or(json!([]));
            let name = role["name"].clone();
            self.roles.insert(
                id.clone(),
                json!({"id": id, "name": name, "scopes": scopes}),
            );
        }
        for item in seed["backends"].as_array().into_iter().flatten() {
            let attrs = item
                .as_object()
                .ok_or("boruta.backends[] must be objects")?;
            let mut fields = self
                .backends
                .get(attrs.get("id").and_then(Value::as_str).unwrap_or_default())
                .map_or_else(defaults, |b| b.fields.clone());
            for (name, kind) in FIELDS {
                if let Some(v) = attrs.get(*name) {
                    let v =
                        cast(*kind, v).map_err(|_| format!("boruta backend: {name} is invalid"))?;
                    fields.insert(name.to_string(), v);
                }
            }
            let id = match fields["id"].as_str() {
                Some(id) if is_uuid(id) => id.to_string(),
                Some(id) => return Err(format!("boruta backend id {id:?} is not a UUID")),
                None => new_uuid(),
            };
            fields.insert("id".into(), id.into());
            let role_ids =
                role_ids(attrs.get("roles")).map_err(|e| format!("boruta backend: {e}"))?;
            let users = attrs.get("users").and_then(Value::as_u64).unwrap_or(0);
            self.insert(fields, role_ids, users, 0);
        }
        Ok(())
    }

    pub fn dump(&self) -> Value {
        let backends: Vec<Value> = self
            .sorted()
            .into_iter()
            .map(|b| {
                let mut v = self.view(b);
                v.as_object_mut().map(|m| m.remove("features"));
                v["users"] = b.users.into();
                v
            })
            .collect();
        let roles: Vec<&Value> = self.roles.values().collect();
        json!({"roles": roles, "backends": backends})
    }
}

// ---- responses in Boruta's shapes (BorutaAdminWeb.ErrorView / ChangesetView) ----

fn error_view(status: StatusCode, code: &str, message: &str, detail: &str) -> Response {
    json_response(
        status,
        &json!({"code": code, "message": message, "errors": {"resource": [detail]}}),
    )
}

fn bad_request() -> Response {
    error_view(
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "The requested with given parameters cannot be processed.",
        "the requested with given parameters cannot be processed.",
    )
}

fn not_found() -> Response {
    error_view(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource could not be found.",
        "the requested resource could not be found.",
    )
}

fn unauthorized() -> Response {
    error_view(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "You are unauthorized to access this resource.",
        "you are unauthorized to access this resource.",
    )
}

fn forbidden() -> Response {
    error_view(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "You are forbidden to access this resource.",
        "you are forbidden to access this resource.",
    )
}

fn unprocessable(errors: &Errors) -> Response {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({
            "code": "UNPROCESSABLE_ENTITY",
            "message": "Your request could not be processed.",
            "errors": errors,
        }),
    )
}

/// A generic error (injected fault, body too large, ...) in Boruta's shape.
pub fn error(status: StatusCode, message: &str) -> Response {
    let code = status_code_name(status);
    error_view(status, &code, message, &message.to_lowercase())
}

/// Boruta's only rate limiter (on /oauth/*) answers 429 with an empty body and no headers;
/// the simulator uses the same answer for injected 429s anywhere in this API.
pub fn too_many_requests() -> Response {
    empty(StatusCode::TOO_MANY_REQUESTS)
}

// ---- routing ----

pub fn handle(sim: &Sim, req: &SimRequest) -> Response {
    let segs = req.segs();
    match segs.as_slice() {
        ["oauth", rest @ ..] => oauth(sim, req, rest),
        ["api", "backends", rest @ ..] => admin(sim, req, rest),
        _ => not_found(),
    }
}

fn oauth(sim: &Sim, req: &SimRequest, rest: &[&str]) -> Response {
    let limit = sim.cfg.boruta_oauth_rate_limit;
    if limit > 0 && !sim.boruta.locked().oauth_allowed(req.peer, limit, now_ms()) {
        return too_many_requests();
    }
    match (rest, &req.method) {
        (["token"], &Method::POST) => token(sim, req),
        _ => not_found(),
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn token(sim: &Sim, req: &SimRequest) -> Response {
    let Ok(params) = req.form_or_json() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Request body is invalid.",
        );
    };
    let param = |name: &str| params.get(name).and_then(Value::as_str).map(str::to_string);
    let Some(grant_type) = param("grant_type") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Request body validation failed. Required property grant_type is missing at #.",
        );
    };
    let (client_id, client_secret) = req.basic_credentials().unwrap_or_else(|| {
        (
            param("client_id").unwrap_or_default(),
            param("client_secret").unwrap_or_default(),
        )
    });
    if !sim.client_ok(&client_id, &client_secret) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client_id or client_secret.",
        );
    }
    if grant_type != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Client do not support given grant type.",
        );
    }
    // The sim's client may request any scope; without `identity-providers:manage:all` the
    // admin API answers 403, as Boruta does.
    let scopes: Vec<String> = param("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let scope = scopes.join(" ");
    let ttl = sim.cfg.token_ttl_ms;
    let (access_token, _) = sim.tokens.issue(Api::Boruta, ttl, scopes, Subject::Client);
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": ttl / 1000,
            "scope": scope,
        }),
    )
}

fn admin(sim: &Sim, req: &SimRequest, rest: &[&str]) -> Response {
    // Phoenix parses the body before routing: malformed JSON is a 400 whatever the route.
    let body = match req.json() {
        Ok(body) => body,
        Err(_) => return bad_request(),
    };
    let known = matches!(
        (rest, &req.method),
        ([], &Method::GET | &Method::POST)
            | (
                [_],
                &Method::GET | &Method::PUT | &Method::PATCH | &Method::DELETE
            )
    );
    if !known {
        return not_found();
    }
    let token = match sim.tokens.check(Api::Boruta, req.bearer()) {
        Ok(token) => token,
        Err(_) => return unauthorized(),
    };
    if !token.scopes.iter().any(|s| s == ADMIN_SCOPE) {
        return forbidden();
    }
    // The backend params must sit under a "backend" key (a bare object is a 400).
    let params = body
        .as_ref()
        .and_then(|b| b.get("backend"))
        .and_then(Value::as_object);
    let mut store = sim.boruta.locked();
    let now = now_ms();
    let seen = |b: &Backend| !sim.faults.hides(Api::Boruta, b.created_ms, now);
    match (rest, &req.method) {
        ([], &Method::GET) => {
            let data: Vec<Value> = store
                .sorted()
                .into_iter()
                .filter(|b| seen(b))
                .map(|b| store.view(b))
                .collect();
            json_response(StatusCode::OK, &json!({"data": data}))
        }
        ([], _) => match params {
            Some(attrs) => create(&mut store, attrs),
            None => bad_request(),
        },
        ([id], _) if !is_uuid(id) => bad_request(),
        ([id], &Method::GET) => match store.backends.get(*id).filter(|b| seen(b)) {
            Some(b) => json_response(StatusCode::OK, &json!({"data": store.view(b)})),
            None => not_found(),
        },
        ([id], &Method::DELETE) => delete(&mut store, id),
        ([id], _) => match (store.backends.contains_key(*id), params) {
            (false, _) => not_found(),
            (true, None) => bad_request(),
            (true, Some(attrs)) => update(sim, &mut store, id, attrs),
        },
        _ => not_found(),
    }
}

fn create(store: &mut Store, attrs: &Map<String, Value>) -> Response {
    let mut current = defaults();
    current.insert("id".into(), new_uuid().into());
    let (mut fields, role_ids) = match changeset(store, &current, attrs, true) {
        Ok(ok) => ok,
        Err(errors) => return unprocessable(&errors),
    };
    if fields["id"].is_null() {
        fields.insert("id".into(), new_uuid().into());
    }
    let id = fields["id"].as_str().unwrap_or_default().to_string();
    store.insert(fields, role_ids, 0, now_ms());
    let mut response = json_response(
        StatusCode::CREATED,
        &json!({"data": store.view(&store.backends[&id])}),
    );
    set_header(
        &mut response,
        "location",
        &format!("/boruta/api/backends/{id}"),
    );
    response
}

fn update(sim: &Sim, store: &mut Store, id: &str, attrs: &Map<String, Value>) -> Response {
    let existing = store.backends[id].clone();
    let (mut fields, role_ids) = match changeset(store, &existing.fields, attrs, false) {
        Ok(ok) => ok,
        Err(errors) => return unprocessable(&errors),
    };
    sim.faults
        .keep_ignored(Api::Boruta, &existing.fields, &mut fields);
    store.insert(fields, role_ids, existing.users, existing.created_ms);
    json_response(
        StatusCode::OK,
        &json!({"data": store.view(&store.backends[id])}),
    )
}

fn delete(store: &mut Store, id: &str) -> Response {
    let Some(backend) = store.backends.get(id) else {
        return not_found();
    };
    let mut errors = Errors::new();
    if backend.fields["is_default"] == Value::Bool(true) {
        add_error(
            &mut errors,
            "is_default",
            "Deleting a default backend is prohibited.",
        );
    } else if backend.users > 0 {
        add_error(
            &mut errors,
            "user",
            "This backend has existing users. Please delete them before continue",
        );
    }
    if !errors.is_empty() {
        return unprocessable(&errors);
    }
    store.backends.remove(id);
    empty(StatusCode::NO_CONTENT)
}

// ---- the changeset ----

/// Ecto-style cast: "" is nil, wrong JSON types are "is invalid".
fn cast(kind: Kind, value: &Value) -> Result<Value, ()> {
    match (kind, value) {
        (_, Value::Null) => Ok(Value::Null),
        (_, Value::String(s)) if s.trim().is_empty() => Ok(Value::Null),
        (Kind::Str, Value::String(_)) => Ok(value.clone()),
        (Kind::Bool, Value::Bool(_)) => Ok(value.clone()),
        (Kind::Bool, Value::String(s)) => match s.as_str() {
            "true" | "1" => Ok(true.into()),
            "false" | "0" => Ok(false.into()),
            _ => Err(()),
        },
        (Kind::Int, Value::Number(n)) if n.is_i64() => Ok(value.clone()),
        (Kind::Int, Value::String(s)) => s.trim().parse::<i64>().map(Value::from).map_err(|_| ()),
        (Kind::Map, Value::Object(_)) => Ok(value.clone()),
        (Kind::ListOfMaps, Value::Array(items)) if items.iter().all(Value::is_object) => {
            Ok(value.clone())
        }
        _ => Err(()),
    }
}

/// Applies `attrs` to `current` like `Backend.changeset/2` plus `update_backend_roles/2`.
/// Fields absent from `attrs` keep their value, except roles: absent means none.
fn changeset(
    store: &Store,
    current: &Map<String, Value>,
    attrs: &Map<String, Value>,
    creating: bool,
) -> Result<(Map<String, Value>, Vec<String>), Errors> {
    let mut errors = Errors::new();
    let mut changes = Map::new();
    for (name, kind) in FIELDS {
        // The id is the primary key: settable on create, never changed by an update.
        if *name == "id" && !creating {
            continue;
        }
        let Some(raw) = attrs.get(*name) else {
            continue;
        };
        match cast(*kind, raw) {
            Ok(v) if current.get(*name) != Some(&v) => {
                changes.insert(name.to_string(), v);
            }
            Ok(_) => {}
            Err(()) => add_error(&mut errors, name, "is invalid"),
        }
    }
    let mut merged = current.clone();
    merged.extend(changes.clone());
    validate(store, &merged, &changes, creating, &mut errors);
    let role_ids = match role_ids(attrs.get("roles")) {
        Ok(ids) => ids,
        Err(e) => {
            add_error(&mut errors, "roles", e);
            vec![]
        }
    };
    for id in &role_ids {
        if !store.roles.contains_key(id) {
            // [I] Boruta has no FK check here (the insert would raise); we answer 422.
            add_error(&mut errors, "roles", format!("role {id} does not exist"));
        }
    }
    if errors.is_empty() {
        Ok((merged, role_ids))
    } else {
        Err(errors)
    }
}

fn role_ids(roles: Option<&Value>) -> Result<Vec<String>, String> {
    match roles {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| match r {
                Value::String(id) => Ok(id.clone()),
                Value::Object(o) => o
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| "is invalid".to_string()),
                _ => Err("is invalid".to_string()),
            })
            .collect(),
        Some(_) => Err("is invalid".into()),
    }
}

fn validate(
    store: &Store,
    merged: &Map<String, Value>,
    changes: &Map<String, Value>,
    creating: bool,
    errors: &mut Errors,
) {
    let is_blank = |field: &str| merged.get(field).is_none_or(Value::is_null);
    for field in ["name", "password_hashing_alg"] {
        if is_blank(field) {
            add_error(errors, field, "can't be blank");
        }
    }
    if creating && let Some(id) = changes.get("id").and_then(Value::as_str) {
        if !is_uuid(id) {
            add_error(errors, "id", "is invalid");
        } else if store.backends.contains_key(id) {
            add_error(errors, "id", "has already been taken");
        }
    }
    validate_json_lists(changes, errors);
    let kind = merged["type"].as_str();
    if kind.is_some_and(|t| t != INTERNAL && t != LDAP) {
        add_error(errors, "type", "is invalid");
    }
    if let Some(tls) = merged["smtp_tls"].as_str()
        && !["always", "never", "if_available"].contains(&tls)
    {
        add_error(errors, "smtp_tls", "is invalid");
    }
    if changes.get("is_default") == Some(&Value::Bool(false)) {
        add_error(
            errors,
            "is_default",
            "There must be at least one default backend.",
        );
    }
    match kind {
        Some(INTERNAL) => validate_internal(merged, errors),
        Some(LDAP) => {
            for field in [
                "ldap_pool_size",
                "ldap_host",
                "ldap_user_rdn_attribute",
                "ldap_base_dn",
            ] {
                if is_blank(field) {
                    add_error(errors, field, "can't be blank");
                }
            }
            if let Some(size) = merged["ldap_pool_size"].as_i64()
                && !(1..=50).contains(&size)
            {
                add_error(errors, "ldap_pool_size", "is invalid");
            }
        }
        _ => {}
    }
}

fn validate_internal(merged: &Map<String, Value>, errors: &mut Errors) {
    let Some(alg) = merged["password_hashing_alg"].as_str() else {
        return;
    };
    let Some(schema) = boruta_schema::password_hashing_opts(alg) else {
        add_error(errors, "password_hashing_alg", "is invalid");
        return;
    };
    let opts = merged["password_hashing_opts"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for message in boruta_schema::validate_opts(schema, &opts) {
        add_error(errors, "password_hashing_opts", message);
    }
}

/// The JSON schemas of the list columns, checked on the lists an update changes (as
/// `validate_metadata_fields/1` and its siblings do: only on changes).
fn validate_json_lists(changes: &Map<String, Value>, errors: &mut Errors) {
    let schemas = [
        ("metadata_fields", &boruta_schema::METADATA_FIELD),
        ("federated_servers", &boruta_schema::FEDERATED_SERVER),
        (
            "verifiable_credentials",
            &boruta_schema::VERIFIABLE_CREDENTIAL,
        ),
        (
            "verifiable_presentations",
            &boruta_schema::VERIFIABLE_PRESENTATION,
        ),
    ];
    for (field, schema) in schemas {
        let items = changes.get(field).and_then(Value::as_array);
        for message in boruta_schema::validate_list(schema, items.map_or(&[], Vec::as_slice)) {
            add_error(errors, field, message);
        }
    }
}
