//! End to end: AuthenticationSettings against the simulated Xelion REST API, on a real
//! Kubernetes API server, with the operator binary driven the way a user drives it (kubectl).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{
    Operator, apply, condition, count_writes, get_json, wait_condition, wait_for,
};
use support::sim::{SimOptions, SimProcess};

const READY: Duration = Duration::from_secs(45);
const AUTH_PATH: &str = "/xelion/api/v1/master/server/authentication";

struct Env {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    op: Option<Operator>,
}

impl Env {
    async fn new(prefix: &str) -> Env {
        Env::with_sim(prefix, SimOptions::default()).await
    }

    async fn with_sim(prefix: &str, options: SimOptions) -> Env {
        let cluster = ensure_cluster();
        // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
        support::operator::install_crds(cluster);
        let ns = TestNamespace::new(cluster, prefix);
        let sim = SimProcess::start(options);
        sim.seed(seed()).await;
        let env = Env {
            cluster,
            ns,
            sim,
            op: None,
        };
        env.apply(&login_secret(&env.sim.options.client_secret));
        env.apply(&identity_api(&env.sim));
        env
    }

    fn start_operator(&mut self) {
        self.op = Some(Operator::start(self.cluster, &self.ns, &[]));
    }

    fn apply(&self, doc: &Value) {
        apply(self.cluster, &self.ns, &doc.to_string());
    }

    fn get(&self, what: &str) -> Option<Value> {
        get_json(&self.ns, self.cluster, what)
    }

    async fn ready(&self, what: &str) -> Value {
        wait_condition(self.cluster, &self.ns, what, "Ready", "True", None, READY).await
    }

    async fn condition(&self, what: &str, status: &str, reason: &str) -> Value {
        let reason = Some(reason);
        wait_condition(self.cluster, &self.ns, what, "Ready", status, reason, READY).await
    }

    /// The master tenant as the simulator stores it: `authentication` (members as OIDs) and
    /// every OpenID connection object.
    async fn tenant(&self) -> Value {
        let state = self.sim.state().await;
        state["xelion"]["tenants"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "master"))
            .cloned()
            .expect("the master tenant")
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

    async fn last_seq(&self) -> u64 {
        self.sim.log().await["lastSeq"].as_u64().unwrap_or(0)
    }

    async fn writes(&self) -> usize {
        count_writes(&self.sim.log().await, "xelion")
    }

    /// Changes the settings behind the operator's back, in a session of its own (another
    /// user space, so the operator's session is not disturbed).
    async fn edit_remote(&self, operations: Value) {
        let http = reqwest::Client::new();
        let base = format!("{}/api/v1/master", self.sim.url("xelion"));
        let session: Value = http
            .post(format!("{base}/me/login"))
            .json(&json!({
                "userName": self.sim.options.client_id,
                "password": self.sim.options.client_secret,
                "userSpace": format!("test-{}", rand::random::<u32>()),
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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

/// Three OpenID connection objects; 1001 and 1002 linked.
fn seed() -> Value {
    json!({"xelion": {"tenants": [{
        "name": "master",
        "openIdConnections": [
            {"oid": "1001", "openIdId": "tenant-a", "openIdProvider": "MICROSOFT",
             "liveSyncOn": false, "openIdGroupId": null},
            {"oid": "1002", "openIdId": "tenant-b", "openIdProvider": "MICROSOFT",
             "liveSyncOn": true, "openIdGroupId": "g-b"},
            {"oid": "1003", "openIdId": "tenant-c", "openIdProvider": "MICROSOFT",
             "liveSyncOn": false, "openIdGroupId": null},
        ],
        "authentication": {"securityDomain": "old", "openIdConnections": ["1001", "1002"]},
    }]}})
}

fn login_secret(password: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "xelion-login"},
        "stringData": {"password": password},
    })
}

fn identity_api(sim: &SimProcess) -> Value {
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
        "metadata": {"name": "xelion"},
        "spec": {
            "provider": "xelion",
            "url": sim.url("xelion"),
            "tenant": "master",
            "auth": {"xelionLogin": {
                "userName": sim.options.client_id,
                "passwordSecretRef": {"name": "xelion-login", "key": "password"},
                "userSpace": "identity-operator",
            }},
        },
    })
}

fn settings(name: &str, spec: Value) -> Value {
    let mut full = json!({
        "apiRef": {"name": "xelion"},
        "securityDomain": "corp",
        "minimumPasswordLength": 12,
        "tokenRetentionDays": 30,
        "openIdConnections": [
            {"oid": "1001", "openIdId": "tenant-a", "liveSyncOn": true},
            {"oid": "1003", "openIdGroupId": "g-c"},
        ],
    });
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "AuthenticationSettings",
        "metadata": {"name": name},
        "spec": full,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_edit_drift_and_steady_state_with_minimal_patches() {
    let mut env = Env::new("authset-lifecycle").await;
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

    // Steady state: three resync intervals of reads only, and no status write.
    let version =
        env.get("authenticationsettings/master").unwrap()["metadata"]["resourceVersion"].clone();
    assert_eq!(env.writes().await, 2, "the two PATCHes above");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.writes().await, 2, "no write in steady state");
    let after = env.get("authenticationsettings/master").unwrap();
    assert_eq!(after["metadata"]["resourceVersion"], version);

    // A spec edit: one replace.
    let seq = env.last_seq().await;
    env.ns.kubectl_ok(&[
        "patch",
        "authenticationsettings/master",
        "--type=merge",
        "-p",
        r#"{"spec":{"tokenRetentionDays":14}}"#,
    ]);
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
    let metrics = env.op.as_ref().unwrap().metrics().await;
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
async fn observe_reports_drift_and_never_writes() {
    let mut env = Env::new("authset-observe").await;
    env.apply(&settings(
        "observed",
        json!({"managementPolicy": "Observe"}),
    ));
    env.start_operator();
    let obj = env
        .condition("authenticationsettings/observed", "False", "Drifted")
        .await;
    let drift: Vec<String> = serde_json::from_value(obj["status"]["drift"].clone()).unwrap();
    assert_eq!(
        drift,
        vec![
            "spec.securityDomain",
            "spec.minimumPasswordLength",
            "spec.openIdConnections[1002]",
            "spec.openIdConnections[1001].liveSyncOn",
            "spec.openIdConnections[1003]",
        ]
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.writes().await, 0, "Observe never writes");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_openid_connection_is_terminal_until_the_spec_changes() {
    let mut env = Env::new("authset-rejected").await;
    env.apply(&settings(
        "master",
        json!({"openIdConnections": [{"oid": "1001"}, {"oid": "999", "liveSyncOn": true}]}),
    ));
    env.start_operator();
    let obj = env
        .condition("authenticationsettings/master", "False", "Rejected")
        .await;
    let (_, _, message) = condition(&obj, "Synced").unwrap();
    assert!(
        message.contains("no OpenID connection with OID 999") && message.contains("10006"),
        "{message}"
    );
    // Three resync intervals later Xelion has still seen a single attempt, which changed
    // nothing (a PATCH is atomic).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.writes().await, 1, "no retry storm");
    assert_eq!(
        env.tenant().await["authentication"]["securityDomain"],
        "old"
    );

    env.ns.kubectl_ok(&[
        "patch",
        "authenticationsettings/master",
        "--type=merge",
        "-p",
        r#"{"spec":{"openIdConnections":[{"oid":"1001"}]}}"#,
    ]);
    env.ready("authenticationsettings/master").await;
    let auth = env.tenant().await["authentication"].clone();
    assert_eq!(auth["openIdConnections"], json!(["1001"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_requests_10400_waits_and_converges() {
    let mut env = Env::new("authset-429").await;
    env.sim
        .faults(json!({"api": "xelion", "burst429": 4}))
        .await;
    env.apply(&settings("master", json!({})));
    env.start_operator();
    env.ready("authenticationsettings/master").await;
    let calls = env.sim.calls().await;
    assert!(calls["xelion"].to_string().contains("\"429\""), "{calls}");
    let metrics = env.op.as_ref().unwrap().metrics().await;
    assert!(
        metrics.contains("identity_operator_identity_api_rate_limited_total{api=\"xelion\"}"),
        "{metrics}"
    );
    // The PATCH that links 1003, then the one that sets its field: no duplicate add.
    let applied: Vec<Value> = env
        .entries_since(0)
        .await
        .into_iter()
        .filter(|e| e["method"] == "PATCH" && e["status"] == 204)
        .map(|e| e["body"]["operations"].clone())
        .collect();
    assert_eq!(applied.len(), 2, "{applied:?}");
    let adds = applied
        .iter()
        .flat_map(|ops| ops.as_array().unwrap())
        .filter(|o| o["op"] == "add")
        .count();
    assert_eq!(adds, 1, "no duplicate add: {applied:?}");
    assert_eq!(
        env.tenant().await["authentication"]["securityDomain"],
        "corp"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn short_sessions_are_renewed_never_logged_in_twice() {
    let mut env = Env::with_sim(
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
    env.ns.kubectl_ok(&[
        "patch",
        "authenticationsettings/master",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxNumberOfFalseLogins":3}}"#,
    ]);
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
    let mut env = Env::new("authset-rotation").await;
    env.apply(&settings("master", json!({})));
    env.start_operator();
    env.ready("authenticationsettings/master").await;
    env.ready("identityapi/xelion").await;

    // A wrong password: the old session is ended, the new login refused, both report it.
    let seq = env.last_seq().await;
    env.apply(&login_secret("not-the-password"));
    let api = wait_condition(
        env.cluster,
        &env.ns,
        "identityapi/xelion",
        "Ready",
        "False",
        Some("AuthenticationFailed"),
        READY,
    )
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
    env.ns.kubectl_ok(&[
        "patch",
        "authenticationsettings/master",
        "--type=merge",
        "-p",
        r#"{"spec":{"securityDomain":"rotated"}}"#,
    ]);
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
    let log = env.op.as_ref().unwrap().log();
    assert!(!log.contains("not-the-password") && !log.contains(&env.sim.options.client_secret));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_manifest_works_as_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest =
        std::fs::read_to_string(format!("{root}/examples/authentication-settings.yaml")).unwrap();
    let seed: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/examples/sim-seed/xelion.json")).unwrap(),
    )
    .unwrap();
    let cluster = ensure_cluster();
    // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
    support::operator::install_crds(cluster);
    let ns = TestNamespace::new(cluster, "authset-example");
    let sim = SimProcess::start(SimOptions {
        client_id: "demo".into(),
        client_secret: "demo-secret".into(),
        ..SimOptions::default()
    });
    sim.seed(seed).await;
    // The example targets the quick-start simulator's fixed port.
    apply(
        cluster,
        &ns,
        &manifest.replace("http://127.0.0.1:18080", sim.base_url()),
    );
    let _op = Operator::start(cluster, &ns, &[]);
    let what = "authenticationsettings/master-authentication";
    let obj = wait_condition(cluster, &ns, what, "Ready", "True", None, READY).await;
    assert_eq!(obj["status"]["externalId"], "master");
    let state = sim.state().await;
    let auth = &state["xelion"]["tenants"][0]["authentication"];
    assert_eq!(auth["securityDomain"], "ACME");
    assert_eq!(auth["openIdConnections"], json!(["1001", "1002"]));
}
