//! End to end: OrgConnection against the simulated Auth0 Management API v2, on a real
//! Kubernetes API server, with the operator binary driven the way a user drives it (kubectl).
//!
//! What every kind promises (Observe never writes, no write in steady state, a rejected spec
//! is terminal until it changes, rate limits, crash-safe create) is tested over all kinds at
//! once in `tests/reconcile_contract.rs`; this suite keeps what is particular to this vendor.

mod support;

use serde_json::{Value, json};
use support::env::{Env, READY, apply_example};
use support::kinds::org_connection::{client_secret, edit_remote, enabled, env, org_connection};
use support::operator::{condition, count_calls, wait_for};

/// What these tests read and change at Auth0.
trait Auth0 {
    async fn seed_enabled(&self, org: &str, conn: &str, fields: Value);
    async fn remote(&self, org: &str, conn: &str) -> Option<Value>;
    async fn patches(&self) -> Vec<Value>;
    async fn edit_remote(&self, org: &str, conn: &str, body: Value);
}

impl Auth0 for Env {
    async fn seed_enabled(&self, org: &str, conn: &str, fields: Value) {
        let mut oc = json!({"organization_id": org, "connection_id": conn});
        for (k, v) in fields.as_object().unwrap() {
            oc[k] = v.clone();
        }
        self.sim
            .seed(json!({"auth0": {"organizationConnections": [oc]}}))
            .await;
    }

    /// The organization connection as the simulator holds it.
    async fn remote(&self, org: &str, conn: &str) -> Option<Value> {
        enabled(&self.sim)
            .await
            .into_iter()
            .find(|c| c["organization_id"] == org && c["connection_id"] == conn)
    }

    /// Bodies of the PATCH calls the simulator received, oldest first.
    async fn patches(&self) -> Vec<Value> {
        self.sim.log().await["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["api"] == "auth0" && e["method"] == "PATCH")
            .map(|e| e["body"].clone())
            .collect()
    }

    async fn edit_remote(&self, org: &str, conn: &str, body: Value) {
        edit_remote(&self.sim, org, conn, body).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_edit_drift_and_delete() {
    let mut env = env("orgconn-lifecycle").await;
    env.apply(&org_connection(
        "acme-saml",
        "org_acme",
        "con_saml",
        json!({
            "organizationConnectionName": "corp-sso",
            "assignMembershipOnLogin": true,
            "showAsButton": false,
            "organizationAccessLevel": "readonly",
        }),
    ));
    env.start_operator();

    // Enabled with one POST carrying the connection id and exactly the fields set in spec.
    let obj = env.ready("orgconnection/acme-saml").await;
    assert_eq!(obj["status"]["externalId"], "org_acme/con_saml");
    assert_eq!(obj["status"]["created"], true);
    assert_eq!(obj["status"]["remote"]["connectionName"], "corp-saml");
    assert_eq!(obj["status"]["remote"]["strategy"], "samlp");
    let remote = env.remote("org_acme", "con_saml").await.expect("enabled");
    for (field, want) in [
        ("organization_connection_name", json!("corp-sso")),
        ("assign_membership_on_login", json!(true)),
        ("show_as_button", json!(false)),
        ("organization_access_level", json!("readonly")),
    ] {
        assert_eq!(remote[field], want, "remote field {field}");
    }
    let log = env.sim.log().await;
    let post = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["api"] == "auth0" && e["method"] == "POST" && e["status"] == 201)
        .expect("a POST");
    assert_eq!(
        post["body"],
        json!({"connection_id": "con_saml", "organization_connection_name": "corp-sso",
               "assign_membership_on_login": true, "show_as_button": false,
               "organization_access_level": "readonly"})
    );
    assert!(env.events().contains("created remote OrgConnection"));

    // A spec edit is one PATCH with only what changed.
    env.patch(
        "orgconnection/acme-saml",
        json!({"showAsButton":true,"organizationAccessLevel":"full","isEnabled":true}),
    );
    wait_for(READY, "spec edit reaches the API", || async {
        let c = env.remote("org_acme", "con_saml").await?;
        (c["organization_access_level"] == "full" && c["show_as_button"] == true).then_some(())
    })
    .await;
    assert_eq!(
        env.patches().await,
        vec![json!({"show_as_button": true, "organization_access_level": "full"})],
        "is_enabled is already true: not sent"
    );

    // Someone edits it behind the operator's back (null resets the access level to none):
    // repaired at the next resync, again with only what differs.
    env.edit_remote(
        "org_acme",
        "con_saml",
        json!({"assign_membership_on_login": false, "organization_access_level": null}),
    )
    .await;
    wait_for(READY, "drift repaired", || async {
        let c = env.remote("org_acme", "con_saml").await?;
        (c["organization_access_level"] == "full" && c["assign_membership_on_login"] == true)
            .then_some(())
    })
    .await;
    let patches = env.patches().await;
    assert_eq!(
        patches.last().unwrap(),
        &json!({"assign_membership_on_login": true, "organization_access_level": "full"})
    );
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("identity_operator_drift_detected_total{kind=\"OrgConnection\"}"),
        "{metrics}"
    );

    // Deleting the resource disables what the operator enabled.
    env.ns.kubectl_ok(&[
        "delete",
        "orgconnection/acme-saml",
        "--wait=true",
        "--timeout=60s",
    ]);
    assert!(env.remote("org_acme", "con_saml").await.is_none());
    assert!(
        env.events()
            .contains("deleted remote OrgConnection org_acme/con_saml")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_follows_the_policy() {
    let mut env = env("orgconn-delete").await;
    // Enabled before the operator knew about it: adopted, so orphaned by default.
    env.seed_enabled("org_acme", "con_google", json!({"show_as_button": true}))
        .await;
    env.seed_enabled("org_beta", "con_google", json!({})).await;
    env.apply(&org_connection(
        "adopted",
        "org_acme",
        "con_google",
        json!({"showAsButton": false}),
    ));
    env.apply(&org_connection(
        "adopted-delete",
        "org_beta",
        "con_google",
        json!({"deletionPolicy": "Delete"}),
    ));
    env.apply(&org_connection(
        "created-orphan",
        "org_acme",
        "con_github",
        json!({"deletionPolicy": "Orphan"}),
    ));
    env.apply(&org_connection(
        "created",
        "org_beta",
        "con_github",
        json!({}),
    ));
    env.start_operator();
    for name in ["adopted", "adopted-delete", "created-orphan", "created"] {
        env.ready(&format!("orgconnection/{name}")).await;
    }
    let adopted = env.get("orgconnection/adopted").unwrap();
    assert_eq!(adopted["status"]["created"], false);
    assert_eq!(
        env.remote("org_acme", "con_google").await.unwrap()["show_as_button"],
        false,
        "adopted and updated"
    );
    assert_eq!(
        env.get("orgconnection/created").unwrap()["status"]["created"],
        true
    );

    env.ns.kubectl_ok(&[
        "delete",
        "orgconnection/adopted",
        "orgconnection/adopted-delete",
        "orgconnection/created-orphan",
        "orgconnection/created",
        "--timeout=60s",
    ]);
    assert!(
        env.remote("org_acme", "con_google").await.is_some(),
        "adopted: orphaned by default"
    );
    assert!(
        env.remote("org_beta", "con_google").await.is_none(),
        "adopted with deletionPolicy Delete: deleted"
    );
    assert!(
        env.remote("org_acme", "con_github").await.is_some(),
        "created with deletionPolicy Orphan: left in place"
    );
    assert!(
        env.remote("org_beta", "con_github").await.is_none(),
        "created: deleted by default"
    );
    let events = env.events();
    assert!(events.contains("left in place (deletionPolicy Orphan)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_headers_pace_the_calls() {
    let mut env = env("orgconn-429").await;
    env.sim
        .faults(json!({"api": "auth0", "rateLimit": {"requestsPerSecond": 4}}))
        .await;
    let mut names = vec![];
    for org in ["org_acme", "org_beta"] {
        for conn in ["con_saml", "con_db", "con_google", "con_github"] {
            let name = format!("{}-{}", &org[4..], &conn[4..]);
            env.apply(&org_connection(
                &name,
                org,
                conn,
                json!({"assignMembershipOnLogin": true}),
            ));
            names.push(name);
        }
    }
    env.start_operator();
    for name in &names {
        env.ready(&format!("orgconnection/{name}")).await;
    }
    let calls = env.sim.calls().await;
    let total: u64 = ["GET", "POST", "PATCH"]
        .iter()
        .map(|m| count_calls(&calls, "auth0", m))
        .sum();
    let limited: u64 = calls["auth0"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|by_status| by_status["429"].as_u64())
        .sum();
    // The client starts no more calls than x-ratelimit-remaining allows until
    // x-ratelimit-reset: only the first calls, sent before any answer told the limit, can meet
    // a 429 (without the budget: 29 of 61 calls).
    assert!(
        limited <= names.len() as u64,
        "{limited} 429s for {total} calls: {calls}"
    );
    let log = env.sim.log().await;
    let enabled = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["api"] == "auth0" && e["method"] == "POST" && e["status"] == 201)
        .count();
    assert_eq!(enabled, names.len(), "one enable per resource");
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_api_credentials_are_rotated_and_never_shown() {
    let mut env = env("orgconn-creds").await;
    env.apply(&org_connection(
        "acme-saml",
        "org_acme",
        "con_saml",
        json!({"assignMembershipOnLogin": true}),
    ));
    env.start_operator();
    env.ready("orgconnection/acme-saml").await;
    env.ready("identityapi/auth0").await;

    // A wrong client secret: the IdentityApi and the resources using it say so.
    env.apply(&client_secret("rotated-wrong-value"));
    let api = env
        .condition("identityapi/auth0", "False", "AuthenticationFailed")
        .await;
    let (_, _, message) = condition(&api, "Ready").unwrap();
    assert!(!message.contains("rotated-wrong-value"), "{message}");
    env.patch("orgconnection/acme-saml", json!({"showAsButton":false}));
    env.wait_condition(
        "orgconnection/acme-saml",
        "Synced",
        "False",
        "AuthenticationFailed",
    )
    .await;

    // The right secret again: the pending edit goes through with a fresh token.
    env.apply(&client_secret(&env.sim.options.client_secret));
    env.ready("identityapi/auth0").await;
    env.ready("orgconnection/acme-saml").await;
    assert_eq!(
        env.remote("org_acme", "con_saml").await.unwrap()["show_as_button"],
        false
    );

    // Tokens expiring server-side: one re-authentication, no failure.
    env.sim.expire_tokens(Some("auth0")).await;
    env.patch("orgconnection/acme-saml", json!({"showAsButton":true}));
    env.ready("orgconnection/acme-saml").await;
    assert_eq!(
        env.remote("org_acme", "con_saml").await.unwrap()["show_as_button"],
        true
    );

    let log = env.operator_log();
    for secret in [
        "rotated-wrong-value",
        env.sim.options.client_secret.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in the operator log");
        assert!(!env.events().contains(secret));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn example_applies_as_is() {
    let (_env, obj) = apply_example(
        "orgconn-example",
        "auth0.json",
        "org-connection.yaml",
        "orgconnection/acme-corporate-sso",
    )
    .await;
    assert_eq!(obj["status"]["remote"]["strategy"], "samlp");
}
