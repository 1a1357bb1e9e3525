//! End to end: OrgConnection against the simulated Auth0 Management API v2, on a real
//! Kubernetes API server, with the operator binary driven the way a user drives it (kubectl).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{
    Operator, apply, condition, count_calls, count_writes, get_json, wait_condition, wait_for,
};
use support::sim::{AUTH0_AUDIENCE, SimOptions, SimProcess};

const READY: Duration = Duration::from_secs(45);

struct Env {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    op: Option<Operator>,
}

impl Env {
    /// A simulator with organizations org_acme and org_beta, and four tenant connections.
    async fn new(prefix: &str) -> Env {
        let cluster = ensure_cluster();
        // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
        support::operator::install_crds(cluster);
        let ns = TestNamespace::new(cluster, prefix);
        let sim = SimProcess::start(SimOptions::default());
        sim.seed(json!({"auth0": {
            "organizations": [{"id": "org_acme", "name": "acme"}, {"id": "org_beta", "name": "beta"}],
            "connections": [
                {"id": "con_saml", "name": "corp-saml", "strategy": "samlp"},
                {"id": "con_db", "name": "Username-Password-Authentication", "strategy": "auth0"},
                {"id": "con_google", "name": "google-oauth2", "strategy": "google-oauth2"},
                {"id": "con_github", "name": "github", "strategy": "github"},
            ],
        }}))
        .await;
        let env = Env {
            cluster,
            ns,
            sim,
            op: None,
        };
        env.client_secret(&env.sim.options.client_secret.clone());
        env.apply(&json!({
            "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
            "metadata": {"name": "auth0"},
            "spec": {
                "provider": "auth0",
                "url": env.sim.url("auth0"),
                "auth": {"oauth2ClientCredentials": {
                    "tokenUrl": "oauth/token",
                    "clientId": env.sim.options.client_id,
                    "clientSecretRef": {"name": "auth0-client", "key": "clientSecret"},
                    "audience": AUTH0_AUDIENCE,
                }},
            },
        }));
        env
    }

    fn client_secret(&self, value: &str) {
        self.apply(&json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "auth0-client"},
            "stringData": {"clientSecret": value},
        }));
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
        self.sim.state().await["auth0"]["organizationConnections"]
            .as_array()?
            .iter()
            .find(|c| c["organization_id"] == org && c["connection_id"] == conn)
            .cloned()
    }

    async fn writes(&self) -> usize {
        count_writes(&self.sim.log().await, "auth0")
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

    /// Changes a connection behind the operator's back, through the vendor API itself.
    async fn edit_remote(&self, org: &str, conn: &str, body: Value) {
        let http = reqwest::Client::new();
        let token = self.sim.token("auth0").await;
        let resp = http
            .patch(format!(
                "{}/api/v2/organizations/{org}/connections/{conn}",
                self.sim.url("auth0")
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "remote edit: {}", resp.status());
    }

    fn events(&self) -> String {
        self.ns.kubectl_ok(&["get", "events", "-o", "json"])
    }
}

fn org_connection(name: &str, org: &str, conn: &str, spec: Value) -> Value {
    let mut full =
        json!({"apiRef": {"name": "auth0"}, "organizationId": org, "connectionId": conn});
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "OrgConnection",
        "metadata": {"name": name},
        "spec": full,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn create_edit_drift_and_delete() {
    let mut env = Env::new("orgconn-lifecycle").await;
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
    env.ns.kubectl_ok(&[
        "patch",
        "orgconnection/acme-saml",
        "--type=merge",
        "-p",
        r#"{"spec":{"showAsButton":true,"organizationAccessLevel":"full","isEnabled":true}}"#,
    ]);
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
    let metrics = env.op.as_ref().unwrap().metrics().await;
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
async fn observe_reports_drift_and_never_writes() {
    let mut env = Env::new("orgconn-observe").await;
    env.seed_enabled("org_acme", "con_db", json!({"is_signup_enabled": false}))
        .await;
    env.apply(&org_connection(
        "acme-db",
        "org_acme",
        "con_db",
        json!({"managementPolicy": "Observe", "isSignupEnabled": true, "showAsButton": true,
               "organizationAccessLevel": "none"}),
    ));
    env.start_operator();
    let obj = wait_condition(
        env.cluster,
        &env.ns,
        "orgconnection/acme-db",
        "Ready",
        "False",
        Some("Drifted"),
        READY,
    )
    .await;
    assert_eq!(obj["status"]["drift"], json!(["spec.isSignupEnabled"]));
    assert_eq!(obj["status"]["remote"]["strategy"], "auth0");
    assert!(
        obj["metadata"]["finalizers"].is_null(),
        "Observe holds no finalizer"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.writes().await, 0, "Observe never writes");

    // Once the remote matches, Observe reports Ready, still without writing.
    env.edit_remote("org_acme", "con_db", json!({"is_signup_enabled": true}))
        .await;
    env.ready("orgconnection/acme-db").await;
    assert_eq!(env.writes().await, 1, "only the test's own edit");

    env.ns
        .kubectl_ok(&["delete", "orgconnection/acme-db", "--timeout=30s"]);
    assert!(env.remote("org_acme", "con_db").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_follows_the_policy() {
    let mut env = Env::new("orgconn-delete").await;
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
async fn rejected_spec_is_terminal_until_it_changes() {
    let mut env = Env::new("orgconn-rejected").await;
    // A no-break space passes the CRD's `^\S+$` (RE2 knows only ASCII spaces) but not
    // Auth0's pattern: the vendor's own validation has the last word.
    env.apply(&org_connection(
        "bad-name",
        "org_acme",
        "con_saml",
        json!({"organizationConnectionName": "corp\u{a0}sso"}),
    ));
    env.start_operator();
    let obj = wait_condition(
        env.cluster,
        &env.ns,
        "orgconnection/bad-name",
        "Ready",
        "False",
        Some("Rejected"),
        READY,
    )
    .await;
    let (_, _, message) = condition(&obj, "Synced").unwrap();
    assert!(
        message.contains("400")
            && message.contains("Payload validation error")
            && message.contains("organization_connection_name"),
        "{message}"
    );
    // Three resync intervals later the API has still seen a single attempt.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.writes().await, 1, "no retry storm");
    let events = env.events();
    assert_eq!(
        events.matches("Payload validation error").count(),
        1,
        "one Event for the failure, not one per resync"
    );

    env.ns.kubectl_ok(&[
        "patch",
        "orgconnection/bad-name",
        "--type=merge",
        "-p",
        r#"{"spec":{"organizationConnectionName":"corp-sso"}}"#,
    ]);
    env.ready("orgconnection/bad-name").await;
    assert_eq!(
        env.remote("org_acme", "con_saml").await.unwrap()["organization_connection_name"],
        "corp-sso"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_headers_pace_the_calls() {
    let mut env = Env::new("orgconn-429").await;
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
async fn steady_state_makes_no_writes() {
    let mut env = Env::new("orgconn-steady").await;
    let mut names = vec![];
    for (i, conn) in ["con_saml", "con_db", "con_google", "con_github"]
        .iter()
        .enumerate()
    {
        let name = format!("steady-{i}");
        env.apply(&org_connection(
            &name,
            "org_acme",
            conn,
            json!({"organizationConnectionName": format!("conn-{i}"),
                   "organizationAccessLevel": if i == 0 { "none" } else { "limited" },
                   "isEnabled": true, "showAsButton": i % 2 == 0}),
        ));
        names.push(name);
    }
    env.start_operator();
    for name in &names {
        env.ready(&format!("orgconnection/{name}")).await;
    }
    // Auth0 takes a null access level and answers "none": nothing to repair for a spec that
    // says none.
    env.edit_remote(
        "org_acme",
        "con_saml",
        json!({"organization_access_level": null}),
    )
    .await;
    let writes = env.writes().await;
    let versions = env.ns.kubectl_ok(&[
        "get",
        "orgconnections",
        "-o",
        "jsonpath={.items[*].metadata.resourceVersion}",
    ]);
    // Three resync intervals (2 s each): reads only, and no status write.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        env.writes().await,
        writes,
        "no identity-API write in steady state"
    );
    let after = env.ns.kubectl_ok(&[
        "get",
        "orgconnections",
        "-o",
        "jsonpath={.items[*].metadata.resourceVersion}",
    ]);
    assert_eq!(versions, after, "no status write in steady state");
    assert_eq!(
        writes,
        names.len() + 1,
        "one POST each, plus the test's edit"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_api_credentials_are_rotated_and_never_shown() {
    let mut env = Env::new("orgconn-creds").await;
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
    env.client_secret("rotated-wrong-value");
    let api = wait_condition(
        env.cluster,
        &env.ns,
        "identityapi/auth0",
        "Ready",
        "False",
        Some("AuthenticationFailed"),
        READY,
    )
    .await;
    let (_, _, message) = condition(&api, "Ready").unwrap();
    assert!(!message.contains("rotated-wrong-value"), "{message}");
    env.ns.kubectl_ok(&[
        "patch",
        "orgconnection/acme-saml",
        "--type=merge",
        "-p",
        r#"{"spec":{"showAsButton":false}}"#,
    ]);
    wait_condition(
        env.cluster,
        &env.ns,
        "orgconnection/acme-saml",
        "Synced",
        "False",
        Some("AuthenticationFailed"),
        READY,
    )
    .await;

    // The right secret again: the pending edit goes through with a fresh token.
    env.client_secret(&env.sim.options.client_secret.clone());
    env.ready("identityapi/auth0").await;
    env.ready("orgconnection/acme-saml").await;
    assert_eq!(
        env.remote("org_acme", "con_saml").await.unwrap()["show_as_button"],
        false
    );

    // Tokens expiring server-side: one re-authentication, no failure.
    env.sim.expire_tokens(Some("auth0")).await;
    env.ns.kubectl_ok(&[
        "patch",
        "orgconnection/acme-saml",
        "--type=merge",
        "-p",
        r#"{"spec":{"showAsButton":true}}"#,
    ]);
    env.ready("orgconnection/acme-saml").await;
    assert_eq!(
        env.remote("org_acme", "con_saml").await.unwrap()["show_as_button"],
        true
    );

    let log = env.op.as_ref().unwrap().log();
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
    let cluster = ensure_cluster();
    // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
    support::operator::install_crds(cluster);
    let ns = TestNamespace::new(cluster, "orgconn-example");
    let sim = SimProcess::start(SimOptions {
        client_id: "demo".into(),
        client_secret: "demo-secret".into(),
        ..SimOptions::default()
    });
    let root = env!("CARGO_MANIFEST_DIR");
    let seed = std::fs::read_to_string(format!("{root}/examples/sim-seed/auth0.json")).unwrap();
    sim.seed(serde_json::from_str(&seed).unwrap()).await;
    // The example targets the quick-start simulator on port 18080; this one has its own port.
    let example = std::fs::read_to_string(format!("{root}/examples/org-connection.yaml"))
        .unwrap()
        .replace("http://127.0.0.1:18080", sim.base_url());
    apply(cluster, &ns, &example);
    let _op = Operator::start(cluster, &ns, &[]);
    let obj = wait_condition(
        cluster,
        &ns,
        "orgconnection/acme-corporate-sso",
        "Ready",
        "True",
        None,
        READY,
    )
    .await;
    assert_eq!(obj["status"]["remote"]["strategy"], "samlp");
}
