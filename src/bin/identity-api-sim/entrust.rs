//! Entrust Identity as a Service, Administration API: authenticate and the admin API
//! applications under `/api/web/v1/applications/adminapi`.
//!
//! Choices where the public docs are silent [I]:
//! - `sharedSecret` is returned only by create and regenerate (null elsewhere), the stricter
//!   of the two plausible behaviours: a client must capture it when it is generated.
//! - PUT leaves absent fields unchanged (`roleId: ""` and `spRoleId: ""` unset, as documented);
//!   `applicationTemplateId` on PUT is accepted when equal to the stored one and refused
//!   (400) when it would change the template, which the API cannot do.
//! - Unknown or read-only properties in a body (`id`, `sharedSecret`, ...) are refused (400).
//! - Application names are unique (409 on a duplicate).
//! - Error codes: INVALID_PARAMETER (400), UNAUTHORIZED (401), NOT_FOUND (404),
//!   ALREADY_EXISTS (409), TOO_MANY_REQUESTS (429).

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::auth::{Subject, TokenError};
use crate::state::Sim;
use crate::wire::{
    Api, Locked, SimRequest, empty, iso8601, json_response, new_uuid, now_ms, random_string,
    status_code_name, type_name,
};

/// The template every application here is made from.
pub const TEMPLATE_ID: &str = "00000000-0000-0000-0000-0000000000a1";
const TEMPLATE_NAME: &str = "Administration API";
const STRING_PARAMS: &[&str] = &[
    "name",
    "applicationTemplateId",
    "description",
    "ipListId",
    "logo",
    "roleId",
    "spRoleId",
];

#[derive(Clone)]
struct App {
    seq: u64,
    /// Everything but the shared secret, as AdminApiApplication fields.
    fields: Map<String, Value>,
    shared_secret: String,
    /// When the API created it (0: seeded), for reads that lag behind (`readLagMs`).
    created_ms: u64,
}

#[derive(Default)]
pub struct Store {
    apps: HashMap<String, App>,
    next_seq: u64,
}

impl Store {
    fn sorted(&self) -> Vec<&App> {
        let mut all: Vec<&App> = self.apps.values().collect();
        all.sort_by_key(|a| a.seq);
        all
    }

    /// Stores an application; `created_ms` is kept from an existing one.
    fn insert(
        &mut self,
        fields: Map<String, Value>,
        shared_secret: String,
        created_ms: u64,
    ) -> Value {
        let id = fields["id"].as_str().unwrap_or_default().to_string();
        let (seq, created_ms) = self.apps.get(&id).map_or_else(
            || {
                self.next_seq += 1;
                (self.next_seq, created_ms)
            },
            |a| (a.seq, a.created_ms),
        );
        self.apps.insert(
            id.clone(),
            App {
                seq,
                fields,
                shared_secret,
                created_ms,
            },
        );
        view(&self.apps[&id], false)
    }

    fn name_taken(&self, name: &str, except: &str) -> bool {
        self.apps
            .iter()
            .any(|(id, a)| id != except && a.fields["name"] == name)
    }

    pub fn seed(&mut self, seed: &Value) -> Result<(), String> {
        for item in seed["applications"].as_array().into_iter().flatten() {
            let item = item
                .as_object()
                .ok_or("entrust.applications[] must be objects")?;
            let mut fields = new_fields();
            for key in STRING_PARAMS
                .iter()
                .chain(&["id", "allowLongLivedToken", "lastAuthnDate"])
            {
                if let Some(v) = item.get(*key) {
                    fields.insert(key.to_string(), v.clone());
                }
            }
            if !fields["id"].is_string() {
                fields.insert("id".into(), new_uuid().into());
            }
            let secret = item
                .get("sharedSecret")
                .and_then(Value::as_str)
                .map_or_else(new_secret, str::to_string);
            self.insert(fields, secret, 0);
        }
        Ok(())
    }

    pub fn dump(&self) -> Value {
        let apps: Vec<Value> = self.sorted().into_iter().map(|a| view(a, true)).collect();
        json!({"applications": apps})
    }
}

fn new_fields() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), Value::Null);
    m.insert("name".into(), Value::Null);
    m.insert("description".into(), Value::Null);
    m.insert("allowLongLivedToken".into(), false.into());
    m.insert("applicationTemplateId".into(), TEMPLATE_ID.into());
    m.insert("applicationTemplate".into(), TEMPLATE_NAME.into());
    m.insert("ipListId".into(), Value::Null);
    m.insert("logo".into(), Value::Null);
    m.insert("roleId".into(), Value::Null);
    m.insert("spRoleId".into(), Value::Null);
    m.insert("lastAuthnDate".into(), Value::Null);
    m
}

fn new_secret() -> String {
    random_string(64)
}

fn view(app: &App, with_secret: bool) -> Value {
    let mut out = app.fields.clone();
    let secret = if with_secret {
        Value::String(app.shared_secret.clone())
    } else {
        Value::Null
    };
    out.insert("sharedSecret".into(), secret);
    Value::Object(out)
}

// ---- responses ----

fn error_info(status: StatusCode, code: &str, message: &str, parameters: &[&str]) -> Response {
    json_response(
        status,
        &json!({"errorCode": code, "errorMessage": message, "parameters": parameters}),
    )
}

fn invalid(message: &str, parameter: &str) -> Response {
    error_info(
        StatusCode::BAD_REQUEST,
        "INVALID_PARAMETER",
        message,
        &[parameter],
    )
}

fn not_found(id: &str) -> Response {
    error_info(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The admin API application does not exist.",
        &[id],
    )
}

/// A generic error (injected fault, body too large, 429, ...) as ErrorInfo.
pub fn error(status: StatusCode, message: &str) -> Response {
    let code = status_code_name(status);
    error_info(status, &code, message, &[])
}

// ---- routing ----

pub fn handle(sim: &Sim, req: &SimRequest) -> Response {
    let segs = req.segs();
    let (["api", "web", "v1", rest @ ..], method) = (segs.as_slice(), &req.method) else {
        return error(StatusCode::NOT_FOUND, "Not found.");
    };
    let known = matches!(
        (rest, method),
        (["adminapi", "authenticate"], &Method::POST)
            | (["applications", "adminapi"], &Method::GET | &Method::POST)
            | (
                ["applications", "adminapi", _],
                &Method::GET | &Method::PUT | &Method::DELETE
            )
            | (["applications", "adminapi", "regenerate", _], &Method::PUT)
    );
    if !known {
        return error(StatusCode::NOT_FOUND, "Not found.");
    }
    let body = match req.json() {
        Ok(body) => body,
        Err(e) => return error_info(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", &e, &[]),
    };
    if rest == ["adminapi", "authenticate"] {
        return authenticate(sim, body);
    }
    if let Err(response) = authorize(sim, req) {
        return response;
    }
    let mut store = sim.entrust.locked();
    let now = now_ms();
    let seen = |a: &App| !sim.faults.hides(Api::Entrust, a.created_ms, now);
    match (rest, method) {
        ([_, _], &Method::GET) => {
            let apps: Vec<Value> = store
                .sorted()
                .into_iter()
                .filter(|a| seen(a))
                .map(|a| view(a, false))
                .collect();
            json_response(StatusCode::OK, &Value::Array(apps))
        }
        ([_, _], _) => create(&mut store, body),
        ([_, _, id], &Method::GET) => match store.apps.get(*id).filter(|a| seen(a)) {
            Some(app) => json_response(StatusCode::OK, &view(app, false)),
            None => not_found(id),
        },
        ([_, _, id], &Method::PUT) => update(sim, &mut store, id, body),
        ([_, _, id], _) => match store.apps.remove(*id) {
            Some(_) => empty(StatusCode::OK),
            None => not_found(id),
        },
        ([_, _, _, id], _) => match store.apps.get_mut(*id) {
            Some(app) => {
                app.shared_secret = new_secret();
                json_response(StatusCode::OK, &Value::String(app.shared_secret.clone()))
            }
            None => not_found(id),
        },
        _ => error(StatusCode::NOT_FOUND, "Not found."),
    }
}

fn authenticate(sim: &Sim, body: Option<Value>) -> Response {
    let param = |name: &str| {
        body.as_ref()
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (id, secret) = (param("applicationId"), param("sharedSecret"));
    let known = sim.client_ok(&id, &secret) || {
        let mut store = sim.entrust.locked();
        match store.apps.get_mut(&id) {
            Some(app) if app.shared_secret == secret => {
                app.fields
                    .insert("lastAuthnDate".into(), iso8601(now_ms()).into());
                true
            }
            _ => false,
        }
    };
    if !known {
        return error_info(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Authentication failed: unknown application or wrong shared secret.",
            &[],
        );
    }
    let subject = Subject::Entrust { application_id: id };
    let (token, expires) = sim
        .tokens
        .issue(Api::Entrust, sim.cfg.token_ttl_ms, vec![], subject);
    json_response(
        StatusCode::OK,
        &json!({"authToken": token, "creationTime": iso8601(now_ms()), "expirationTime": iso8601(expires)}),
    )
}

/// `Authorization: <token>`; the docs also show `Bearer <token>`, so both are accepted.
fn authorize(sim: &Sim, req: &SimRequest) -> Result<(), Response> {
    let header = req.header("authorization").map(str::trim);
    let token = req.bearer().or(header);
    let message = match sim.tokens.check(Api::Entrust, token) {
        Ok(t) => match t.subject {
            // A token dies with the application that authenticated.
            Subject::Entrust { application_id }
                if application_id != sim.cfg.client_id
                    && !sim.entrust.locked().apps.contains_key(&application_id) =>
            {
                "The application of this token no longer exists."
            }
            _ => return Ok(()),
        },
        Err(TokenError::Missing) => "Authentication token is missing.",
        Err(TokenError::Invalid) => "Authentication token is invalid.",
        Err(TokenError::Expired) => "Authentication token has expired.",
    };
    Err(error_info(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        message,
        &[],
    ))
}

/// Type and property checks shared by create and update.
fn check_params(body: &Option<Value>) -> Result<Map<String, Value>, Response> {
    let params = match body {
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            let message = format!("Request body must be an object, not {}.", type_name(other));
            return Err(invalid(&message, "body"));
        }
        None => return Err(invalid("Request body is required.", "body")),
    };
    for (key, value) in &params {
        let ok = match key.as_str() {
            "allowLongLivedToken" => value.is_boolean() || value.is_null(),
            k if STRING_PARAMS.contains(&k) => value.is_string() || value.is_null(),
            _ => {
                return Err(invalid(
                    &format!("Unknown or read-only property {key}."),
                    key,
                ));
            }
        };
        if !ok {
            let message = format!("{key} must not be of type {}.", type_name(value));
            return Err(invalid(&message, key));
        }
    }
    if let Some(logo) = params.get("logo").and_then(Value::as_str)
        && base64::engine::general_purpose::STANDARD
            .decode(logo)
            .is_err()
    {
        return Err(invalid("logo must be base64-encoded.", "logo"));
    }
    Ok(params)
}

fn non_empty(fields: &Map<String, Value>, key: &str) -> bool {
    fields
        .get(key)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

fn create(store: &mut Store, body: Option<Value>) -> Response {
    let params = match check_params(&body) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let mut fields = new_fields();
    for (key, value) in params {
        fields.insert(key, value);
    }
    if let Err(response) = check_result(store, &fields, "") {
        return response;
    }
    fields.insert("id".into(), new_uuid().into());
    let secret = new_secret();
    let mut created = store.insert(fields, secret.clone(), now_ms());
    created["sharedSecret"] = secret.into();
    json_response(StatusCode::OK, &created)
}

fn update(sim: &Sim, store: &mut Store, id: &str, body: Option<Value>) -> Response {
    let params = match check_params(&body) {
        Ok(params) => params,
        Err(response) => return response,
    };
    let Some(app) = store.apps.get(id) else {
        return not_found(id);
    };
    let mut fields = app.fields.clone();
    if !non_empty(&params, "name") {
        return invalid("name is required.", "name");
    }
    if let Some(template) = params.get("applicationTemplateId")
        && !template.is_null()
        && *template != fields["applicationTemplateId"]
    {
        return invalid(
            "applicationTemplateId can only be set on create.",
            "applicationTemplateId",
        );
    }
    for (key, value) in params {
        match (key.as_str(), &value) {
            ("applicationTemplateId", _) => {}
            // "Pass an empty string value to unset the site role" (and the service-provider
            // role): documented for both.
            ("roleId" | "spRoleId", Value::String(s)) if s.is_empty() => {
                fields.insert(key, Value::Null);
            }
            _ => {
                fields.insert(key, value);
            }
        }
    }
    sim.faults
        .keep_ignored(Api::Entrust, &store.apps[id].fields, &mut fields);
    if let Err(response) = check_result(store, &fields, id) {
        return response;
    }
    let secret = store.apps[id].shared_secret.clone();
    let updated = store.insert(fields, secret, 0);
    json_response(StatusCode::OK, &updated)
}

/// Rules on the application as it would be after the write.
fn check_result(store: &Store, fields: &Map<String, Value>, id: &str) -> Result<(), Response> {
    if !non_empty(fields, "name") {
        return Err(invalid("name is required.", "name"));
    }
    if !non_empty(fields, "roleId") && !non_empty(fields, "spRoleId") {
        return Err(invalid("roleId or spRoleId is required.", "roleId"));
    }
    let name = fields["name"].as_str().unwrap_or_default();
    if store.name_taken(name, id) {
        return Err(error_info(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            "An admin API application with this name already exists.",
            &[name],
        ));
    }
    Ok(())
}
