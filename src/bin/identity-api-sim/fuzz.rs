//! Property tests of request parsing and validation: arbitrary methods, paths, query strings,
//! headers and bodies (bytes, JSON, vendor-shaped objects with arbitrary values), sent to each
//! vendor's handler with and without a valid token. No input may panic or answer 5xx, and
//! every 4xx carries the vendor's documented error shape.

use std::net::{IpAddr, Ipv4Addr};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::auth::Subject;
use crate::state::{Config, Sim};
use crate::wire::{Api, SimRequest};

fn sim() -> Sim {
    let sim = Sim::new(
        Config {
            client_id: "fuzz-client".into(),
            client_secret: "fuzz-secret".into(),
            token_ttl_ms: 3_600_000,
            latency_ms: 0,
            max_body_bytes: 1024 * 1024,
            // No 429s: every answer below is about the input.
            boruta_oauth_rate_limit: 0,
            vcd_api_versions: vec!["9.1.0".into()],
        },
        100,
    );
    sim.seed(&json!({
        "auth0": {
            "organizations": [{"id": "org_acme", "name": "acme"}],
            "connections": [{"id": "con_saml", "name": "corp-saml", "strategy": "samlp"}],
            "organizationConnections": [{"organization_id": "org_acme", "connection_id": "con_saml"}],
        },
        "vcd": {"orgs": [{"name": "acme"}]},
        "boruta": {"backends": [{"id": "6f1c2d3e-0000-4000-8000-000000000001", "name": "seeded"}]},
        "entrust": {"applications": [{"id": "7a2b3c4d-0000-4000-8000-000000000002", "name": "seeded", "roleId": "r"}]},
    }))
    .expect("seed");
    sim
}

/// The Authorization header of a valid session for `api`.
fn valid_authorization(sim: &Sim, api: Api) -> String {
    let (subject, scopes, scheme) = match api {
        Api::Boruta => (
            Subject::Client,
            vec!["identity-providers:manage:all".to_string()],
            "Bearer ",
        ),
        Api::Auth0 => (Subject::Client, vec![], "Bearer "),
        Api::Vcd => (
            Subject::Vcd {
                org: "acme".into(),
                provider: false,
            },
            vec![],
            "Bearer ",
        ),
        Api::Entrust => (
            Subject::Entrust {
                application_id: "fuzz-client".into(),
            },
            vec![],
            "",
        ),
        Api::Xelion => (
            Subject::Xelion {
                tenant: "master".into(),
            },
            vec![],
            "xelion ",
        ),
    };
    let (token, _) = sim.tokens.issue(api, 3_600_000, scopes, subject);
    format!("{scheme}{token}")
}

/// The routes of each API (method, path template; `{id}` is replaced by a generated segment).
fn routes(api: Api) -> &'static [(Method, &'static str)] {
    const BACKEND: &str = "/api/backends/6f1c2d3e-0000-4000-8000-000000000001";
    const APP: &str = "/api/web/v1/applications/adminapi/7a2b3c4d-0000-4000-8000-000000000002";
    const CONNECTION: &str = "/api/v2/organizations/org_acme/connections/con_saml";
    match api {
        Api::Boruta => &[
            (Method::POST, "/oauth/token"),
            (Method::GET, "/api/backends"),
            (Method::POST, "/api/backends"),
            (Method::GET, "/api/backends/{id}"),
            (Method::PUT, BACKEND),
            (Method::PATCH, BACKEND),
            (Method::PUT, "/api/backends/{id}"),
            (Method::DELETE, "/api/backends/{id}"),
        ],
        Api::Auth0 => &[
            (Method::POST, "/oauth/token"),
            (Method::GET, "/api/v2/organizations/org_acme/connections"),
            (Method::POST, "/api/v2/organizations/org_acme/connections"),
            (Method::PATCH, CONNECTION),
            (Method::GET, "/api/v2/organizations/{id}/connections/{id}"),
            (
                Method::PATCH,
                "/api/v2/organizations/org_acme/enabled_connections/{id}",
            ),
            (
                Method::DELETE,
                "/api/v2/organizations/{id}/connections/{id}",
            ),
        ],
        Api::Vcd => &[
            (Method::POST, "/oauth/tenant/acme/token"),
            (Method::POST, "/oauth/tenant/{id}/token"),
            (Method::POST, "/oauth/provider/token"),
            (Method::POST, "/cloudapi/1.0.0/sessions"),
            (Method::POST, "/cloudapi/1.0.0/sessions/provider"),
            (Method::GET, "/cloudapi/1.0.0/sessions/current"),
            (Method::GET, "/cloudapi/v1/orgSettings/ldap"),
            (Method::PUT, "/cloudapi/v1/orgSettings/ldap"),
            (Method::PUT, "/cloudapi/v1/orgSettings/ldap"),
            (Method::GET, "/cloudapi/{id}"),
        ],
        Api::Entrust => &[
            (Method::POST, "/api/web/v1/adminapi/authenticate"),
            (Method::GET, "/api/web/v1/applications/adminapi"),
            (Method::POST, "/api/web/v1/applications/adminapi"),
            (Method::POST, "/api/web/v1/applications/adminapi"),
            (Method::PUT, APP),
            (Method::GET, "/api/web/v1/applications/adminapi/{id}"),
            (
                Method::PUT,
                "/api/web/v1/applications/adminapi/regenerate/{id}",
            ),
            (Method::DELETE, "/api/web/v1/applications/adminapi/{id}"),
        ],
        Api::Xelion => &[
            (Method::POST, "/api/v1/master/me/login"),
            (Method::POST, "/api/v1/master/me/renew"),
            (Method::POST, "/api/v1/master/me/logout"),
            (Method::GET, "/api/v1/master/server/authentication"),
            (Method::PATCH, "/api/v1/master/server/authentication"),
            (Method::PATCH, "/api/v1/master/server/authentication"),
            (Method::PATCH, "/api/v1/{id}/server/authentication"),
        ],
    }
}

/// Field names each vendor's bodies use, so generated objects reach the validation code.
fn fields(api: Api) -> &'static [&'static str] {
    match api {
        Api::Boruta => &[
            "backend",
            "name",
            "type",
            "is_default",
            "roles",
            "ldap_pool_size",
            "ldap_host",
            "password_hashing_alg",
            "smtp_tls",
            "smtp_port",
            "grant_type",
            "client_id",
            "client_secret",
            "scope",
        ],
        Api::Auth0 => &[
            "connection_id",
            "organization_connection_name",
            "assign_membership_on_login",
            "show_as_button",
            "is_signup_enabled",
            "organization_access_level",
            "is_enabled",
            "grant_type",
            "client_id",
            "client_secret",
            "audience",
        ],
        Api::Vcd => &[
            "enabled",
            "settingsSource",
            "definedSettings",
            "hostName",
            "port",
            "pageSize",
            "userAttributes",
            "groupAttributes",
            "password",
            "grant_type",
            "refresh_token",
        ],
        Api::Entrust => &[
            "name",
            "roleId",
            "spRoleId",
            "applicationTemplateId",
            "logo",
            "ipListId",
            "allowLongLivedToken",
            "applicationId",
            "sharedSecret",
        ],
        Api::Xelion => &[
            "operations",
            "op",
            "path",
            "value",
            "userName",
            "password",
            "userSpace",
        ],
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
        prop::sample::select(vec![
            "replace",
            "add",
            "remove",
            "/securityDomain",
            "/openIdConnections/1001",
            "argon2",
            "DEFINED",
            "full",
            "client_credentials",
            "fuzz-client",
            "fuzz-secret",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with the vendor's field names and arbitrary values, wrapped the way the vendor
/// wraps its bodies (Boruta `{"backend": …}`, Xelion `{"operations": [...]}`, VCD
/// `definedSettings`) half of the time.
fn vendor_object(api: Api) -> impl Strategy<Value = Value> {
    let pairs = || prop::collection::vec((prop::sample::select(fields(api)), json_value()), 0..6);
    let object = |pairs: Vec<(&str, Value)>| {
        Value::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    };
    (pairs(), prop::collection::vec(pairs(), 0..3), any::<bool>()).prop_map(
        move |(outer, inner, wrap)| {
            let mut value = object(outer);
            let inner: Vec<Value> = inner.into_iter().map(object).collect();
            if wrap && let Value::Object(m) = &mut value {
                match api {
                    Api::Boruta => return json!({"backend": value}),
                    Api::Xelion => {
                        m.insert("operations".into(), Value::from(inner));
                    }
                    Api::Vcd => {
                        let first = inner.into_iter().next().unwrap_or_default();
                        m.insert("definedSettings".into(), first);
                    }
                    Api::Auth0 | Api::Entrust => {}
                }
            }
            value
        },
    )
}

#[derive(Debug, Clone)]
struct Input {
    api: Api,
    method: Method,
    path: String,
    query: Option<String>,
    authorized: bool,
    garbage_authorization: Option<String>,
    content_type: Option<&'static str>,
    accept: Option<&'static str>,
    body: Vec<u8>,
}

fn input() -> impl Strategy<Value = Input> {
    let api = prop::sample::select(Api::ALL.to_vec());
    api.prop_flat_map(|api| {
        let any_method = prop::sample::select(vec![
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
        ]);
        let id = prop_oneof![
            Just(String::new()),
            Just("..".to_owned()),
            "[A-Za-z0-9%._~+-]{1,10}",
            "[%][0-9a-fA-FzZ]{0,2}",
        ];
        // Mostly a documented route, sometimes the wrong method for it.
        let route = (
            prop::sample::select(routes(api)),
            prop::option::weighted(0.15, any_method),
        )
            .prop_map(|((method, template), other)| (other.unwrap_or(method), template));
        let method_path = (route, id)
            .prop_map(|((method, template), id)| (method, template.replace("{id}", &id)));
        let query = prop::option::of("[a-z0-9=&%+_.-]{0,24}");
        let body = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            json_value().prop_map(|v| v.to_string().into_bytes()),
            vendor_object(api).prop_map(|v| v.to_string().into_bytes()),
            "[a-z_]{1,8}=[a-zA-Z0-9%+-]{0,8}(&[a-z_]{1,8}=[a-zA-Z0-9%+-]{0,8}){0,3}"
                .prop_map(String::into_bytes),
        ];
        (
            method_path,
            query,
            prop::bool::weighted(0.8),
            prop::option::of(".{0,12}"),
            prop::option::of(prop::sample::select(vec![
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
                "application/json;version=9.1.0",
            ])),
            prop::option::weighted(
                0.9,
                prop::sample::select(vec![
                    "application/json;version=9.1.0",
                    "application/json;version=9.1.0",
                    "application/json;version=9.1.0",
                    "application/json;version=1.0",
                    "application/*+json;version=9.1.0",
                    "*/*",
                ]),
            ),
            body,
        )
            .prop_map(
                move |((method, path), query, authorized, garbage, content_type, accept, body)| {
                    Input {
                        api,
                        method,
                        path,
                        query,
                        authorized,
                        garbage_authorization: garbage,
                        content_type,
                        accept,
                        body,
                    }
                },
            )
    })
}

fn request(sim: &Sim, input: &Input) -> SimRequest {
    let mut headers = HeaderMap::new();
    let authorization = if input.authorized {
        Some(valid_authorization(sim, input.api))
    } else {
        input.garbage_authorization.clone()
    };
    for (name, value) in [
        ("authorization", authorization.as_deref()),
        ("content-type", input.content_type),
        ("accept", input.accept),
    ] {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, v);
        }
    }
    SimRequest::new(
        input.method.clone(),
        &input.path,
        input.query.as_deref(),
        headers,
        Bytes::from(input.body.clone()),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
}

/// Whether `body` has the error shape `api` documents (or, on its OAuth endpoints, RFC 6749's).
fn vendor_error_shape(api: Api, body: &Value) -> bool {
    let has = |keys: &[&str]| keys.iter().all(|k| body.get(*k).is_some());
    let oauth = has(&["error", "error_description"]);
    match api {
        Api::Boruta => has(&["code", "message"]) || oauth,
        Api::Auth0 => has(&["statusCode", "error", "message"]) || oauth,
        Api::Vcd => has(&["minorErrorCode", "message"]) || oauth,
        Api::Entrust => has(&["errorCode", "errorMessage"]),
        Api::Xelion => has(&["errorCode", "message"]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn arbitrary_requests_get_a_vendor_shaped_answer(input in input()) {
        let sim = sim();
        let req = request(&sim, &input);
        let response = crate::handle(input.api, &sim, &req);
        let status = response.status();
        prop_assert!(!status.is_server_error(), "{status} for {input:?}");
        if status.is_client_error() {
            let bytes = futures::executor::block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                .expect("body");
            let body: Value = serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("{status} body is not JSON ({e}): {:?} for {input:?}", String::from_utf8_lossy(&bytes))))?;
            prop_assert!(
                vendor_error_shape(input.api, &body),
                "{status} {body} is not {}'s error shape, for {input:?}", input.api.name()
            );
        }
        prop_assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
    }
}
