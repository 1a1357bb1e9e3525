//! The identity API simulator, tested the way clients use it: the real binary, over HTTP.

#[path = "support/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};
use sim::{SimOptions, SimProcess};

const BORUTA_SCOPE: &str = "identity-providers:manage:all";
const DEFAULT_BACKEND: &str = "00000000-0000-0000-0000-000000000001";

fn start() -> SimProcess {
    SimProcess::start(SimOptions::default())
}

fn start_with(extra: &[&str]) -> SimProcess {
    SimProcess::start(SimOptions {
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..SimOptions::default()
    })
}

fn http() -> Client {
    Client::new()
}

async fn body_json(response: Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
}

/// Sends a request and returns the status and the JSON body (Null when empty).
async fn call(
    method: Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, value)
}

/// Waits until the start of the next wall-clock second, so a burst fits in one window.
async fn align_to_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = now.subsec_millis() as u64;
    tokio::time::sleep(Duration::from_millis(1000 - into + 20)).await;
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One answer of a rate-limited API, read whole.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

/// Sends bursts of `3 × limit` requests at once until the API refuses some (at most five
/// bursts), and checks the limit the way it is defined, so that it holds on a loaded machine
/// too: the window is the UNIX second a request reached the server, and no window the burst
/// spanned lets more than `limit` requests through.
async fn bursts_until_limited(
    limit: usize,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    for _ in 0..5 {
        align_to_second().await;
        let first = unix_secs();
        let sent = (0..3 * limit).map(|_| async {
            let response = request().send().await.unwrap();
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.text().await.unwrap();
            Answer {
                status,
                headers,
                body,
            }
        });
        let burst = futures::future::join_all(sent).await;
        let windows = (unix_secs() - first + 1) as usize;
        let passed = burst.iter().filter(|a| a.status == StatusCode::OK).count();
        assert!(
            passed <= limit * windows,
            "{passed} passed in {windows} one-second windows of {limit}"
        );
        let refused = burst
            .iter()
            .any(|a| a.status == StatusCode::TOO_MANY_REQUESTS);
        answers.extend(burst);
        if refused {
            return answers;
        }
    }
    panic!("five bursts of {} requests, none refused", 3 * limit);
}

// ---------------------------------------------------------------------------------------
// Boruta

async fn boruta_token(sim: &SimProcess, scope: &str) -> String {
    let response = http()
        .post(format!("{}/oauth/token", sim.url("boruta")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(response).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    body["access_token"].as_str().unwrap().to_string()
}

fn backends_url(sim: &SimProcess) -> String {
    format!("{}/api/backends", sim.url("boruta"))
}

#[tokio::test]
async fn boruta_token_flow_and_scope_check() {
    let sim = start();
    let url = backends_url(&sim);

    let bad = http()
        .post(format!("{}/oauth/token", sim.url("boruta")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(body_json(bad).await["error"], "invalid_client");

    let (status, body) = call(Method::GET, &url, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "UNAUTHORIZED");
    let (status, _) = call(Method::GET, &url, Some("made-up"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let weak = boruta_token(&sim, "openid").await;
    let (status, body) = call(Method::GET, &url, Some(&weak), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "FORBIDDEN");

    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let (status, body) = call(Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], DEFAULT_BACKEND);
    assert_eq!(body["data"][0]["is_default"], true);

    // Client credentials in a Basic header work too.
    let basic = http()
        .post(format!("{}/oauth/token", sim.url("boruta")))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", BORUTA_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
}

#[tokio::test]
async fn boruta_tokens_expire_with_the_configured_ttl() {
    let sim = SimProcess::start(SimOptions {
        token_ttl_seconds: 1,
        ..SimOptions::default()
    });
    let response = http()
        .post(format!("{}/oauth/token", sim.url("boruta")))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            ("scope", BORUTA_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    let body = body_json(response).await;
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_string();
    let url = backends_url(&sim);
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = call(Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn boruta_tokens_can_be_expired_on_demand() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );
    let expired = sim.expire_tokens(Some("boruta")).await;
    assert_eq!(expired["expired"], 1);
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn boruta_backend_crud() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);

    // Without the {"backend": ...} wrapper the server answers 400.
    let (status, body) = call(Method::POST, &url, Some(&token), Some(json!({"name": "x"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BAD_REQUEST");

    let response = http()
        .post(&url)
        .bearer_auth(&token)
        .json(
            &json!({"backend": {"name": "ldap", "type": "Elixir.BorutaIdentity.Accounts.Ldap",
            "ldap_host": "ldap.example", "ldap_user_rdn_attribute": "uid",
            "ldap_base_dn": "dc=example", "ldap_master_password": "s3cret",
            "features": ["ignored"]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let created = body_json(response).await["data"].clone();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/boruta/api/backends/{id}"));
    assert_eq!(created["ldap_pool_size"], 5);
    assert_eq!(created["password_hashing_alg"], "argon2");
    assert_eq!(
        created["ldap_master_password"], "s3cret",
        "GET returns secrets in plain text"
    );
    assert_eq!(created["is_default"], false);
    assert_eq!(created["roles"], json!([]));
    assert!(
        created["features"]
            .as_array()
            .unwrap()
            .contains(&json!("authenticable"))
    );
    assert!(
        !created["features"]
            .as_array()
            .unwrap()
            .contains(&json!("ignored"))
    );

    let one = format!("{url}/{id}");
    let (status, body) = call(Method::GET, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], created);

    let (status, body) = call(Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);

    // Fields left out of an update keep their value (Ecto cast)...
    let update = json!({"backend": {"name": "ldap2", "ldap_pool_size": 7}});
    let (status, body) = call(Method::PUT, &one, Some(&token), Some(update)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["name"], "ldap2");
    assert_eq!(body["data"]["ldap_pool_size"], 7);
    assert_eq!(body["data"]["ldap_host"], "ldap.example");
    // ...and PATCH behaves the same.
    let (status, body) = call(
        Method::PATCH,
        &one,
        Some(&token),
        Some(json!({"backend": {"smtp_port": 25}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["smtp_port"], 25);

    let (status, body) = call(Method::DELETE, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, body) = call(Method::GET, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
    assert!(body["message"].is_string());
    let (status, _) = call(Method::DELETE, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The stored backend list is what /_sim/state shows.
    let state = sim.state().await;
    assert_eq!(state["boruta"]["backends"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn boruta_roles_are_replaced_on_update_and_scopes_are_computed() {
    let sim = start();
    let role_id = "11111111-2222-3333-4444-555555555555";
    sim.seed(json!({"boruta": {"roles": [{"id": role_id, "name": "admin",
        "scopes": [{"id": "s1", "name": "users:manage:all"}]}]}}))
        .await;
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    let body = json!({"backend": {"name": "b", "roles": [{"id": role_id, "name": "whatever", "scopes": []}]}});
    let (status, created) = call(Method::POST, &url, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let roles = &created["data"]["roles"];
    assert_eq!(roles[0]["id"], role_id);
    assert_eq!(roles[0]["name"], "admin", "role names come from the server");
    assert_eq!(roles[0]["scopes"][0]["name"], "users:manage:all");

    // Roles come back in Boruta's order (here by id), not in the order they were sent.
    let other = "00000000-2222-3333-4444-555555555555";
    sim.seed(json!({"boruta": {"roles": [{"id": other, "name": "viewer"}]}}))
        .await;
    let body = json!({"backend": {"name": "c", "roles": [{"id": role_id}, {"id": other}]}});
    let (_, two) = call(Method::POST, &url, Some(&token), Some(body)).await;
    let ids: Vec<&str> = two["data"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [other, role_id]);

    let one = format!("{url}/{}", created["data"]["id"].as_str().unwrap());
    let (status, body) = call(
        Method::PUT,
        &one,
        Some(&token),
        Some(json!({"backend": {"name": "b"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"]["roles"],
        json!([]),
        "an update without roles deletes all role links"
    );

    let unknown = json!({"backend": {"name": "b", "roles": [{"id": "99999999-2222-3333-4444-555555555555"}]}});
    let (status, body) = call(Method::PUT, &one, Some(&token), Some(unknown)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["errors"]["roles"].is_array());
}

#[tokio::test]
async fn boruta_validation_errors_have_boruta_shape() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    let cases = [
        (json!({}), "name", "can't be blank"),
        (
            json!({"name": "x", "password_hashing_alg": null}),
            "password_hashing_alg",
            "can't be blank",
        ),
        (
            json!({"name": "x", "type": "Elixir.Nope"}),
            "type",
            "is invalid",
        ),
        (
            json!({"name": "x", "password_hashing_alg": "md5"}),
            "password_hashing_alg",
            "is invalid",
        ),
        (
            json!({"name": "x", "smtp_tls": "sometimes"}),
            "smtp_tls",
            "is invalid",
        ),
        (json!({"name": 42}), "name", "is invalid"),
        (
            json!({"name": "x", "smtp_port": "twenty"}),
            "smtp_port",
            "is invalid",
        ),
        (
            json!({"name": "x", "type": "Elixir.BorutaIdentity.Accounts.Ldap"}),
            "ldap_host",
            "can't be blank",
        ),
        (
            json!({"name": "x", "type": "Elixir.BorutaIdentity.Accounts.Ldap", "ldap_host": "h",
                   "ldap_user_rdn_attribute": "uid", "ldap_base_dn": "dc=x", "ldap_pool_size": 51}),
            "ldap_pool_size",
            "is invalid",
        ),
        (
            json!({"name": "x", "type": "Elixir.BorutaIdentity.Accounts.Ldap", "ldap_host": "h",
                   "ldap_user_rdn_attribute": "uid", "ldap_base_dn": "dc=x", "ldap_pool_size": 0}),
            "ldap_pool_size",
            "is invalid",
        ),
        (
            json!({"name": "x", "is_default": "maybe"}),
            "is_default",
            "is invalid",
        ),
        // The JSON schemas boruta-server checks its JSON columns against.
        (
            json!({"name": "x", "federated_servers": [{"name": "idp", "client_id": "c", "base_url": "u"}]}),
            "federated_servers",
            "Required property client_secret was not present. at #/0",
        ),
        (
            json!({"name": "x", "federated_servers": [{"name": "my idp", "client_id": "c",
                   "client_secret": "s", "base_url": "u", "clientSecretRef": {}}]}),
            "federated_servers",
            "Schema does not allow additional properties. at #/0/clientSecretRef",
        ),
        (
            json!({"name": "x", "federated_servers": [{"name": "my idp", "client_id": "c",
                   "client_secret": "s", "base_url": "u"}]}),
            "federated_servers",
            "Does not match pattern \"^[^ ]+$\". at #/0/name",
        ),
        (
            json!({"name": "x", "metadata_fields": [{"attribute_name": "dept", "label": "Department"}]}),
            "metadata_fields",
            "Schema does not allow additional properties. at #/0/label",
        ),
        (
            json!({"name": "x", "password_hashing_alg": "bcrypt", "password_hashing_opts": {"t_cost": 3}}),
            "password_hashing_opts",
            "Schema does not allow additional properties. at #/t_cost",
        ),
        (
            json!({"name": "x", "password_hashing_opts": {"hashlen": 0}}),
            "password_hashing_opts",
            "Expected the value to be between 1 and 128. at #/hashlen",
        ),
    ];
    for (backend, field, message) in cases {
        let (status, body) = call(
            Method::POST,
            &url,
            Some(&token),
            Some(json!({"backend": backend.clone()})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend}");
        assert_eq!(body["code"], "UNPROCESSABLE_ENTITY");
        assert!(body["message"].is_string());
        let messages = body["errors"][field]
            .as_array()
            .unwrap_or_else(|| panic!("{backend}: {body}"));
        assert!(messages.contains(&json!(message)), "{backend}: {body}");
    }
    // Nothing was created by the failed attempts.
    let (_, list) = call(Method::GET, &url, Some(&token), None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn boruta_default_backend_rules() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    let default = format!("{url}/{DEFAULT_BACKEND}");

    let (status, body) = call(
        Method::PUT,
        &default,
        Some(&token),
        Some(json!({"backend": {"is_default": false}})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["errors"]["is_default"][0],
        "There must be at least one default backend."
    );

    let (status, _) = call(Method::DELETE, &default, Some(&token), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, created) = call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"backend": {"name": "new", "is_default": true}})),
    )
    .await;
    let new_id = created["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["data"]["is_default"], true);
    let (_, old) = call(Method::GET, &default, Some(&token), None).await;
    assert_eq!(
        old["data"]["is_default"], false,
        "setting a new default demotes the old one"
    );
    // is_default: false on a backend that is not the default is no change, hence fine.
    let (status, _) = call(
        Method::PUT,
        &default,
        Some(&token),
        Some(json!({"backend": {"is_default": false}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(Method::DELETE, &default, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let with_users = "22222222-0000-0000-0000-000000000000";
    sim.seed(json!({"boruta": {"backends": [{"id": with_users, "name": "busy", "users": 3}]}}))
        .await;
    let (status, body) = call(
        Method::DELETE,
        &format!("{url}/{with_users}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["errors"]["user"].is_array());
    let (status, _) = call(
        Method::DELETE,
        &format!("{url}/{new_id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "still the default"
    );
}

#[tokio::test]
async fn boruta_bad_input_gets_boruta_errors() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    let malformed = http()
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"backend\": {")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(malformed).await["code"], "BAD_REQUEST");

    let (status, _) = call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"backend": "a string"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(Method::POST, &url, Some(&token), Some(json!([1, 2]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        Method::GET,
        &format!("{url}/not-a-uuid"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = call(
        Method::GET,
        &format!("{}/api/nothing", sim.url("boruta")),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "NOT_FOUND");
    let (status, _) = call(Method::DELETE, &url, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let huge = format!(
        "{{\"backend\": {{\"name\": \"{}\"}}}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let too_big = http()
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Still serving.
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn boruta_oauth_is_rate_limited_per_ip_with_an_empty_429() {
    let sim = start();
    let token_url = format!("{}/oauth/token", sim.url("boruta"));
    align_to_second().await;
    // Fired together so that most land in one second even on a loaded machine; the window a
    // request counts in is the second it reached the server, so check per second.
    let requests = (0..25).map(|_| {
        let token_url = token_url.clone();
        async move {
            let response = http()
                .post(&token_url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", "sim-client"),
                    ("client_secret", "sim-secret"),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert!(response.headers().get("retry-after").is_none());
                assert!(response.headers().get("x-ratelimit-limit").is_none());
                assert_eq!(response.text().await.unwrap(), "");
            }
            status
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(ok + limited, 25, "{statuses:?}");
    // 25 requests span at most a few seconds: 10 per second pass, the rest get the empty 429.
    assert!((10..=20).contains(&ok) && limited >= 5, "{statuses:?}");
    // The admin API itself is not limited.
    let token = {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        boruta_token(&sim, BORUTA_SCOPE).await
    };
    for _ in 0..20 {
        assert_eq!(
            call(Method::GET, &backends_url(&sim), Some(&token), None)
                .await
                .0,
            StatusCode::OK
        );
    }
}

// ---------------------------------------------------------------------------------------
// The /_sim endpoints

#[tokio::test]
async fn unknown_prefixes_get_404_and_listening_line_is_parsed() {
    let sim = start();
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(sim.url("/auth0/"), format!("{}/auth0", sim.base_url()));
    let response = http()
        .get(format!("{}/nothing/here", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn calls_and_log_record_vendor_traffic() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    let since = sim.log().await["lastSeq"].as_u64().unwrap();
    for replica in ["replica-a", "replica-b"] {
        let response = http()
            .post(&url)
            .bearer_auth(&token)
            .header("x-sim-client", replica)
            .json(&json!({"backend": {"name": replica}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    call(
        Method::GET,
        &format!("{url}/{DEFAULT_BACKEND}"),
        Some(&token),
        None,
    )
    .await;

    let calls = sim.calls().await;
    assert_eq!(calls["boruta"]["POST"]["200"], 1, "the token call: {calls}");
    assert_eq!(calls["boruta"]["POST"]["201"], 2);
    assert_eq!(calls["boruta"]["GET"]["200"], 1);
    assert!(calls.get("_sim").is_none());

    let log = sim.log_since("boruta", since).await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["client"], "replica-a");
    assert_eq!(entries[1]["client"], "replica-b");
    assert_eq!(entries[0]["method"], "POST");
    assert_eq!(entries[0]["path"], "/boruta/api/backends");
    assert_eq!(entries[0]["status"], 201);
    assert_eq!(entries[0]["body"]["backend"]["name"], "replica-a");
    assert!(entries[0]["timestampMs"].as_u64().unwrap() > 0);
    assert!(entries[1]["seq"].as_u64() > entries[0]["seq"].as_u64());

    // Auth bodies are logged with their secrets redacted.
    let all = sim.log().await;
    let token_call = &all["entries"][0];
    assert_eq!(token_call["path"], "/boruta/oauth/token");
    assert_eq!(token_call["body"]["client_id"], "sim-client");
    assert_eq!(token_call["body"]["client_secret"], "[redacted]");

    // So are the passwords of write bodies, at any depth; a password not sent stays absent.
    let secret_backend = json!({"backend": {"name": "with-secrets", "ldap_master_password": "s3cret",
        "smtp_password": null, "federated_servers": [{"name": "idp", "client_id": "c",
        "client_secret": "fed-s3cret", "base_url": "https://idp.example"}]}});
    let seq = sim.log().await["lastSeq"].as_u64().unwrap();
    let (status, _) = call(Method::POST, &url, Some(&token), Some(secret_backend)).await;
    assert_eq!(status, StatusCode::CREATED);
    let logged = sim.log_since("boruta", seq).await["entries"][0]["body"]["backend"].clone();
    assert_eq!(logged["ldap_master_password"], "[redacted]");
    assert_eq!(logged["smtp_password"], Value::Null);
    assert_eq!(
        logged["federated_servers"][0]["client_secret"],
        "[redacted]"
    );
    assert_eq!(logged["federated_servers"][0]["client_id"], "c");
    assert!(!sim.log().await.to_string().contains("s3cret"));

    let empty = sim.log_since("auth0", 0).await;
    assert_eq!(empty["entries"], json!([]));
}

#[tokio::test]
async fn ignore_fields_fault_keeps_the_old_value_of_one_field() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    let body = json!({"backend": {"name": "ignored", "smtp_port": 25, "smtp_relay": "a.example"}});
    let (_, created) = call(Method::POST, &url, Some(&token), Some(body)).await;
    let one = format!("{url}/{}", created["data"]["id"].as_str().unwrap());
    let faults = sim
        .faults(json!({"api": "boruta", "ignoreFields": ["smtp_port"]}))
        .await;
    assert_eq!(faults["boruta"]["ignoreFields"], json!(["smtp_port"]));

    // The update is answered as usual, but smtp_port keeps its value there, in the state and
    // in every read; the other fields of the same write are stored.
    let update =
        json!({"backend": {"name": "ignored", "smtp_port": 587, "smtp_relay": "b.example"}});
    let (status, answer) = call(Method::PUT, &one, Some(&token), Some(update.clone())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["data"]["smtp_port"], 25);
    assert_eq!(answer["data"]["smtp_relay"], "b.example");
    let (_, read) = call(Method::GET, &one, Some(&token), None).await;
    assert_eq!(read["data"]["smtp_port"], 25);
    // The same write again: still ignored, and counted.
    call(Method::PUT, &one, Some(&token), Some(update.clone())).await;
    assert_eq!(
        sim.get_faults().await["boruta"]["injected"]["ignoredWrites"],
        2
    );
    // A write that leaves the field as it is ignores nothing.
    let same = json!({"backend": {"name": "ignored", "smtp_port": 25}});
    call(Method::PUT, &one, Some(&token), Some(same)).await;
    assert_eq!(
        sim.get_faults().await["boruta"]["injected"]["ignoredWrites"],
        2
    );

    // Every API honours it, nested paths included: VCD's definedSettings.hostName.
    sim.faults(json!({"api": "vcd", "ignoreFields": ["definedSettings.hostName"]}))
        .await;
    let vcd = vcd_token(&sim, "acme").await;
    let ldap = ldap_url(&sim);
    let (status, _) = vcd_call(
        Method::PUT,
        &ldap,
        &vcd,
        None,
        Some(defined_ldap(Some("pw"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut changed = defined_ldap(None);
    changed["definedSettings"]["hostName"] = json!("other.acme");
    changed["definedSettings"]["port"] = json!(389);
    let (_, answer) = vcd_call(Method::PUT, &ldap, &vcd, None, Some(changed)).await;
    assert_eq!(answer["definedSettings"]["port"], 389);
    assert_ne!(answer["definedSettings"]["hostName"], "other.acme");

    // Without the fault the write applies.
    sim.clear_faults().await;
    let (_, answer) = call(Method::PUT, &one, Some(&token), Some(update)).await;
    assert_eq!(answer["data"]["smtp_port"], 587);
    let bad = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({"api": "boruta", "ignoreFields": [""]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn log_is_a_bounded_ring_buffer() {
    let sim = start_with(&["--log-capacity", "5"]);
    for _ in 0..8 {
        call(Method::GET, &backends_url(&sim), None, None).await;
    }
    let log = sim.log().await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["seq"], 4);
    assert_eq!(log["lastSeq"], 8);
    assert_eq!(sim.calls().await["boruta"]["GET"]["401"], 8);
}

#[tokio::test]
async fn faults_inject_latency_errors_and_429_bursts() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);

    sim.faults(json!({"api": "boruta", "latencyMs": 300})).await;
    let started = Instant::now();
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A client timeout shorter than the latency sees a timeout.
    let timed_out = Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await;
    assert!(timed_out.unwrap_err().is_timeout());

    sim.faults(json!({"api": "boruta", "errorRate": 1.0, "errorStatus": 502}))
        .await;
    let (status, body) = call(Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body["code"].is_string(), "Boruta's error shape: {body}");

    sim.faults(json!({"api": "*", "burst429": 2})).await;
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );

    sim.faults(json!({"api": "boruta", "errorRate": 1.0})).await;
    sim.clear_faults().await;
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );

    let (status, _) = call(
        Method::POST,
        &format!("{}/_sim/faults", sim.base_url()),
        None,
        Some(json!({"api": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        Method::POST,
        &format!("{}/_sim/faults", sim.base_url()),
        None,
        Some(json!({"latency": 3})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused"
    );
    let (status, body) = call(
        Method::POST,
        &format!("{}/_sim/faults", sim.base_url()),
        None,
        Some(json!({"errorRate": 0.6, "truncateRate": 0.6})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn response_delay_applies_the_change_before_the_client_times_out() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    sim.faults(json!({"api": "boruta", "responseDelayMs": 2000}))
        .await;
    let client = Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let result = client
        .post(backends_url(&sim))
        .bearer_auth(&token)
        .json(&json!({"backend": {"name": "late"}}))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    let state = sim.state().await;
    assert!(
        state["boruta"]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "late")
    );
}

/// The names of Boruta's backends in the simulator's state.
async fn backend_names(sim: &SimProcess) -> Vec<String> {
    sim.state().await["boruta"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_cut_short_answer_comes_after_the_change() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    sim.faults(
        json!({"api": "boruta", "method": "POST", "path": "/api/backends", "truncateRate": 1}),
    )
    .await;
    let response = http()
        .post(&url)
        .bearer_auth(&token)
        .json(&json!({"backend": {"name": "cut"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.unwrap();
    assert!(text.starts_with(r#"{"data":"#), "{text}");
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "cut short: {text}"
    );
    assert!(backend_names(&sim).await.contains(&"cut".to_owned()));
    // Out of scope (a GET), answers are whole.
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );
    assert_eq!(sim.get_faults().await["boruta"]["injected"]["truncated"], 1);
}

#[tokio::test]
async fn a_dropped_connection_comes_after_the_change() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    sim.faults(json!({"api": "boruta", "method": "POST", "path": "/api/backends", "dropAfterApplyRate": 1}))
        .await;
    let sent = http()
        .post(backends_url(&sim))
        .bearer_auth(&token)
        .json(&json!({"backend": {"name": "dropped"}}))
        .send()
        .await;
    // No answer: the request fails, or (when the status line got out first) its body does.
    let answered = match sent {
        Err(e) => Err(e),
        Ok(response) => response.text().await,
    };
    assert!(answered.is_err(), "{answered:?}");
    assert!(backend_names(&sim).await.contains(&"dropped".to_owned()));
    assert_eq!(sim.get_faults().await["boruta"]["injected"]["dropped"], 1);
    // The token endpoint was out of scope.
    boruta_token(&sim, BORUTA_SCOPE).await;
}

#[tokio::test]
async fn a_proxy_page_replaces_the_api_answer_and_changes_nothing() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    sim.faults(json!({"api": "boruta", "htmlRate": 1, "htmlStatus": 503}))
        .await;
    let response = http()
        .post(backends_url(&sim))
        .bearer_auth(&token)
        .json(&json!({"backend": {"name": "never"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["content-type"], "text/html");
    let page = response.text().await.unwrap();
    assert!(
        page.contains("<title>503 Service Unavailable</title>"),
        "{page}"
    );
    assert!(!backend_names(&sim).await.contains(&"never".to_owned()));
    // Every path of the API, its token endpoint too (an API down behind its load balancer).
    let token_answer = http()
        .post(format!("{}/oauth/token", sim.url("boruta")))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token_answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sim.get_faults().await["boruta"]["injected"]["html"], 2);
    // A 200 page (a captive portal, a maintenance page).
    sim.faults(json!({"api": "boruta", "htmlRate": 1, "htmlStatus": 200}))
        .await;
    let response = http()
        .get(backends_url(&sim))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().starts_with("<html>"));
}

#[tokio::test]
async fn lagging_reads_miss_new_objects_for_a_while() {
    let sim = start();
    seed_auth0(&sim).await;
    let lag = json!({"readLagMs": 1500});
    let mut faults = vec![];
    for api in ["boruta", "auth0", "entrust"] {
        let mut f = lag.clone();
        f["api"] = json!(api);
        faults.push(f);
    }
    sim.faults(Value::Array(faults)).await;
    let (boruta, auth0, entrust) = (
        boruta_token(&sim, BORUTA_SCOPE).await,
        auth0_token(&sim).await,
        entrust_token(&sim).await,
    );
    let (status, created) = call(
        Method::POST,
        &backends_url(&sim),
        Some(&boruta),
        Some(json!({"backend": {"name": "fresh"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["data"]["id"].as_str().unwrap().to_owned();
    let backend_url = format!("{}/{id}", backends_url(&sim));
    let conns = org_connections_url(&sim, "org_acme");
    let enable = || {
        call(
            Method::POST,
            &conns,
            Some(&auth0),
            Some(json!({"connection_id": "con_saml"})),
        )
    };
    let apps = apps_url(&sim);
    let create_app = || {
        entrust_call(
            Method::POST,
            &apps,
            &entrust,
            Some(json!({"name": "fresh", "roleId": "role-1"})),
        )
    };
    assert_eq!(enable().await.0, StatusCode::CREATED);
    assert_eq!(create_app().await.0, StatusCode::OK);

    // Reads do not see them yet; writes do (a second create is refused as a duplicate).
    let (_, list) = call(Method::GET, &backends_url(&sim), Some(&boruta), None).await;
    assert!(
        !list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == id)
    );
    assert_eq!(
        call(Method::GET, &backend_url, Some(&boruta), None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = call(Method::GET, &conns, Some(&auth0), None).await;
    assert_eq!(list, json!([]));
    let (status, _) = call(
        Method::GET,
        &format!("{conns}/con_saml"),
        Some(&auth0),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(enable().await.0, StatusCode::CONFLICT);
    let (_, apps) = entrust_call(Method::GET, &apps_url(&sim), &entrust, None).await;
    assert_eq!(apps, json!([]));
    assert_eq!(create_app().await.0, StatusCode::CONFLICT);

    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        call(Method::GET, &backend_url, Some(&boruta), None).await.0,
        StatusCode::OK
    );
    let (_, list) = call(Method::GET, &conns, Some(&auth0), None).await;
    assert_eq!(list[0]["connection_id"], "con_saml");
    let (_, apps) = entrust_call(Method::GET, &apps_url(&sim), &entrust, None).await;
    assert_eq!(apps[0]["name"], "fresh");
}

#[tokio::test]
async fn reset_empties_state_but_keeps_tokens_and_settings() {
    let sim = start();
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let url = backends_url(&sim);
    call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"backend": {"name": "gone soon"}})),
    )
    .await;
    sim.faults(json!({"api": "auth0", "burst429": 3})).await;
    sim.reset().await;
    let state = sim.state().await;
    assert_eq!(
        state["boruta"]["backends"].as_array().unwrap().len(),
        1,
        "only the built-in default"
    );
    assert_eq!(sim.calls().await, json!({}));
    assert_eq!(sim.log().await["entries"], json!([]));
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn seed_rejects_bad_documents() {
    let sim = start();
    let seed = format!("{}/_sim/seed", sim.base_url());
    for bad in [
        json!([]),
        json!({"nope": {}}),
        json!({"boruta": {"backends": [{"id": "not-a-uuid"}]}}),
    ] {
        let (status, body) = call(Method::POST, &seed, None, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn state_file_is_loaded_at_start_and_written_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let seeded = "33333333-0000-0000-0000-000000000000";
    std::fs::write(
        &path,
        json!({"boruta": {"backends": [{"id": seeded, "name": "from file"}]}}).to_string(),
    )
    .unwrap();
    let mut sim = start_with(&["--state", path.to_str().unwrap()]);
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let (status, body) = call(
        Method::GET,
        &format!("{}/{seeded}", backends_url(&sim)),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["name"], "from file");
    call(
        Method::POST,
        &backends_url(&sim),
        Some(&token),
        Some(json!({"backend": {"name": "added"}})),
    )
    .await;

    let exit = sim.stop_gracefully();
    assert!(exit.success(), "{exit:?}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let names: Vec<&str> = saved["boruta"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default", "from file", "added"]);

    // The saved file seeds the next run.
    let sim = start_with(&["--state", path.to_str().unwrap()]);
    assert_eq!(
        sim.state().await["boruta"]["backends"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

// ---------------------------------------------------------------------------------------
// Scale

#[tokio::test]
async fn many_objects_and_500_concurrent_requests_all_answered() {
    let sim = start();
    let backends: Vec<Value> = (0..3000)
        .map(|i| json!({"name": format!("backend-{i}")}))
        .collect();
    sim.seed(json!({"boruta": {"backends": backends}})).await;
    let token = boruta_token(&sim, BORUTA_SCOPE).await;
    let ids: Vec<String> = sim.state().await["boruta"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3001);

    let client = http();
    let url = backends_url(&sim);
    let requests = (0..500).map(|i| {
        let (client, token) = (client.clone(), token.clone());
        let target = format!("{url}/{}", ids[i * 6]);
        async move {
            let response = client.get(target).bearer_auth(token).send().await.unwrap();
            response.status()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(sim.calls().await["boruta"]["GET"]["200"], 500);
}

// ---------------------------------------------------------------------------------------
// Auth0

async fn auth0_token(sim: &SimProcess) -> String {
    let response = http()
        .post(format!("{}/oauth/token", sim.url("auth0")))
        .json(
            &json!({"grant_type": "client_credentials", "client_id": "sim-client",
            "client_secret": "sim-secret", "audience": "https://tenant.example/api/v2/"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = body_json(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    body["access_token"].as_str().unwrap().to_string()
}

async fn seed_auth0(sim: &SimProcess) {
    sim.seed(json!({"auth0": {
        "organizations": [{"id": "org_acme", "name": "acme"}],
        "connections": [
            {"id": "con_db", "name": "Username-Password-Authentication", "strategy": "auth0"},
            {"id": "con_saml", "name": "corp-saml", "strategy": "samlp"}
        ]
    }}))
    .await;
}

fn org_connections_url(sim: &SimProcess, org: &str) -> String {
    format!(
        "{}/api/v2/organizations/{org}/connections",
        sim.url("auth0")
    )
}

#[tokio::test]
async fn auth0_token_endpoint_accepts_json_and_form_and_checks_audience() {
    let sim = start();
    let url = format!("{}/oauth/token", sim.url("auth0"));
    auth0_token(&sim).await;
    let form = http()
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sim-client"),
            ("client_secret", "sim-secret"),
            ("audience", "http://127.0.0.1/auth0/api/v2/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);

    let cases = [
        (
            json!({"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "x",
            "audience": "https://t/api/v2/"}),
            StatusCode::UNAUTHORIZED,
            "access_denied",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "sim-secret"}),
            StatusCode::FORBIDDEN,
            "access_denied",
        ),
        (
            json!({"grant_type": "client_credentials", "client_id": "sim-client", "client_secret": "sim-secret",
            "audience": "https://t/other"}),
            StatusCode::FORBIDDEN,
            "access_denied",
        ),
        (
            json!({"client_id": "sim-client", "client_secret": "sim-secret"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, error) in cases {
        let (got, reply) = call(Method::POST, &url, None, Some(body.clone())).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(reply["error"], error, "{body}");
        assert!(reply["error_description"].is_string());
    }
}

#[tokio::test]
async fn auth0_management_api_401s() {
    let sim = start();
    seed_auth0(&sim).await;
    let url = org_connections_url(&sim, "org_acme");
    let (status, body) = call(Method::GET, &url, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["statusCode"], 401);
    assert_eq!(body["error"], "Unauthorized");
    assert_eq!(body["message"], "Missing authentication");
    assert_eq!(
        call(Method::GET, &url, Some("forged"), None).await.1["message"],
        "Invalid token"
    );
    let token = auth0_token(&sim).await;
    assert_eq!(
        call(Method::GET, &url, Some(&token), None).await.0,
        StatusCode::OK
    );
    sim.expire_tokens(Some("auth0")).await;
    let (status, body) = call(Method::GET, &url, Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["message"].as_str().unwrap().contains("Expired"));
}

#[tokio::test]
async fn auth0_org_connection_lifecycle() {
    let sim = start();
    seed_auth0(&sim).await;
    let token = auth0_token(&sim).await;
    let url = org_connections_url(&sim, "org_acme");

    let (status, created) = call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({
        "connection_id": "con_saml", "assign_membership_on_login": true,
        "organization_connection_name": "corp"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["connection_id"], "con_saml");
    assert_eq!(created["assign_membership_on_login"], true);
    assert_eq!(created["show_as_button"], true);
    assert_eq!(created["is_signup_enabled"], false);
    assert_eq!(created["organization_connection_name"], "corp");
    assert_eq!(
        created["connection"],
        json!({"name": "corp-saml", "strategy": "samlp"})
    );

    let (status, body) = call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"connection_id": "con_saml"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["statusCode"], 409);
    assert!(body["errorCode"].is_string());
    let (status, _) = call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"connection_id": "con_nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"show_as_button": true})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "invalid_body");
    let (status, body) = call(
        Method::POST,
        &org_connections_url(&sim, "org_nope"),
        Some(&token),
        Some(json!({"connection_id": "con_db"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "Not Found");

    let one = format!("{url}/con_saml");
    let (status, body) = call(Method::GET, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, created);

    let patch =
        json!({"organization_access_level": "full", "is_enabled": false, "show_as_button": false});
    let (status, body) = call(Method::PATCH, &one, Some(&token), Some(patch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["organization_access_level"], "full");
    assert_eq!(body["is_enabled"], false);
    assert_eq!(
        body["assign_membership_on_login"], true,
        "PATCH leaves other fields alone"
    );
    assert_eq!(body["connection"]["name"], "corp-saml");

    // null is accepted and never returned.
    let (status, body) = call(
        Method::PATCH,
        &one,
        Some(&token),
        Some(json!({"organization_access_level": null, "organization_connection_name": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["organization_access_level"], "none");
    assert!(body.get("organization_connection_name").is_none(), "{body}");

    let (status, _) = call(Method::DELETE, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(Method::GET, &one, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["statusCode"], 404);
    assert_eq!(
        call(Method::DELETE, &one, Some(&token), None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn auth0_patch_validation() {
    let sim = start();
    seed_auth0(&sim).await;
    let token = auth0_token(&sim).await;
    let url = org_connections_url(&sim, "org_acme");
    call(
        Method::POST,
        &url,
        Some(&token),
        Some(json!({"connection_id": "con_db"})),
    )
    .await;
    let one = format!("{url}/con_db");
    let bad = [
        json!({"organization_connection_name": "has space"}),
        json!({"organization_connection_name": ""}),
        json!({"organization_connection_name": "x".repeat(51)}),
        json!({"organization_access_level": "admin"}),
        json!({"show_as_button": "yes"}),
        json!({"assign_membership_on_login": null}),
        json!({"unknown_field": 1}),
        json!({}),
        json!([1]),
    ];
    for body in bad {
        let (status, reply) = call(Method::PATCH, &one, Some(&token), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply["statusCode"], 400);
        assert_eq!(reply["error"], "Bad Request");
        assert_eq!(reply["errorCode"], "invalid_body", "{body}");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .starts_with("Payload validation error"),
            "{reply}"
        );
    }
    let (status, body) = call(
        Method::PATCH,
        &one,
        Some(&token),
        Some(json!({"organization_connection_name": "x".repeat(50), "is_enabled": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["is_enabled"], true);
    let malformed = http()
        .patch(&one)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(malformed).await["errorCode"], "invalid_body");
    let long_org = org_connections_url(&sim, &"o".repeat(51));
    assert_eq!(
        call(Method::GET, &long_org, Some(&token), None).await.0,
        StatusCode::BAD_REQUEST
    );
    // The simulator's stored state is what arrived.
    let state = sim.state().await;
    assert_eq!(
        state["auth0"]["organizationConnections"][0]["organization_connection_name"],
        "x".repeat(50)
    );
}

#[tokio::test]
async fn auth0_list_paginates() {
    let sim = start();
    let connections: Vec<Value> = (0..7)
        .map(|i| json!({"id": format!("con_{i}"), "name": format!("c{i}"), "strategy": "auth0"}))
        .collect();
    let enabled: Vec<Value> = (0..7)
        .map(|i| json!({"organization_id": "org_big", "connection_id": format!("con_{i}")}))
        .collect();
    sim.seed(
        json!({"auth0": {"organizations": [{"id": "org_big"}], "connections": connections,
        "organizationConnections": enabled}}),
    )
    .await;
    let token = auth0_token(&sim).await;
    let url = org_connections_url(&sim, "org_big");

    let (_, all) = call(Method::GET, &url, Some(&token), None).await;
    assert_eq!(all.as_array().unwrap().len(), 7);
    let (_, page) = call(
        Method::GET,
        &format!("{url}?page=1&per_page=3&include_totals=true"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(page["total"], 7);
    assert_eq!(page["start"], 3);
    assert_eq!(page["limit"], 3);
    let ids: Vec<&str> = page["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connection_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["con_3", "con_4", "con_5"]);
    let (_, last) = call(
        Method::GET,
        &format!("{url}?page=2&per_page=3"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(last.as_array().unwrap().len(), 1);
    for bad in [
        "per_page=0",
        "per_page=101",
        "page=-1",
        "include_totals=maybe",
    ] {
        let (status, body) = call(Method::GET, &format!("{url}?{bad}"), Some(&token), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["errorCode"], "invalid_query_string");
    }
    // The legacy family shows fewer fields of the same connections.
    let legacy = format!(
        "{}/api/v2/organizations/org_big/enabled_connections?include_totals=true",
        sim.url("auth0")
    );
    let (status, body) = call(Method::GET, &legacy, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 7);
    let first = &body["enabled_connections"][0];
    assert!(
        first.get("show_as_button").is_some() && first.get("organization_access_level").is_none(),
        "{first}"
    );
}

#[tokio::test]
async fn auth0_rate_limit_answers_429_with_headers() {
    let sim = start();
    seed_auth0(&sim).await;
    let token = auth0_token(&sim).await;
    let url = org_connections_url(&sim, "org_acme");
    sim.faults(json!({"api": "auth0", "rateLimit": {"requestsPerSecond": 5}}))
        .await;
    let answers = bursts_until_limited(5, || http().get(&url).bearer_auth(&token)).await;
    let mut limited = 0;
    for answer in &answers {
        let headers = &answer.headers;
        assert_eq!(headers["x-ratelimit-limit"], "5");
        let reset: u64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        // The next window: at most a second or two after the answer was read.
        let now = unix_secs();
        assert!(
            reset + 2 >= now && reset <= now + 2,
            "reset {reset} now {now}"
        );
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert_eq!(headers["x-ratelimit-remaining"], "0");
            let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry_after >= 1);
            let body: Value = serde_json::from_str(&answer.body).unwrap();
            assert_eq!(body["statusCode"], 429);
            assert_eq!(body["errorCode"], "too_many_requests");
        } else {
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        }
    }
    assert_eq!(sim.calls().await["auth0"]["GET"]["429"], limited);
}

// ---------------------------------------------------------------------------------------
// Entrust

async fn entrust_authenticate(sim: &SimProcess, id: &str, secret: &str) -> (StatusCode, Value) {
    let url = format!("{}/api/web/v1/adminapi/authenticate", sim.url("entrust"));
    call(
        Method::POST,
        &url,
        None,
        Some(json!({"applicationId": id, "sharedSecret": secret})),
    )
    .await
}

async fn entrust_token(sim: &SimProcess) -> String {
    let (status, body) = entrust_authenticate(sim, "sim-client", "sim-secret").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["creationTime"].as_str().unwrap().ends_with('Z'));
    assert!(body["expirationTime"].as_str().unwrap() > body["creationTime"].as_str().unwrap());
    body["authToken"].as_str().unwrap().to_string()
}

/// Entrust takes the bare token in Authorization (or with `Bearer `).
async fn entrust_call(
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http().request(method, url).header("authorization", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

fn apps_url(sim: &SimProcess) -> String {
    format!("{}/api/web/v1/applications/adminapi", sim.url("entrust"))
}

#[tokio::test]
async fn entrust_authentication_accepts_bare_and_bearer_tokens() {
    let sim = start();
    let (status, body) = entrust_authenticate(&sim, "sim-client", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["errorCode"].is_string()
            && body["errorMessage"].is_string()
            && body["parameters"].is_array()
    );
    let token = entrust_token(&sim).await;
    let url = apps_url(&sim);
    assert_eq!(
        entrust_call(Method::GET, &url, &token, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        entrust_call(Method::GET, &url, &format!("Bearer {token}"), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = entrust_call(Method::GET, &url, "nonsense", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], "UNAUTHORIZED");
    assert_eq!(
        call(Method::GET, &url, None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    sim.expire_tokens(Some("entrust")).await;
    assert_eq!(
        entrust_call(Method::GET, &url, &token, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn entrust_application_lifecycle_and_secret_rotation() {
    let sim = start();
    let token = entrust_token(&sim).await;
    let url = apps_url(&sim);

    let (status, created) = entrust_call(Method::POST, &url, &token,
        Some(json!({"name": "ci", "roleId": "role-1", "description": "d", "allowLongLivedToken": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["sharedSecret"].as_str().unwrap().to_string();
    assert!(secret.len() >= 32);
    assert_eq!(created["applicationTemplate"], "Administration API");
    assert!(created["applicationTemplateId"].is_string());
    assert_eq!(created["allowLongLivedToken"], true);
    assert!(created["lastAuthnDate"].is_null());

    let one = format!("{url}/{id}");
    let (status, got) = entrust_call(Method::GET, &one, &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "ci");
    assert!(
        got["sharedSecret"].is_null(),
        "the secret is shown only when generated"
    );
    let (_, list) = entrust_call(Method::GET, &url, &token, None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // The new application can authenticate with its own secret.
    let (status, _) = entrust_authenticate(&sim, &id, &secret).await;
    assert_eq!(status, StatusCode::OK);
    assert!(entrust_call(Method::GET, &one, &token, None).await.1["lastAuthnDate"].is_string());

    // PUT: name required, absent fields unchanged, spRoleId "" unsets.
    let (status, updated) = entrust_call(
        Method::PUT,
        &one,
        &token,
        Some(json!({"name": "ci2", "spRoleId": "sp-1"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["name"], "ci2");
    assert_eq!(updated["description"], "d");
    assert_eq!(updated["spRoleId"], "sp-1");
    let (_, updated) = entrust_call(
        Method::PUT,
        &one,
        &token,
        Some(json!({"name": "ci2", "spRoleId": ""})),
    )
    .await;
    assert!(updated["spRoleId"].is_null());
    // roleId "" unsets the site role, as documented: the switch to a service-provider role.
    let (status, updated) = entrust_call(
        Method::PUT,
        &one,
        &token,
        Some(json!({"name": "ci2", "roleId": "", "spRoleId": "sp-2"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert!(updated["roleId"].is_null(), "{updated}");
    assert_eq!(updated["spRoleId"], "sp-2");
    // Unsetting both leaves the application without a role, which Entrust refuses.
    let (status, _) = entrust_call(
        Method::PUT,
        &one,
        &token,
        Some(json!({"name": "ci2", "roleId": "", "spRoleId": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, back) = entrust_call(
        Method::PUT,
        &one,
        &token,
        Some(json!({"name": "ci2", "roleId": "role-1", "spRoleId": ""})),
    )
    .await;
    assert_eq!(
        (back["roleId"].as_str(), back["spRoleId"].is_null()),
        (Some("role-1"), true)
    );
    let template = created["applicationTemplateId"].clone();
    let (status, _) = entrust_call(
        Method::PUT,
        &one,
        &token,
        Some(json!({"name": "ci2", "applicationTemplateId": template})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the same template id is accepted");
    let (status, body) = entrust_call(
        Method::PUT,
        &one,
        &token,
        Some(json!({"name": "ci2", "applicationTemplateId": "other"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameters"][0], "applicationTemplateId");

    let regenerate = format!("{url}/regenerate/{id}");
    let (status, new_secret) = entrust_call(Method::PUT, &regenerate, &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = new_secret
        .as_str()
        .expect("the new secret is a JSON string")
        .to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(
        entrust_authenticate(&sim, &id, &secret).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        entrust_authenticate(&sim, &id, &new_secret).await.0,
        StatusCode::OK
    );
    assert_eq!(
        sim.state().await["entrust"]["applications"][0]["sharedSecret"],
        new_secret.as_str()
    );

    let (status, body) = entrust_call(Method::DELETE, &one, &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::Null);
    let (status, body) = entrust_call(Method::GET, &one, &token, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorCode"], "NOT_FOUND");
    assert_eq!(
        entrust_call(Method::PUT, &regenerate, &token, None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn entrust_validation_errors_are_error_info() {
    let sim = start();
    sim.seed(json!({"entrust": {"applications": [{"name": "taken", "roleId": "r"}]}}))
        .await;
    let token = entrust_token(&sim).await;
    let url = apps_url(&sim);
    let cases = [
        (json!({"roleId": "r"}), StatusCode::BAD_REQUEST),
        (json!({"name": "x"}), StatusCode::BAD_REQUEST),
        (
            json!({"name": "x", "roleId": "r", "sharedSecret": "mine"}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"name": "x", "roleId": 7}), StatusCode::BAD_REQUEST),
        (
            json!({"name": "x", "roleId": "r", "allowLongLivedToken": "yes"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"name": "x", "roleId": "r", "logo": "not base64!"}),
            StatusCode::BAD_REQUEST,
        ),
        (json!("just a string"), StatusCode::BAD_REQUEST),
        (
            json!({"name": "taken", "spRoleId": "sp"}),
            StatusCode::CONFLICT,
        ),
    ];
    for (body, status) in cases {
        let (got, reply) = entrust_call(Method::POST, &url, &token, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {reply}");
        assert!(
            reply["errorCode"].is_string() && reply["errorMessage"].is_string(),
            "{reply}"
        );
        assert!(reply["parameters"].is_array());
    }
    let malformed = http()
        .post(&url)
        .header("authorization", &token)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let id = sim.state().await["entrust"]["applications"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = entrust_call(
        Method::PUT,
        &format!("{url}/{id}"),
        &token,
        Some(json!({"roleId": "r"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "name is required on update"
    );
    let (status, _) = entrust_call(
        Method::PATCH,
        &format!("{url}/{id}"),
        &token,
        Some(json!({"name": "n"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no PATCH in this API");
}

// ---------------------------------------------------------------------------------------
// VMware Cloud Director

const VCD_ACCEPT: &str = "application/json;version=9.1.0";

async fn vcd_login(
    sim: &SimProcess,
    login: &str,
    password: &str,
    provider: bool,
) -> reqwest::Response {
    let path = if provider {
        "sessions/provider"
    } else {
        "sessions"
    };
    http()
        .post(format!("{}/cloudapi/1.0.0/{path}", sim.url("vcd")))
        .basic_auth(login, Some(password))
        .header("accept", VCD_ACCEPT)
        .send()
        .await
        .unwrap()
}

async fn vcd_token(sim: &SimProcess, org: &str) -> String {
    let provider = org == "System";
    let response = vcd_login(sim, &format!("sim-client@{org}"), "sim-secret", provider).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["x-vmware-vcloud-access-token"]
        .to_str()
        .unwrap()
        .to_string()
}

fn ldap_url(sim: &SimProcess) -> String {
    format!("{}/cloudapi/v1/orgSettings/ldap", sim.url("vcd"))
}

async fn vcd_call(
    method: Method,
    url: &str,
    token: &str,
    tenant: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http()
        .request(method, url)
        .bearer_auth(token)
        .header("accept", VCD_ACCEPT);
    if let Some(tenant) = tenant {
        request = request.header("x-vmware-vcloud-tenant-context", tenant);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", VCD_ACCEPT)
            .body(body.to_string());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    if status.is_success() {
        assert_eq!(response.headers()["content-type"], VCD_ACCEPT);
    }
    (status, body_json(response).await)
}

fn defined_ldap(password: Option<&str>) -> Value {
    let mut defined = json!({"hostName": "ldap.acme", "port": 636, "ssl": true,
        "searchBase": "dc=acme", "userName": "cn=admin",
        "userAttributes": {"objectClass": "inetOrgPerson", "userName": "uid"}});
    if let Some(password) = password {
        defined["password"] = password.into();
    }
    json!({"enabled": true, "settingsSource": "DEFINED", "definedSettings": defined})
}

#[tokio::test]
async fn vcd_sessions_and_api_tokens() {
    let sim = start();
    let response = vcd_login(&sim, "sim-client@acme", "sim-secret", false).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], VCD_ACCEPT);
    assert_eq!(response.headers()["x-vmware-vcloud-token-type"], "Bearer");
    assert!(
        response
            .headers()
            .contains_key("x-vmware-vcloud-access-token")
    );
    let session = body_json(response).await;
    assert_eq!(session["org"]["name"], "acme");
    assert!(
        session["org"]["id"]
            .as_str()
            .unwrap()
            .starts_with("urn:vcloud:org:")
    );

    for (login, password, provider) in [
        ("sim-client@acme", "wrong", false),
        ("other@acme", "sim-secret", false),
        ("sim-client", "sim-secret", false),
        ("sim-client@System", "sim-secret", false),
        ("sim-client@acme", "sim-secret", true),
    ] {
        let response = vcd_login(&sim, login, password, provider).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{login} provider={provider}"
        );
        let body = body_json(response).await;
        assert_eq!(body["minorErrorCode"], "UNAUTHORIZED");
        assert!(body["message"].is_string() && body.get("stackTrace").is_some());
    }
    assert_eq!(
        vcd_login(&sim, "sim-client@System", "sim-secret", true)
            .await
            .status(),
        StatusCode::OK
    );

    // Accept must name a supported version.
    let no_version = http()
        .post(format!("{}/cloudapi/1.0.0/sessions", sim.url("vcd")))
        .basic_auth("sim-client@acme", Some("sim-secret"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), StatusCode::NOT_ACCEPTABLE);
    assert_eq!(
        body_json(no_version).await["minorErrorCode"],
        "NOT_ACCEPTABLE"
    );

    // API token: a refresh_token grant (the simulator accepts the client secret).
    let token_url = format!("{}/oauth/tenant/acme/token", sim.url("vcd"));
    let ok = http()
        .post(&token_url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "sim-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body = body_json(ok).await;
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        vcd_call(Method::GET, &ldap_url(&sim), &token, None, None)
            .await
            .0,
        StatusCode::OK
    );
    let bad = http()
        .post(&token_url)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(bad).await["error"], "invalid_grant");

    // Logging out ends the session.
    let current = format!("{}/cloudapi/1.0.0/sessions/current", sim.url("vcd"));
    let session_token = vcd_token(&sim, "acme").await;
    let out = http()
        .delete(&current)
        .bearer_auth(&session_token)
        .header("accept", VCD_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        vcd_call(Method::GET, &ldap_url(&sim), &session_token, None, None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    sim.expire_tokens(Some("vcd")).await;
    let (status, body) = vcd_call(Method::GET, &ldap_url(&sim), &token, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["minorErrorCode"], "UNAUTHORIZED");
}

#[tokio::test]
async fn vcd_ldap_settings_put_and_get() {
    let sim = start();
    let token = vcd_token(&sim, "acme").await;
    let url = ldap_url(&sim);

    let (status, initial) = vcd_call(Method::GET, &url, &token, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(initial["enabled"], false);

    let (status, put) = vcd_call(
        Method::PUT,
        &url,
        &token,
        None,
        Some(defined_ldap(Some("bind-pw"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["definedSettings"]["hostName"], "ldap.acme");
    assert!(
        put["definedSettings"]["password"].is_null(),
        "the password is never returned"
    );
    assert_eq!(put["definedSettings"]["pageSize"], 200, "server default");
    assert_eq!(put["definedSettings"]["userAttributes"]["userName"], "uid");
    let (_, got) = vcd_call(Method::GET, &url, &token, None, None).await;
    assert_eq!(got, put);

    // The password arrived, and omitting it later leaves it unchanged.
    let stored = |state: &Value| {
        let orgs = state["vcd"]["orgs"].as_array().unwrap().clone();
        orgs.into_iter().find(|o| o["name"] == "acme").unwrap()["ldap"]["definedSettings"]["password"].clone()
    };
    assert_eq!(stored(&sim.state().await), "bind-pw");
    let mut changed = defined_ldap(None);
    changed["definedSettings"]["port"] = 389.into();
    let (status, put) = vcd_call(Method::PUT, &url, &token, None, Some(changed)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(put["definedSettings"]["port"], 389);
    assert_eq!(stored(&sim.state().await), "bind-pw");

    // Disabling is enabled: false.
    let (status, put) = vcd_call(
        Method::PUT,
        &url,
        &token,
        None,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(put["enabled"], false);
}

#[tokio::test]
async fn vcd_ldap_validation() {
    let sim = start();
    let token = vcd_token(&sim, "acme").await;
    let url = ldap_url(&sim);
    let with = |path: &str, value: Value| {
        let mut body = defined_ldap(Some("pw"));
        body["definedSettings"][path] = value;
        body
    };
    let bad = [
        json!({"settingsSource": "DEFINED"}),
        json!({"enabled": "yes"}),
        json!({"enabled": true}),
        json!({"enabled": true, "settingsSource": "ELSEWHERE"}),
        json!({"enabled": true, "settingsSource": "DEFINED"}),
        json!({"enabled": false, "colour": "blue"}),
        with("port", json!(0)),
        with("port", json!(65536)),
        with("port", json!("636")),
        with("pageSize", json!(0)),
        with("maxResults", json!(0)),
        with("maxUserGroups", json!(-1)),
        with("hostName", json!("")),
        with("searchBase", Value::Null),
        with("userName", Value::Null),
        with("ssl", json!("true")),
        with("userAttributes", json!({"favouriteColour": "x"})),
        json!([1, 2]),
    ];
    for body in bad {
        let (status, reply) = vcd_call(Method::PUT, &url, &token, None, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_eq!(reply["minorErrorCode"], "BAD_REQUEST");
        assert!(reply["message"].is_string());
    }
    let (status, _) = vcd_call(
        Method::PUT,
        &url,
        &token,
        None,
        Some(with("port", json!(65535))),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "65535, the highest TCP port, is allowed"
    );
    let malformed = http()
        .put(&url)
        .bearer_auth(&token)
        .header("accept", VCD_ACCEPT)
        .header("content-type", VCD_ACCEPT)
        .body("{\"enabled\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(malformed).await["minorErrorCode"], "BAD_REQUEST");
}

#[tokio::test]
async fn vcd_refuses_to_strand_imported_users() {
    let sim = start();
    let mut ldap = defined_ldap(Some("pw"));
    ldap["definedSettings"]["pageSize"] = 200.into();
    sim.seed(
        json!({"vcd": {"orgs": [{"name": "acme", "ldap": ldap, "importedUsersOrGroups": true}]}}),
    )
    .await;
    let token = vcd_token(&sim, "acme").await;
    let url = ldap_url(&sim);
    for body in [
        json!({"enabled": false}),
        json!({"enabled": true, "settingsSource": "INHERIT_SYSTEM"}),
    ] {
        let (status, reply) = vcd_call(Method::PUT, &url, &token, None, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            reply["message"],
            "Performing this change would strand imported users or groups."
        );
    }
    let mut edit = defined_ldap(None);
    edit["definedSettings"]["hostName"] = "ldap2.acme".into();
    assert_eq!(
        vcd_call(Method::PUT, &url, &token, None, Some(edit))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn vcd_provider_sessions_act_for_tenants_by_context_header() {
    let sim = start();
    sim.seed(json!({"vcd": {"orgs": [{"name": "acme", "id": "aaaaaaaa-0000-0000-0000-000000000001"}, {"name": "beta"}]}})).await;
    let provider = vcd_token(&sim, "System").await;
    let url = ldap_url(&sim);
    let (status, _) = vcd_call(
        Method::PUT,
        &url,
        &provider,
        Some("urn:vcloud:org:aaaaaaaa-0000-0000-0000-000000000001"),
        Some(defined_ldap(Some("acme-pw"))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, acme) = vcd_call(Method::GET, &url, &provider, Some("acme"), None).await;
    assert_eq!(acme["enabled"], true);
    let (_, system) = vcd_call(Method::GET, &url, &provider, None, None).await;
    assert_eq!(
        system["enabled"], false,
        "without the header the provider sees its own org"
    );
    let (_, beta) = vcd_call(Method::GET, &url, &provider, Some("beta"), None).await;
    assert_eq!(beta["enabled"], false);
    let tenant = vcd_token(&sim, "acme").await;
    let (_, own) = vcd_call(Method::GET, &url, &tenant, None, None).await;
    assert_eq!(own["enabled"], true);
    let (status, body) = vcd_call(Method::GET, &url, &tenant, Some("beta"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["minorErrorCode"].is_string());
    let (status, _) = vcd_call(Method::GET, &url, &provider, Some("no-such-org"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------
// Xelion

async fn xelion_login(
    sim: &SimProcess,
    tenant: &str,
    password: &str,
    user_space: &str,
) -> (StatusCode, Value) {
    let url = format!("{}/api/v1/{tenant}/me/login", sim.url("xelion"));
    call(
        Method::POST,
        &url,
        None,
        Some(json!({"userName": "sim-client", "password": password, "userSpace": user_space})),
    )
    .await
}

async fn xelion_call(
    method: Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http()
        .request(method, url)
        .header("authorization", format!("xelion {token}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

fn authentication_url(sim: &SimProcess, tenant: &str) -> String {
    format!(
        "{}/api/v1/{tenant}/server/authentication",
        sim.url("xelion")
    )
}

async fn seed_xelion(sim: &SimProcess) {
    sim.seed(json!({"xelion": {"tenants": [{
        "name": "master",
        "openIdConnections": [
            {"oid": "1001", "openIdId": "tenant-a", "openIdProvider": "MICROSOFT", "liveSyncOn": false, "openIdGroupId": null},
            {"oid": "1002", "openIdId": "tenant-b", "openIdProvider": "MICROSOFT", "liveSyncOn": true, "openIdGroupId": "g"}
        ],
        "authentication": {"securityDomain": "corp", "openIdConnections": ["1001"]}
    }]}}))
    .await;
}

#[tokio::test]
async fn xelion_sessions_login_renew_logout() {
    let sim = start();
    let (status, session) = xelion_login(&sim, "master", "sim-secret", "operator").await;
    assert_eq!(status, StatusCode::OK);
    let token = session["authentication"].as_str().unwrap().to_string();
    let renewal = session["renewalToken"].as_str().unwrap().to_string();
    assert!(session["validUntil"].as_str().unwrap().ends_with('Z'));
    let url = authentication_url(&sim, "master");
    assert_eq!(
        xelion_call(Method::GET, &url, &token, None).await.0,
        StatusCode::OK
    );

    // One live session per user and userSpace.
    let (status, body) = xelion_login(&sim, "master", "sim-secret", "operator").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], 10005);
    assert!(
        body["info"]
            .as_str()
            .unwrap()
            .starts_with("resource=POST /api/v1/master/me/login")
    );
    assert_eq!(
        xelion_login(&sim, "master", "sim-secret", "other-space")
            .await
            .0,
        StatusCode::OK
    );

    // Renew: a new pair; the old authentication token is dead.
    let renew_url = format!("{}/api/v1/master/me/renew", sim.url("xelion"));
    let (status, renewed) = call(Method::POST, &renew_url, None, Some(json!(renewal))).await;
    assert_eq!(status, StatusCode::OK);
    let new_token = renewed["authentication"].as_str().unwrap().to_string();
    assert_ne!(new_token, token);
    assert_eq!(
        xelion_call(Method::GET, &url, &token, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        xelion_call(Method::GET, &url, &new_token, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::POST, &renew_url, None, Some(json!(renewal)))
            .await
            .0,
        StatusCode::UNAUTHORIZED,
        "used renewal token"
    );
    assert_eq!(
        call(Method::POST, &renew_url, None, Some(json!({"token": "x"})))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    // An expired session can still be renewed, and no longer blocks a login.
    sim.expire_tokens(Some("xelion")).await;
    let (status, body) = xelion_call(Method::GET, &url, &new_token, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], 10002);
    let (status, again) = call(
        Method::POST,
        &renew_url,
        None,
        Some(renewed["renewalToken"].clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = again["authentication"].as_str().unwrap().to_string();

    let logout = format!("{}/api/v1/master/me/logout", sim.url("xelion"));
    assert_eq!(
        xelion_call(Method::POST, &logout, &token, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        xelion_call(Method::GET, &url, &token, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        xelion_login(&sim, "master", "sim-secret", "operator")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn xelion_auth_errors() {
    let sim = start();
    let (status, body) = xelion_login(&sim, "master", "wrong", "s").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errorCode"], 10001);
    assert!(body["message"].is_string());
    assert_eq!(
        xelion_login(&sim, "master", "sim-secret", "").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        xelion_login(&sim, "master", "sim-secret", &"u".repeat(201))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        xelion_login(&sim, "master", "sim-secret", &"u".repeat(200))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = xelion_login(&sim, "nowhere", "sim-secret", "s").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["errorCode"].is_number());

    let (_, session) = xelion_login(&sim, "master", "sim-secret", "s").await;
    let token = session["authentication"].as_str().unwrap();
    let url = authentication_url(&sim, "master");
    let (status, body) = call(Method::GET, &url, Some(token), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "Bearer is not Xelion's scheme"
    );
    assert_eq!(body["errorCode"], 10002);
    sim.seed(json!({"xelion": {"tenants": [{"name": "second"}]}}))
        .await;
    let (status, _) = xelion_call(
        Method::GET,
        &authentication_url(&sim, "second"),
        token,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a session is bound to its tenant"
    );
}

#[tokio::test]
async fn xelion_authentication_get_and_patch_operations() {
    let sim = start();
    seed_xelion(&sim).await;
    let (_, session) = xelion_login(&sim, "master", "sim-secret", "op").await;
    let token = session["authentication"].as_str().unwrap().to_string();
    let url = authentication_url(&sim, "master");

    let (status, body) = xelion_call(Method::GET, &url, &token, None).await;
    assert_eq!(status, StatusCode::OK);
    let object = &body["object"];
    assert_eq!(object["securityDomain"], "corp");
    assert_eq!(object["openIdConnections"].as_array().unwrap().len(), 1);
    let member = &object["openIdConnections"][0];
    assert_eq!(member["oid"], "1001");
    assert_eq!(member["objectType"], "OpenIdConnection");
    assert_eq!(member["openIdProvider"], "MICROSOFT");
    assert!(object["tokenRetentionDays"].is_number());

    let operations = json!({"operations": [
        {"op": "replace", "path": "/securityDomain", "value": "corp2"},
        {"op": "replace", "path": "/minimumPasswordLength", "value": 12},
        {"op": "replace", "path": "/synchronizeDomainTime", "value": true},
        {"op": "add", "path": "/openIdConnections/1", "value": "1002"},
        {"op": "replace", "path": "/openIdConnections/1002/liveSyncOn", "value": false},
        {"op": "replace", "path": "/openIdConnections/1002/openIdGroupId", "value": "g2"},
        {"op": "remove", "path": "/openIdConnections/1001"}
    ]});
    let (status, body) = xelion_call(Method::PATCH, &url, &token, Some(operations.clone())).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (_, after) = xelion_call(Method::GET, &url, &token, None).await;
    let object = &after["object"];
    assert_eq!(object["securityDomain"], "corp2");
    assert_eq!(object["minimumPasswordLength"], 12);
    assert_eq!(object["synchronizeDomainTime"], true);
    let members = object["openIdConnections"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["oid"], "1002");
    assert_eq!(members[0]["liveSyncOn"], false);
    assert_eq!(members[0]["openIdGroupId"], "g2");

    // The exact operation list is in the log.
    let log = sim.log_since("xelion", 0).await;
    let patch = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == "PATCH")
        .unwrap()
        .clone();
    assert_eq!(patch["body"], operations);
    assert_eq!(patch["status"], 204);
    // Login bodies are redacted.
    let login = &log["entries"][0];
    assert_eq!(login["body"]["password"], "[redacted]");
    assert_eq!(login["body"]["userSpace"], "op");
}

#[tokio::test]
async fn xelion_patch_errors_are_atomic_and_have_xelion_shape() {
    let sim = start();
    seed_xelion(&sim).await;
    let (_, session) = xelion_login(&sim, "master", "sim-secret", "op").await;
    let token = session["authentication"].as_str().unwrap().to_string();
    let url = authentication_url(&sim, "master");
    let (_, before) = xelion_call(Method::GET, &url, &token, None).await;

    let op = |op: Value| json!({"operations": [{"op": "replace", "path": "/securityDomain", "value": "changed"}, op]});
    let cases = [
        (
            op(json!({"op": "add", "path": "/openIdConnections/1", "value": "9999"})),
            StatusCode::NOT_FOUND,
        ),
        (
            op(json!({"op": "add", "path": "/openIdConnections/1", "value": "1001"})),
            StatusCode::BAD_REQUEST,
        ),
        // The document's virtual ids are numbers, and a linked connection is edited or
        // removed by its OID, never through the virtual id that added it.
        (
            op(json!({"op": "add", "path": "/openIdConnections/new-1", "value": "1002"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"operations": [
                {"op": "add", "path": "/openIdConnections/1", "value": "1002"},
                {"op": "replace", "path": "/openIdConnections/1/liveSyncOn", "value": true},
            ]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"operations": [
                {"op": "add", "path": "/openIdConnections/1", "value": "1002"},
                {"op": "remove", "path": "/openIdConnections/1"},
            ]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"operations": [
                {"op": "add", "path": "/openIdConnections/1", "value": "1002"},
                {"op": "add", "path": "/openIdConnections/1", "value": "1003"},
            ]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "remove", "path": "/openIdConnections/1002"})),
            StatusCode::NOT_FOUND,
        ),
        (
            op(json!({"op": "replace", "path": "/openIdConnections/9999/openIdId", "value": "x"})),
            StatusCode::NOT_FOUND,
        ),
        (
            op(json!({"op": "replace", "path": "/openIdConnections/1001/colour", "value": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "replace", "path": "/nonsense", "value": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "replace", "path": "/securityDomain", "value": "x".repeat(4001)})),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "replace", "path": "/tokenRetentionDays", "value": "30"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "replace", "path": "/securityDomain"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "move", "path": "/securityDomain", "from": "/code"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "copy", "path": "/securityDomain"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            op(json!({"op": "replace", "path": "securityDomain", "value": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"operations": "replace"}), StatusCode::BAD_REQUEST),
        (json!([]), StatusCode::BAD_REQUEST),
    ];
    for (body, status) in cases {
        let (got, reply) = xelion_call(Method::PATCH, &url, &token, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {reply}");
        assert!(reply["errorCode"].is_number(), "{reply}");
        assert!(reply["message"].is_string());
        assert_eq!(
            reply["info"],
            "resource=PATCH /api/v1/master/server/authentication"
        );
    }
    let (_, after) = xelion_call(Method::GET, &url, &token, None).await;
    assert_eq!(after, before, "failed PATCHes change nothing");
    let (status, _) = xelion_call(Method::PATCH, &url, &token,
        Some(json!({"operations": [{"op": "replace", "path": "/securityDomain", "value": "x".repeat(4000)}]}))).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "4000 characters are allowed"
    );
    let malformed = http()
        .patch(&url)
        .header("authorization", format!("xelion {token}"))
        .header("content-type", "application/json")
        .body("{\"operations\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(malformed).await["errorCode"], 10004);
}

#[tokio::test]
async fn xelion_rate_limit_answers_10400_without_headers() {
    let sim = start();
    let (_, session) = xelion_login(&sim, "master", "sim-secret", "op").await;
    let token = session["authentication"].as_str().unwrap().to_string();
    let url = authentication_url(&sim, "master");
    sim.faults(json!({"api": "xelion", "rateLimit": {"requestsPerSecond": 2}}))
        .await;
    let answers = bursts_until_limited(2, || {
        http()
            .get(&url)
            .header("authorization", format!("xelion {token}"))
    })
    .await;
    let mut limited = 0;
    for answer in answers
        .iter()
        .filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS)
    {
        limited += 1;
        assert!(answer.headers.get("retry-after").is_none());
        assert!(answer.headers.get("x-ratelimit-limit").is_none());
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["errorCode"], 10400);
    }
    assert_eq!(sim.calls().await["xelion"]["GET"]["429"], limited);
}

// ---------------------------------------------------------------------------------------
// All five APIs

/// A ready-to-use authenticated request target for each API.
struct Targets {
    client: Client,
    boruta: String,
    auth0: String,
    xelion: String,
    vcd: String,
    entrust: String,
}

async fn authenticate_all(sim: &SimProcess) -> Targets {
    seed_auth0(sim).await;
    let (_, xelion) = xelion_login(sim, "master", "sim-secret", "all").await;
    Targets {
        // One client: building one per request (loading the system CA store) would dominate.
        client: http(),
        boruta: boruta_token(sim, BORUTA_SCOPE).await,
        auth0: auth0_token(sim).await,
        xelion: xelion["authentication"].as_str().unwrap().to_string(),
        vcd: vcd_token(sim, "acme").await,
        entrust: entrust_token(sim).await,
    }
}

/// GET the main resource of `api` with its own auth header.
fn authed(sim: &SimProcess, t: &Targets, api: &str, method: Method) -> reqwest::RequestBuilder {
    let client = &t.client;
    match api {
        "boruta" => client
            .request(method, backends_url(sim))
            .bearer_auth(&t.boruta),
        "auth0" => client
            .request(method, org_connections_url(sim, "org_acme"))
            .bearer_auth(&t.auth0),
        "xelion" => client
            .request(method, authentication_url(sim, "master"))
            .header("authorization", format!("xelion {}", t.xelion)),
        "vcd" => client
            .request(method, ldap_url(sim))
            .bearer_auth(&t.vcd)
            .header("accept", VCD_ACCEPT),
        _ => client
            .request(method, apps_url(sim))
            .header("authorization", &t.entrust),
    }
}

/// The field every error body of that vendor has.
fn error_key(api: &str) -> &'static str {
    match api {
        "boruta" => "code",
        "auth0" => "statusCode",
        "xelion" => "errorCode",
        "vcd" => "minorErrorCode",
        _ => "errorCode",
    }
}

const APIS: [&str; 5] = ["boruta", "auth0", "xelion", "vcd", "entrust"];

#[tokio::test]
async fn injected_errors_and_limits_use_each_vendors_shape() {
    let sim = start();
    let targets = authenticate_all(&sim).await;
    sim.faults(json!({"api": "*", "errorRate": 1.0, "errorStatus": 503}))
        .await;
    for api in APIS {
        let response = authed(&sim, &targets, api, Method::GET)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{api}");
        let body = body_json(response).await;
        assert!(body.get(error_key(api)).is_some(), "{api}: {body}");
    }
    sim.faults(json!({"api": "*", "burst429": 1})).await;
    for api in APIS {
        let response = authed(&sim, &targets, api, Method::GET)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{api}");
        let text = response.text().await.unwrap();
        if api == "boruta" {
            assert_eq!(text, "", "Boruta's 429 has an empty body");
        } else {
            let body: Value = serde_json::from_str(&text).unwrap();
            assert!(body.get(error_key(api)).is_some(), "{api}: {body}");
        }
    }
    for api in APIS {
        let response = authed(&sim, &targets, api, Method::GET)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{api}: the burst is over"
        );
    }
    let faults = sim.get_faults().await;
    assert_eq!(faults["auth0"]["burst429"], 0);
}

#[tokio::test]
async fn bad_input_never_crashes_any_api() {
    let sim = start();
    let targets = authenticate_all(&sim).await;
    let garbage: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"null".to_vec(),
        b"42".to_vec(),
        b"\"text\"".to_vec(),
        b"[[[[[[[[]]]]]]]]".to_vec(),
        "[".repeat(10_000).into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"{\"backend\": {\"name\": [1, {\"a\": null}]}, \"operations\": [null, 1, \"x\"]}".to_vec(),
        b"{\"enabled\": true, \"settingsSource\": \"DEFINED\", \"definedSettings\": {\"port\": 1e400}}".to_vec(),
    ];
    for api in APIS {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            for body in &garbage {
                let response = authed(&sim, &targets, api, method.clone())
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                assert!(
                    status.is_client_error() || status.is_success(),
                    "{api} {method}: {status}"
                );
            }
        }
        // Oversized bodies get 413 in the vendor's shape.
        let response = authed(&sim, &targets, api, Method::POST)
            .header("content-type", "application/json")
            .body(vec![b' '; 1024 * 1024 + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{api}");
        assert!(
            body_json(response).await.get(error_key(api)).is_some(),
            "{api}"
        );
        // Unknown paths get 404 in the vendor's shape.
        let response = http()
            .get(format!("{}/no/such/path", sim.url(api)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{api}");
        assert!(
            body_json(response).await.get(error_key(api)).is_some(),
            "{api}"
        );
    }
    for api in APIS {
        let response = authed(&sim, &targets, api, Method::GET)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{api} still serves");
    }
}

#[tokio::test]
async fn concurrent_traffic_on_all_apis() {
    let sim = start();
    let targets = authenticate_all(&sim).await;
    let requests = (0..500).map(|i| authed(&sim, &targets, APIS[i % 5], Method::GET).send());
    let responses = futures::future::join_all(requests).await;
    for response in responses {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
    let calls = sim.calls().await;
    for api in APIS {
        assert_eq!(calls[api]["GET"]["200"], 100, "{api}: {calls}");
    }
}

#[tokio::test]
async fn latency_flag_delays_vendor_calls_but_not_control_calls() {
    let sim = SimProcess::start(SimOptions {
        latency_ms: 250,
        ..SimOptions::default()
    });
    let started = Instant::now();
    sim.calls().await;
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "/_sim is not delayed"
    );
    let started = Instant::now();
    let (status, _) = call(Method::GET, &backends_url(&sim), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(started.elapsed() >= Duration::from_millis(250));
    let log = sim.log().await;
    assert!(log["entries"][0]["durationMs"].as_u64().unwrap() >= 250);
}
