//! End to end: AuthenticationSettings against the simulated Xelion REST API, on a real
//! Kubernetes API server, with the operator binary driven the way a user drives it (kubectl).
//!
//! What every kind promises (Observe never writes, no write in steady state, a rejected spec
//! is terminal until it changes, rate limits, crash-safe create) is tested over all kinds at
//! once in `tests/reconcile_contract.rs`; this suite keeps what is particular to this vendor.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::env::{Env, READY, apply_example};
use support::kinds::authentication_settings::{env, login_secret, settings, tenant};
use support::operator::{condition, wait_for};
use support::sim::{SimOptions, answer};

const AUTH_PATH: &str = "/xelion/api/v1/master/server/authentication";

/// What these tests read and change at Xelion.
trait Xelion {
    async fn tenant(&self) -> Value;
    async fn connection(&self, oid: &str) -> Value;
    async fn entries_since(&self, since: u64) -> Vec<Value>;
    async fn patches_since(&self, since: u64) -> Vec<Value>;
    async fn calls_to(&self, since: u64, suffix: &str) -> Vec<Value>;
    async fn edit_remote(&self, operations: Value);
}

impl Xelion for Env {
    async fn tenant(&self) -> Value {
        tenant(&self.sim).await
    }

    async fn connection(&self, oid: &str) -> Value {
        let tenant = self.tenant().await;
        tenant["openIdConnections"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["oid"] == oid))
            .cloned()
            .expect("the OpenID connection exists")
    }

    async fn entries_since(&self, since: u64) -> Vec<Value> {
        let log = self.sim.log_since("xelion", since).await;
        log["entries"].as_array().cloned().unwrap_or_default()
    }

    /// The operation lists of every PATCH since `since`.
    async fn patches_since(&self, since: u64) -> Vec<Value> {
        self.entries_since(since)
            .await
            .into_iter()
            .filter(|e| e["method"] == "PATCH" && e["path"] == AUTH_PATH)
            .map(|e| e["body"]["operations"].clone())
            .collect()
    }

    async fn calls_to(&self, since: u64, suffix: &str) -> Vec<Value> {
        self.entries_since(since)
            .await
            .into_iter()
            .filter(|e| e["path"].as_str().unwrap_or_default().ends_with(suffix))
            .collect()
    }

    /// Changes the settings behind the operator's back, in a session of its own (another
    /// user space, so the operator's session is not disturbed).
    async fn edit_remote(&self, operations: Value) {
        let http = reqwest::Client::new();
        let base = format!("{}/api/v1/master", self.sim.url("xelion"));
        let session: Value = answer(http.post(format!("{base}/me/login")).json(&json!({
            "userName": self.sim.options.client_id,
            "password": self.sim.options.client_secret,
            "userSpace": format!("test-{}", rand::random::<u32>()),
        })))
        .await;
        let token = session["authentication"].as_str().expect("logged in");
        let resp = http
            .patch(format!("{base}/server/authentication"))
            .header("Authorization", format!("xelion {token}"))
            .json(&json!({"operations": operations}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "remote edit: {}", resp.status());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_edit_and_drift_with_minimal_patches() {
    let mut env = env("authset-lifecycle", SimOptions::default()).await;
    env.apply(&settings("master", json!({})));
    env.start_operator();

    // One PATCH with exactly the operations that differ: tokenRetentionDays (30 already),
    // 1001's openIdId (already tenant-a) and the rest of the tenant are left alone. 1003 is
    // linked under the numeric virtual id '1'; once linked, its fields can be read, and a
    // second PATCH replaces, by OID, the one that differs.
    let obj = env.ready("authenticationsettings/master").await;
    assert_eq!(obj["status"]["externalId"], "master");
    assert_eq!(obj["status"]["created"], false);
    assert!(
        obj["metadata"]["finalizers"].is_null(),
        "nothing to clean up"
    );
    assert_eq!(
        env.patches_since(0).await,
        vec![
            json!([
                {"op": "replace", "path": "/securityDomain", "value": "corp"},
                {"op": "replace", "path": "/minimumPasswordLength", "value": 12},
                {"op": "remove", "path": "/openIdConnections/1002"},
                {"op": "replace", "path": "/openIdConnections/1001/liveSyncOn", "value": true},
                {"op": "add", "path": "/openIdConnections/1", "value": "1003"},
            ]),
            json!([
                {"op": "replace", "path": "/openIdConnections/1003/openIdGroupId", "value": "g-c"},
            ])
        ]
    );
    let auth = env.tenant().await["authentication"].clone();
    assert_eq!(auth["securityDomain"], "corp");
    assert_eq!(auth["minimumPasswordLength"], 12);
    assert_eq!(auth["tokenRetentionDays"], 30);
    assert_eq!(auth["openIdConnections"], json!(["1001", "1003"]));
    assert_eq!(env.connection("1001").await["liveSyncOn"], true);
    assert_eq!(env.connection("1003").await["openIdGroupId"], "g-c");

    // A spec edit: one replace.
    let seq = env.last_seq().await;
    env.patch(
        "authenticationsettings/master",
        json!({"tokenRetentionDays":14}),
    );
    wait_for(READY, "spec edit reaches Xelion", || async {
        (env.tenant().await["authentication"]["tokenRetentionDays"] == 14).then_some(())
    })
    .await;
    assert_eq!(
        env.patches_since(seq).await,
        vec![json!([{"op": "replace", "path": "/tokenRetentionDays", "value": 14}])]
    );

    // Drift behind the operator's back: repaired with exactly what was undone.
    env.edit_remote(json!([
        {"op": "replace", "path": "/securityDomain", "value": "rogue"},
        {"op": "remove", "path": "/openIdConnections/1003"},
    ]))
    .await;
    let seq = env.last_seq().await;
    wait_for(READY, "drift repaired", || async {
        let auth = env.tenant().await["authentication"].clone();
        (auth["securityDomain"] == "corp" && auth["openIdConnections"] == json!(["1001", "1003"]))
            .then_some(())
    })
    .await;
    assert_eq!(
        env.patches_since(seq).await,
        vec![json!([
            {"op": "replace", "path": "/securityDomain", "value": "corp"},
            {"op": "add", "path": "/openIdConnections/1", "value": "1003"},
        ])]
    );
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("identity_operator_drift_detected_total{kind=\"AuthenticationSettings\"}"),
        "{metrics}"
    );
    let events = env.ns.kubectl_ok(&["get", "events", "-o", "json"]);
    assert!(events.contains("spec.securityDomain"), "{events}");

    // Deleted: the tenant's settings stay as they are.
    let seq = env.last_seq().await;
    env.ns
        .kubectl_ok(&["delete", "authenticationsettings/master", "--timeout=30s"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(env.patches_since(seq).await.is_empty());
    assert_eq!(
        env.tenant().await["authentication"]["securityDomain"],
        "corp"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn short_sessions_are_renewed_never_logged_in_twice() {
    let mut env = env(
        "authset-sessions",
        SimOptions {
            token_ttl_seconds: 3,
            ..SimOptions::default()
        },
    )
    .await;
    env.apply(&settings("master", json!({})));
    env.start_operator();
    env.ready("authenticationsettings/master").await;

    // Several session lifetimes of resyncs, and one session expired by the server.
    tokio::time::sleep(Duration::from_secs(5)).await;
    env.sim.expire_tokens(Some("xelion")).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    env.patch(
        "authenticationsettings/master",
        json!({"maxNumberOfFalseLogins":3}),
    );
    wait_for(READY, "spec edit reaches Xelion", || async {
        (env.tenant().await["authentication"]["maxNumberOfFalseLogins"] == 3).then_some(())
    })
    .await;
    env.ready("authenticationsettings/master").await;

    let logins = env.calls_to(0, "/me/login").await;
    assert_eq!(logins.len(), 1, "one login, then renewals: {logins:?}");
    assert_eq!(logins[0]["status"], 200);
    let renewals = env.calls_to(0, "/me/renew").await;
    assert!(renewals.len() >= 2, "{renewals:?}");
    assert!(renewals.iter().all(|r| r["status"] == 200), "{renewals:?}");
    let api = env.get("identityapi/xelion").unwrap();
    assert_eq!(condition(&api, "Ready").unwrap().0, "True");
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_identity_api_credentials_are_picked_up() {
    let mut env = env("authset-rotation", SimOptions::default()).await;
    env.apply(&settings("master", json!({})));
    env.start_operator();
    env.ready("authenticationsettings/master").await;
    env.ready("identityapi/xelion").await;

    // A wrong password: the old session is ended, the new login refused, both report it.
    let seq = env.last_seq().await;
    env.apply(&login_secret("not-the-password"));
    let api = env
        .condition("identityapi/xelion", "False", "AuthenticationFailed")
        .await;
    let (_, _, message) = condition(&api, "Ready").unwrap();
    assert!(message.contains("10001"), "{message}");
    assert!(!message.contains("not-the-password"));
    let logouts = env.calls_to(seq, "/me/logout").await;
    assert_eq!(
        logouts.len(),
        1,
        "the replaced session is ended: {logouts:?}"
    );

    // The right password again: a fresh login succeeds (no 10005) and work goes on.
    let seq = env.last_seq().await;
    env.apply(&login_secret(&env.sim.options.client_secret));
    env.ready("identityapi/xelion").await;
    env.patch(
        "authenticationsettings/master",
        json!({"securityDomain":"rotated"}),
    );
    wait_for(READY, "spec edit after rotation", || async {
        (env.tenant().await["authentication"]["securityDomain"] == "rotated").then_some(())
    })
    .await;
    // Logins of the old client may still be refused (10001) until it is replaced; from the
    // first accepted one on, there is one session and no refusal (10005).
    let logins = env.calls_to(seq, "/me/login").await;
    let accepted = logins.iter().position(|l| l["status"] == 200);
    let accepted = accepted.unwrap_or_else(|| panic!("a login was accepted: {logins:?}"));
    assert!(
        logins[accepted..]
            .iter()
            .skip(1)
            .all(|l| l["status"] != 401),
        "no refused login once the right password is in use: {logins:?}"
    );
    assert_eq!(
        logins.iter().filter(|l| l["status"] == 200).count(),
        1,
        "{logins:?}"
    );
    let log = env.operator_log();
    assert!(!log.contains("not-the-password") && !log.contains(&env.sim.options.client_secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_manifest_works_as_is() {
    let (env, obj) = apply_example(
        "authset-example",
        "xelion.json",
        "authentication-settings.yaml",
        "authenticationsettings/master-authentication",
    )
    .await;
    assert_eq!(obj["status"]["externalId"], "master");
    let state = env.sim.state().await;
    let auth = &state["xelion"]["tenants"][0]["authentication"];
    assert_eq!(auth["securityDomain"], "ACME");
    assert_eq!(auth["openIdConnections"], json!(["1001", "1002"]));
}
