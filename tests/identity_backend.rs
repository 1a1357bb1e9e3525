//! End to end: IdentityBackend against the simulated Boruta admin API, on a real Kubernetes API
//! server, with the operator binary driven the way a user drives it (kubectl).
//!
//! What every kind promises (Observe never writes, no write in steady state, a rejected spec
//! is terminal until it changes, rate limits, crash-safe create) is tested over all kinds at
//! once in `tests/reconcile_contract.rs`; this suite keeps what is particular to this vendor.

mod support;

use serde_json::{Value, json};
use support::env::{Env, READY, external_id};
use support::kinds::identity_backend::{ROLE, backend, backends, env, identity_api};
use support::operator::{condition, wait_for};

/// What these tests read and change at Boruta.
trait Boruta {
    async fn backends(&self) -> Vec<Value>;
    async fn backend(&self, id: &str) -> Option<Value>;
    async fn edit_remote(&self, id: &str, changes: Value);
}

impl Boruta for Env {
    async fn backends(&self) -> Vec<Value> {
        backends(&self.sim).await
    }

    async fn backend(&self, id: &str) -> Option<Value> {
        self.backends().await.into_iter().find(|b| b["id"] == id)
    }

    /// Changes a backend behind the operator's back, through the vendor API itself.
    async fn edit_remote(&self, id: &str, changes: Value) {
        let http = reqwest::Client::new();
        let token = self.sim.token("boruta").await;
        let mut backend = self.backend(id).await.expect("backend exists");
        for (k, v) in changes.as_object().unwrap() {
            backend[k] = v.clone();
        }
        let resp = http
            .put(format!("{}/api/backends/{id}", self.sim.url("boruta")))
            .bearer_auth(&token)
            .json(&json!({"backend": backend}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "remote edit: {}", resp.status());
    }
}

fn ldap_secret(password: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ldap-bind"},
        "stringData": {"password": password},
    })
}

fn ldap_spec() -> Value {
    json!({
        "type": "Ldap",
        "roles": [{"id": ROLE, "name": "admin"}],
        "ldapHost": "ldap.example.com",
        "ldapUserRdnAttribute": "uid",
        "ldapBaseDn": "dc=example,dc=com",
        "ldapMasterDn": "cn=admin,dc=example,dc=com",
        "ldapMasterPasswordSecretRef": {"name": "ldap-bind", "key": "password"},
        "ldapPoolSize": 7,
        "smtpFrom": "noreply@example.com",
        "smtpRelay": "smtp.example.com",
        "smtpPort": 587,
        "smtpTls": "if_available",
        "smtpSsl": false,
        "isDefault": false,
        "createDefaultOrganization": true,
        "passwordHashingOpts": {"t_cost": 3},
        "metadataFields": [{"attribute_name": "department"}],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn create_edit_drift_and_delete() {
    let mut env = env("idb-lifecycle").await;
    env.apply(&ldap_secret("first-password"));
    env.apply(&backend("Corporate LDAP", ldap_spec()));
    env.start_operator();

    // Created, and the remote object matches the spec field by field.
    let obj = env.ready("identitybackend/corporate-ldap").await;
    let id = external_id(&obj);
    assert_eq!(obj["status"]["created"], true);
    let remote = env.backend(&id).await.expect("remote backend");
    for (field, want) in [
        ("name", json!("Corporate LDAP")),
        ("type", json!("Elixir.BorutaIdentity.Accounts.Ldap")),
        ("password_hashing_alg", json!("argon2")),
        ("ldap_host", json!("ldap.example.com")),
        ("ldap_user_rdn_attribute", json!("uid")),
        ("ldap_base_dn", json!("dc=example,dc=com")),
        ("ldap_master_dn", json!("cn=admin,dc=example,dc=com")),
        ("ldap_master_password", json!("first-password")),
        ("ldap_pool_size", json!(7)),
        ("smtp_from", json!("noreply@example.com")),
        ("smtp_relay", json!("smtp.example.com")),
        ("smtp_port", json!(587)),
        ("smtp_tls", json!("if_available")),
        ("smtp_ssl", json!(false)),
        ("is_default", json!(false)),
        ("create_default_organization", json!(true)),
        ("password_hashing_opts", json!({"t_cost": 3})),
        ("metadata_fields", json!([{"attribute_name": "department"}])),
    ] {
        assert_eq!(remote[field], want, "remote field {field}");
    }
    assert_eq!(remote["roles"][0]["id"], ROLE);
    assert!(env.events().contains("created remote IdentityBackend"));

    // A spec edit reaches the API.
    env.patch(
        "identitybackend/corporate-ldap",
        json!({"ldapHost":"ldap2.example.com","roles":[]}),
    );
    wait_for(READY, "spec edit reaches the API", || async {
        let b = env.backend(&id).await?;
        (b["ldap_host"] == "ldap2.example.com" && b["roles"] == json!([])).then_some(())
    })
    .await;

    // Someone edits the backend behind the operator's back: repaired at the next resync.
    env.edit_remote(
        &id,
        json!({"ldap_host": "rogue.example.com", "smtp_port": 25}),
    )
    .await;
    wait_for(READY, "drift repaired", || async {
        let b = env.backend(&id).await?;
        (b["ldap_host"] == "ldap2.example.com" && b["smtp_port"] == 587).then_some(())
    })
    .await;
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("identity_operator_drift_detected_total{kind=\"IdentityBackend\"}"),
        "{metrics}"
    );

    // Deleting the resource deletes what the operator created.
    env.ns.kubectl_ok(&[
        "delete",
        "identitybackend/corporate-ldap",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert!(env.backend(&id).await.is_none(), "remote backend deleted");
    assert!(env.get("identitybackend/corporate-ldap").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_secret_then_rotation() {
    let mut env = env("idb-secrets").await;
    env.apply(&backend("Secret LDAP", ldap_spec()));
    env.start_operator();

    // No Secret yet: a clear condition and no write to the API.
    let obj = env
        .condition("identitybackend/secret-ldap", "False", "SecretNotFound")
        .await;
    let (_, _, message) = condition(&obj, "Ready").unwrap();
    assert!(message.contains("ldap-bind"), "{message}");
    assert_eq!(env.writes().await, 0);

    // Creating the Secret fixes it within seconds (the Secret watch requeues the resource).
    env.apply(&ldap_secret("password-one"));
    let obj = env.ready("identitybackend/secret-ldap").await;
    let id = external_id(&obj);
    assert_eq!(
        env.backend(&id).await.unwrap()["ldap_master_password"],
        "password-one"
    );

    // Rotating the Secret re-sends the password without any spec change.
    let generation = obj["metadata"]["generation"].clone();
    env.apply(&ldap_secret("password-two"));
    wait_for(READY, "rotated password reaches the API", || async {
        let b = env.backend(&id).await?;
        (b["ldap_master_password"] == "password-two").then_some(())
    })
    .await;
    let obj = env.get("identitybackend/secret-ldap").unwrap();
    assert_eq!(obj["metadata"]["generation"], generation);
    let status = obj["status"].to_string();
    assert!(
        !status.contains("password-"),
        "no secret value in status: {status}"
    );
    let log = env.operator_log();
    assert!(!log.contains("password-one") && !log.contains("password-two"));
    assert!(!env.events().contains("password-two"));
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_by_name_without_duplicating_and_orphans_by_default() {
    let mut env = env("idb-adopt").await;
    // As if an operator had crashed after creating the backend, before writing its status.
    env.sim
        .seed(json!({"boruta": {"backends": [{
            "id": "7e0d2a58-2222-4333-8444-555566667777",
            "name": "Legacy", "password_hashing_alg": "argon2",
        }]}}))
        .await;
    env.apply(&backend("Legacy", json!({"smtpPort": 2525})));
    env.start_operator();
    let obj = env.ready("identitybackend/legacy").await;
    assert_eq!(external_id(&obj), "7e0d2a58-2222-4333-8444-555566667777");
    assert_eq!(obj["status"]["created"], false);
    let legacy: Vec<Value> = env
        .backends()
        .await
        .into_iter()
        .filter(|b| b["name"] == "Legacy")
        .collect();
    assert_eq!(legacy.len(), 1, "no duplicate: {legacy:?}");
    assert_eq!(legacy[0]["smtp_port"], 2525);

    env.ns
        .kubectl_ok(&["delete", "identitybackend/legacy", "--timeout=60s"]);
    assert!(
        env.backend("7e0d2a58-2222-4333-8444-555566667777")
            .await
            .is_some(),
        "an adopted backend is orphaned by default"
    );
    assert!(env.events().contains("left in place"));
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_api_reports_authentication_and_wrong_provider() {
    let mut env = env("idb-auth").await;
    env.apply(&json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "boruta-client"},
        "stringData": {"secret": "not-the-secret"},
    }));
    let mut auth0 = identity_api(&env.sim, "auth0-api");
    auth0["spec"]["provider"] = json!("auth0");
    env.apply(&auth0);
    let mut wrong = backend("Wrong", json!({}));
    wrong["spec"]["apiRef"]["name"] = json!("auth0-api");
    env.apply(&wrong);
    env.start_operator();

    let api = env
        .condition("identityapi/boruta", "False", "AuthenticationFailed")
        .await;
    let (_, _, message) = condition(&api, "Ready").unwrap();
    assert!(!message.contains("not-the-secret"), "{message}");
    env.condition("identitybackend/wrong", "False", "WrongProvider")
        .await;

    env.apply(&json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "boruta-client"},
        "stringData": {"secret": env.sim.options.client_secret},
    }));
    env.ready("identityapi/boruta").await;
    assert_eq!(env.writes().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn federated_client_secrets_come_from_secrets_never_from_the_spec() {
    let mut env = env("idb-federated").await;
    let idp = |value: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "idp"},
               "stringData": {"google": value}})
    };
    let server = json!({"name": "google", "client_id": "boruta-at-google",
        "base_url": "https://accounts.google.com",
        "clientSecretRef": {"name": "idp", "key": "google"}});
    env.apply(&idp("first-idp-secret"));
    env.apply(&backend(
        "Federated",
        json!({"federatedServers": [server.clone()]}),
    ));
    // Kubernetes 1.20 does not enforce the CEL rule that refuses this at admission: the
    // operator refuses it.
    let mut plain = server;
    plain["client_secret"] = json!("plain-spec-secret");
    env.apply(&backend("Plain", json!({"federatedServers": [plain]})));
    env.start_operator();

    let obj = env.ready("identitybackend/federated").await;
    let id = external_id(&obj);
    let sent = |b: &Value| b["federated_servers"][0]["client_secret"].clone();
    assert!(
        sent(&env.backend(&id).await.unwrap()) == "first-idp-secret",
        "Boruta's client secret is not the Secret's"
    );
    let refused = env
        .condition("identitybackend/plain", "False", "InvalidSpec")
        .await;
    let (_, _, message) = condition(&refused, "Ready").unwrap();
    assert!(
        message.contains("federatedServers[google].client_secret")
            && message.contains("clientSecretRef"),
        "{message}"
    );
    assert!(
        env.backends().await.iter().all(|b| b["name"] != "Plain"),
        "a refused spec reaches nothing"
    );

    // The Secret is watched: a new value reaches Boruta without a spec change.
    env.apply(&idp("second-idp-secret"));
    wait_for(
        READY,
        "the rotated client secret reaches Boruta",
        || async { (sent(&env.backend(&id).await?) == "second-idp-secret").then_some(()) },
    )
    .await;

    // No secret value in status, Events or the operator's log.
    let statuses = env
        .ns
        .kubectl_ok(&["get", "identitybackends", "-o", "json"]);
    let events = env.events();
    let log = env.operator_log();
    for secret in ["first-idp-secret", "second-idp-secret", "plain-spec-secret"] {
        assert!(!events.contains(secret), "a secret in an Event");
        assert!(!log.contains(secret), "a secret in the operator's log");
        let status_only: Value = serde_json::from_str(&statuses).unwrap();
        for item in status_only["items"].as_array().unwrap() {
            assert!(
                !item["status"].to_string().contains(secret),
                "a secret in a status"
            );
        }
    }
    assert!(events.contains("InvalidSpec"), "the refusal is an Event");
}
