//! VMware Cloud Director / VCF Automation cloudapi: sessions (Basic `user@org:password`),
//! API-token refresh (`/oauth/tenant/{org}/token`) and the per-organisation LDAP settings
//! singleton `/cloudapi/v1/orgSettings/ldap`.
//!
//! Choices where the docs are silent [I]:
//! - Organisations come into being at their first session (any org name is accepted); the
//!   provider org is `System`, and `/sessions/provider` requires it while `/sessions` refuses it.
//! - `X-VMWARE-VCLOUD-TENANT-CONTEXT` takes the org's id (bare UUID or `urn:vcloud:org:` URN)
//!   or name; a tenant session may only name its own org (else 403).
//! - A fresh org answers `{"enabled": false, "settingsSource": null, ...}`; PUT replaces the
//!   whole object and fills server defaults (pageSize 200, maxResults 200, maxUserGroups
//!   1015, ssl false, pagedSearchDisabled false) for omitted values; `password` absent or
//!   null leaves the stored one unchanged and is answered as null.
//! - Unknown properties are refused (400), so a misspelt field never passes silently.
//! - "Strand imported users" triggers when imported users/groups exist (seeded) and the
//!   change disables LDAP or changes `settingsSource`.
//! - A wrong refresh token gets the OAuth answer 400 `invalid_grant`.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::auth::{Subject, TokenError};
use crate::state::Sim;
use crate::wire::{
    Api, Locked, SimRequest, empty, json_response, json_with_type, new_uuid, set_header,
    status_code_name, type_name,
};

const SYSTEM: &str = "System";
const STRAND: &str = "Performing this change would strand imported users or groups.";
/// vendor-apis.md says 1..65335, a typo for the TCP port range; the cloudapi page gives no range.
const MAX_PORT: i64 = 65535;

const DEFINED_STRINGS: &[&str] = &[
    "hostName",
    "searchBase",
    "userName",
    "password",
    "groupSearchBase",
    "customUiButtonLabel",
];
const DEFINED_BOOLS: &[&str] = &["ssl", "pagedSearchDisabled"];
const DEFINED_COUNTS: &[(&str, i64)] = &[
    ("pageSize", 200),
    ("maxResults", 200),
    ("maxUserGroups", 1015),
];
const USER_ATTRIBUTES: &[&str] = &[
    "objectClass",
    "objectIdentifier",
    "userName",
    "email",
    "displayName",
    "givenName",
    "surname",
    "telephone",
    "groupMembershipIdentifier",
    "groupBackLinkIdentifier",
    "domain",
    "managerIdentifier",
];
const GROUP_ATTRIBUTES: &[&str] = &[
    "objectClass",
    "objectIdentifier",
    "groupName",
    "membership",
    "membershipIdentifier",
    "backLinkIdentifier",
];

struct Org {
    id: String,
    name: String,
    /// OrganizationLdapSettings as stored, password included.
    ldap: Map<String, Value>,
    imported_users_or_groups: bool,
}

impl Org {
    fn new(name: &str) -> Org {
        let ldap = json!({"enabled": false, "settingsSource": null,
            "inheritedCustomUsersOu": null, "definedSettings": null});
        Org {
            id: new_uuid(),
            name: name.to_string(),
            ldap: ldap.as_object().cloned().unwrap_or_default(),
            imported_users_or_groups: false,
        }
    }

    fn urn(&self) -> String {
        format!("urn:vcloud:org:{}", self.id)
    }

    /// What GET and PUT answer: the settings without the password.
    fn ldap_view(&self) -> Value {
        let mut out = self.ldap.clone();
        if let Some(Value::Object(defined)) = out.get_mut("definedSettings") {
            defined.insert("password".into(), Value::Null);
        }
        Value::Object(out)
    }
}

/// Organisations by lower-cased name (VCD org names are case-insensitive).
pub struct Store {
    orgs: BTreeMap<String, Org>,
}

impl Default for Store {
    fn default() -> Self {
        let mut orgs = BTreeMap::new();
        orgs.insert(SYSTEM.to_lowercase(), Org::new(SYSTEM));
        Store { orgs }
    }
}

impl Store {
    fn org_mut(&mut self, name: &str) -> &mut Org {
        self.orgs
            .entry(name.to_lowercase())
            .or_insert_with(|| Org::new(name))
    }

    /// An org by name, bare UUID or URN.
    fn find(&self, key: &str) -> Option<&Org> {
        let id = key.strip_prefix("urn:vcloud:org:").unwrap_or(key);
        self.orgs
            .get(&key.to_lowercase())
            .or_else(|| self.orgs.values().find(|o| o.id.eq_ignore_ascii_case(id)))
    }

    pub fn seed(&mut self, seed: &Value) -> Result<(), String> {
        for item in seed["orgs"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().ok_or("vcd.orgs[].name is required")?;
            let org = self.org_mut(name);
            if let Some(id) = item["id"].as_str() {
                org.id = id.strip_prefix("urn:vcloud:org:").unwrap_or(id).to_string();
            }
            if let Some(ldap) = item.get("ldap") {
                let ldap = ldap
                    .as_object()
                    .ok_or("vcd.orgs[].ldap must be an object")?;
                org.ldap.extend(ldap.clone());
            }
            if let Some(flag) = item.get("importedUsersOrGroups").and_then(Value::as_bool) {
                org.imported_users_or_groups = flag;
            }
        }
        Ok(())
    }

    pub fn dump(&self) -> Value {
        let orgs: Vec<Value> = self
            .orgs
            .values()
            .map(|o| {
                json!({"name": o.name, "id": o.id, "ldap": o.ldap,
                    "importedUsersOrGroups": o.imported_users_or_groups})
            })
            .collect();
        json!({"orgs": orgs})
    }
}

// ---- responses ----

fn vcd_error(status: StatusCode, minor: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"minorErrorCode": minor, "message": message, "stackTrace": null}),
    )
}

fn bad_request(message: &str) -> Response {
    vcd_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
}

/// A generic error (injected fault, body too large, 429, ...) in VCD's shape.
pub fn error(status: StatusCode, message: &str) -> Response {
    let minor = status_code_name(status);
    vcd_error(status, &minor, message)
}

/// The version the client asked for in `Accept: application/json;version=X`, if supported.
fn negotiated_version<'a>(sim: &'a Sim, req: &SimRequest) -> Result<&'a str, Response> {
    let accept = req.header("accept").unwrap_or_default();
    let requested = accept
        .split([';', ','])
        .filter_map(|part| part.trim().strip_prefix("version="))
        .map(|v| v.trim_matches('"'))
        .next();
    let supported = &sim.cfg.vcd_api_versions;
    match requested.and_then(|v| supported.iter().find(|s| s.as_str() == v)) {
        Some(version) => Ok(version),
        None => Err(vcd_error(
            StatusCode::NOT_ACCEPTABLE,
            "NOT_ACCEPTABLE",
            &format!(
                "The request has invalid accept header: Invalid API version requested. \
                 Supported API versions are: {}",
                supported.join(", ")
            ),
        )),
    }
}

fn versioned(status: StatusCode, value: &Value, version: &str) -> Response {
    json_with_type(
        status,
        value,
        &format!("application/json;version={version}"),
    )
}

// ---- routing ----

pub fn handle(sim: &Sim, req: &SimRequest) -> Response {
    let segs = req.segs();
    match (segs.as_slice(), &req.method) {
        (["oauth", "tenant", org, "token"], &Method::POST) => refresh(sim, req, org, false),
        (["oauth", "provider", "token"], &Method::POST) => refresh(sim, req, SYSTEM, true),
        (["cloudapi", ..], _) => {
            let version = match negotiated_version(sim, req) {
                Ok(v) => v,
                Err(response) => return response,
            };
            let mut response = cloudapi(sim, req, &segs[1..], version);
            if response.status().is_client_error() || response.status().is_server_error() {
                set_header(
                    &mut response,
                    "content-type",
                    &format!("application/json;version={version}"),
                );
            }
            response
        }
        _ => error(StatusCode::NOT_FOUND, "Not found."),
    }
}

fn cloudapi(sim: &Sim, req: &SimRequest, segs: &[&str], version: &str) -> Response {
    match (segs, &req.method) {
        (["1.0.0", "sessions"], &Method::POST) => login(sim, req, false, version),
        (["1.0.0", "sessions", "provider"], &Method::POST) => login(sim, req, true, version),
        (["1.0.0", "sessions", "current"], &Method::GET | &Method::DELETE) => {
            match session(sim, req) {
                Ok((token, _)) if req.method == Method::DELETE => {
                    sim.tokens.revoke(&token);
                    empty(StatusCode::NO_CONTENT)
                }
                Ok((_, subject)) => {
                    let store = sim.vcd.locked();
                    let org = store.find(&subject.0).map(|o| (o.name.clone(), o.urn()));
                    let (name, urn) = org.unwrap_or_default();
                    versioned(
                        StatusCode::OK,
                        &json!({"org": {"name": name, "id": urn}}),
                        version,
                    )
                }
                Err(response) => response,
            }
        }
        (["v1", "orgSettings", "ldap"], &Method::GET | &Method::PUT) => {
            let (_, (org, _)) = match session(sim, req) {
                Ok(ok) => ok,
                Err(response) => return response,
            };
            ldap(sim, req, &org, version)
        }
        _ => error(StatusCode::NOT_FOUND, "Not found."),
    }
}

fn login(sim: &Sim, req: &SimRequest, provider: bool, version: &str) -> Response {
    let unauthorized = || {
        vcd_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Authentication failed.",
        )
    };
    let Some((login, password)) = req.basic_credentials() else {
        return unauthorized();
    };
    let Some((user, org)) = login.rsplit_once('@') else {
        return unauthorized();
    };
    let is_system = org.eq_ignore_ascii_case(SYSTEM);
    if !sim.client_ok(user, &password) || org.is_empty() || provider != is_system {
        return unauthorized();
    }
    let (org_name, org_urn) = {
        let mut store = sim.vcd.locked();
        let org = store.org_mut(org);
        (org.name.clone(), org.urn())
    };
    let subject = Subject::Vcd {
        org: org_name.clone(),
        provider,
    };
    let (token, _) = sim
        .tokens
        .issue(Api::Vcd, sim.cfg.token_ttl_ms, vec![], subject);
    let role = if provider {
        "System Administrator"
    } else {
        "Organization Administrator"
    };
    let org_ref = json!({"name": org_name, "id": org_urn});
    let body = json!({
        "id": new_uuid(),
        "site": {"name": "identity-api-sim", "id": "urn:vcloud:site:00000000-0000-0000-0000-000000000000"},
        "user": {"name": user, "id": format!("urn:vcloud:user:{}", new_uuid())},
        "org": org_ref,
        "operatingOrg": org_ref,
        "location": "urn:vcloud:location:00000000-0000-0000-0000-000000000000",
        "roles": [role],
        "roleRefs": [{"name": role, "id": format!("urn:vcloud:role:{}", new_uuid())}],
        "sessionIdleTimeoutMinutes": 30,
    });
    let mut response = versioned(StatusCode::OK, &body, version);
    set_header(&mut response, "x-vmware-vcloud-access-token", &token);
    set_header(&mut response, "x-vmware-vcloud-token-type", "Bearer");
    response
}

/// API tokens are refresh tokens; the simulator's one valid refresh token is the client secret.
fn refresh(sim: &Sim, req: &SimRequest, org: &str, provider: bool) -> Response {
    let oauth_error = |status, error: &str, description: &str| {
        json_response(
            status,
            &json!({"error": error, "error_description": description}),
        )
    };
    let Ok(params) = req.form_or_json() else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Malformed request body.",
        );
    };
    let param = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
    if param("grant_type") != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only refresh_token is supported.",
        );
    }
    if param("refresh_token") != sim.cfg.client_secret
        || org.eq_ignore_ascii_case(SYSTEM) != provider
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid refresh token.",
        );
    }
    let org_name = sim.vcd.locked().org_mut(org).name.clone();
    let subject = Subject::Vcd {
        org: org_name,
        provider,
    };
    let ttl = sim.cfg.token_ttl_ms;
    let (token, _) = sim.tokens.issue(Api::Vcd, ttl, vec![], subject);
    json_response(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl / 1000, "refresh_token": null}),
    )
}

/// The bearer token and the org it acts on (org name, whether it is a provider session),
/// honouring `X-VMWARE-VCLOUD-TENANT-CONTEXT`.
fn session(sim: &Sim, req: &SimRequest) -> Result<(String, (String, bool)), Response> {
    let token_value = req.bearer().unwrap_or_default().to_string();
    let token = sim
        .tokens
        .check(Api::Vcd, Some(&token_value))
        .map_err(|e| {
            let message = match e {
                TokenError::Expired => "The session has expired; log in again.",
                _ => "Authentication required: missing or invalid access token.",
            };
            vcd_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
        })?;
    let Subject::Vcd { org, provider } = token.subject else {
        return Err(vcd_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Invalid session.",
        ));
    };
    let Some(context) = req
        .header("x-vmware-vcloud-tenant-context")
        .filter(|c| !c.is_empty())
    else {
        return Ok((token_value, (org, provider)));
    };
    let store = sim.vcd.locked();
    let forbidden = || {
        let message = format!("Tenant context {context} is not accessible to this session.");
        vcd_error(
            StatusCode::FORBIDDEN,
            "ACCESS_TO_RESOURCE_IS_FORBIDDEN",
            &message,
        )
    };
    match store.find(context) {
        Some(target) if provider || target.name.eq_ignore_ascii_case(&org) => {
            Ok((token_value, (target.name.clone(), provider)))
        }
        _ => Err(forbidden()),
    }
}

fn ldap(sim: &Sim, req: &SimRequest, org: &str, version: &str) -> Response {
    let body = match req.json() {
        Ok(body) => body,
        Err(e) => return bad_request(&e),
    };
    let mut store = sim.vcd.locked();
    let org = store.org_mut(org);
    if req.method == Method::GET {
        return versioned(StatusCode::OK, &org.ldap_view(), version);
    }
    let Some(Value::Object(body)) = body else {
        return bad_request("The request body must be an OrganizationLdapSettings object.");
    };
    let mut settings = match normalize(&body) {
        Ok(settings) => settings,
        Err(message) => return bad_request(&message),
    };
    let was_enabled = org.ldap["enabled"] == Value::Bool(true);
    let disables = settings["enabled"] == Value::Bool(false);
    let changes_source = settings["settingsSource"] != org.ldap["settingsSource"];
    if org.imported_users_or_groups && was_enabled && (disables || changes_source) {
        return bad_request(STRAND);
    }
    keep_password(&mut settings, &org.ldap);
    sim.faults.keep_ignored(Api::Vcd, &org.ldap, &mut settings);
    org.ldap = settings;
    versioned(StatusCode::OK, &org.ldap_view(), version)
}

/// "Omit to leave unchanged": carries the stored password over when none was sent.
fn keep_password(settings: &mut Map<String, Value>, old: &Map<String, Value>) {
    let old_password = old
        .get("definedSettings")
        .and_then(|d| d.get("password"))
        .cloned();
    if let Some(Value::Object(defined)) = settings.get_mut("definedSettings")
        && defined.get("password").is_none_or(Value::is_null)
    {
        defined.insert("password".into(), old_password.unwrap_or(Value::Null));
    }
}

/// Validates a PUT body and returns the settings to store, defaults filled in.
fn normalize(body: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let top = [
        "enabled",
        "settingsSource",
        "inheritedCustomUsersOu",
        "definedSettings",
    ];
    unknown_keys(body, &top, "OrganizationLdapSettings")?;
    let enabled = match body.get("enabled") {
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(format!(
                "Field 'enabled' must be a boolean, not {}.",
                type_name(v)
            ));
        }
        None => return Err("Field 'enabled' is required.".into()),
    };
    let source = match body.get("settingsSource") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "INHERIT_SYSTEM" || s == "DEFINED" => Some(s.as_str()),
        Some(v) => {
            return Err(format!(
                "Invalid settingsSource {v}: expected INHERIT_SYSTEM or DEFINED."
            ));
        }
    };
    if enabled && source.is_none() {
        return Err("Field 'settingsSource' is required when LDAP is enabled.".into());
    }
    let ou = match body.get("inheritedCustomUsersOu") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(v) => {
            return Err(format!(
                "Field 'inheritedCustomUsersOu' must be a string, not {}.",
                type_name(v)
            ));
        }
    };
    let defined = match body.get("definedSettings") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) => Some(defined_settings(d)?),
        Some(v) => {
            return Err(format!(
                "Field 'definedSettings' must be an object, not {}.",
                type_name(v)
            ));
        }
    };
    if enabled && source == Some("DEFINED") {
        let Some(d) = &defined else {
            return Err(
                "Field 'definedSettings' is required when settingsSource is DEFINED.".into(),
            );
        };
        for field in ["hostName", "searchBase", "userName"] {
            if d.get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!("Field 'definedSettings.{field}' is required."));
            }
        }
        if d.get("port").is_none_or(Value::is_null) {
            return Err("Field 'definedSettings.port' is required.".into());
        }
    }
    let mut out = Map::new();
    out.insert("enabled".into(), enabled.into());
    out.insert(
        "settingsSource".into(),
        source.map_or(Value::Null, Value::from),
    );
    out.insert("inheritedCustomUsersOu".into(), ou);
    out.insert(
        "definedSettings".into(),
        defined.map_or(Value::Null, Value::Object),
    );
    Ok(out)
}

fn unknown_keys(map: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), String> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(format!("Unrecognized field '{key}' in {what}.")),
        None => Ok(()),
    }
}

fn defined_settings(d: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    let mut known: Vec<&str> = [DEFINED_STRINGS, DEFINED_BOOLS].concat();
    known.extend(DEFINED_COUNTS.iter().map(|(k, _)| *k));
    known.extend(["port", "userAttributes", "groupAttributes"]);
    unknown_keys(d, &known, "definedSettings")?;
    let mut out = Map::new();
    for key in DEFINED_STRINGS {
        out.insert(
            key.to_string(),
            typed(d, key, "string", Value::is_string)?.unwrap_or(Value::Null),
        );
    }
    for key in DEFINED_BOOLS {
        out.insert(
            key.to_string(),
            typed(d, key, "boolean", Value::is_boolean)?.unwrap_or(false.into()),
        );
    }
    let port = typed(d, "port", "integer", Value::is_i64)?;
    if let Some(p) = port.as_ref().and_then(Value::as_i64)
        && !(1..=MAX_PORT).contains(&p)
    {
        return Err(format!(
            "Field 'definedSettings.port' must be between 1 and {MAX_PORT}."
        ));
    }
    out.insert("port".into(), port.unwrap_or(Value::Null));
    for (key, default) in DEFINED_COUNTS {
        let value = typed(d, key, "integer", Value::is_i64)?.unwrap_or((*default).into());
        if value.as_i64().is_some_and(|n| n < 1) {
            return Err(format!("Field 'definedSettings.{key}' must be at least 1."));
        }
        out.insert(key.to_string(), value);
    }
    for (key, fields) in [
        ("userAttributes", USER_ATTRIBUTES),
        ("groupAttributes", GROUP_ATTRIBUTES),
    ] {
        let value = match typed(d, key, "object", Value::is_object)? {
            Some(Value::Object(attrs)) => {
                unknown_keys(&attrs, fields, key)?;
                for (k, v) in &attrs {
                    if !v.is_string() && !v.is_null() {
                        return Err(format!("Field '{key}.{k}' must be a string."));
                    }
                }
                Value::Object(attrs)
            }
            _ => Value::Null,
        };
        out.insert(key.to_string(), value);
    }
    Ok(out)
}

/// The value of `key` if present and non-null, after a type check.
fn typed(
    map: &Map<String, Value>,
    key: &str,
    expected: &str,
    check: fn(&Value) -> bool,
) -> Result<Option<Value>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) if check(v) => Ok(Some(v.clone())),
        Some(v) => Err(format!(
            "Field 'definedSettings.{key}' must be {expected}, not {}.",
            type_name(v)
        )),
    }
}
