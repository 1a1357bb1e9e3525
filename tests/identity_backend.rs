//! End to end: IdentityBackend against the simulated Boruta admin API, on a real Kubernetes API
//! server, with the operator binary driven the way a user drives it (kubectl).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{
    Operator, apply, condition, count_writes, get_json, wait_condition, wait_for,
};
use support::sim::{SimOptions, SimProcess};

const READY: Duration = Duration::from_secs(45);
const ROLE: &str = "6a2f41a3-c54c-4f2a-9e0c-0a0b0c0d0e01";

struct Env {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    op: Option<Operator>,
}

impl Env {
    async fn new(prefix: &str) -> Env {
        let cluster = ensure_cluster();
        // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
        support::operator::install_crds(cluster);
        let ns = TestNamespace::new(cluster, prefix);
        let sim = SimProcess::start(SimOptions {
            extra_args: vec!["--boruta-oauth-rate-limit".into(), "0".into()],
            ..SimOptions::default()
        });
        sim.seed(json!({"boruta": {"roles": [{"id": ROLE, "name": "admin"}]}}))
            .await;
        let env = Env {
            cluster,
            ns,
            sim,
            op: None,
        };
        env.apply(&json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "boruta-client"},
            "stringData": {"secret": env.sim.options.client_secret},
        }));
        env.apply(&identity_api(&env.sim, "boruta"));
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

    async fn backends(&self) -> Vec<Value> {
        self.sim.state().await["boruta"]["backends"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn backend(&self, id: &str) -> Option<Value> {
        self.backends().await.into_iter().find(|b| b["id"] == id)
    }

    async fn writes(&self) -> usize {
        count_writes(&self.sim.log().await, "boruta")
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

    fn events(&self) -> String {
        self.ns.kubectl_ok(&["get", "events", "-o", "json"])
    }
}

fn identity_api(sim: &SimProcess, name: &str) -> Value {
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
        "metadata": {"name": name},
        "spec": {
            "provider": "boruta",
            "url": sim.url("boruta"),
            "auth": {"oauth2ClientCredentials": {
                "tokenUrl": "oauth/token",
                "clientId": sim.options.client_id,
                "clientSecretRef": {"name": "boruta-client", "key": "secret"},
                "scopes": ["identity-providers:manage:all"],
            }},
        },
    })
}

fn backend(name: &str, spec: Value) -> Value {
    let mut full = json!({
        "apiRef": {"name": "boruta"},
        "name": name,
        "passwordHashingAlg": "argon2",
    });
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityBackend",
        "metadata": {"name": name.to_lowercase().replace(' ', "-")},
        "spec": full,
    })
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

fn external_id(obj: &Value) -> String {
    obj["status"]["externalId"]
        .as_str()
        .expect("externalId")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_edit_drift_and_delete() {
    let mut env = Env::new("idb-lifecycle").await;
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
    env.ns.kubectl_ok(&[
        "patch",
        "identitybackend/corporate-ldap",
        "--type=merge",
        "-p",
        r#"{"spec":{"ldapHost":"ldap2.example.com","roles":[]}}"#,
    ]);
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
    let metrics = env.op.as_ref().unwrap().metrics().await;
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
    let mut env = Env::new("idb-secrets").await;
    env.apply(&backend("Secret LDAP", ldap_spec()));
    env.start_operator();

    // No Secret yet: a clear condition and no write to the API.
    let obj = wait_condition(
        env.cluster,
        &env.ns,
        "identitybackend/secret-ldap",
        "Ready",
        "False",
        Some("SecretNotFound"),
        READY,
    )
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
    let log = env.op.as_ref().unwrap().log();
    assert!(!log.contains("password-one") && !log.contains("password-two"));
    assert!(!env.events().contains("password-two"));
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_reports_drift_and_never_writes() {
    let mut env = Env::new("idb-observe").await;
    let seeded = env
        .sim
        .seed(json!({"boruta": {"backends": [{
            "id": "0d4b7c1e-1111-4222-8333-444455556666",
            "name": "Observed", "password_hashing_alg": "bcrypt", "smtp_port": 25,
        }]}}))
        .await;
    assert!(seeded.is_object() || seeded.is_null());
    env.apply(&backend(
        "Observed",
        json!({
            "managementPolicy": "Observe",
            "backendId": "0d4b7c1e-1111-4222-8333-444455556666",
            "smtpPort": 587,
        }),
    ));
    env.start_operator();
    let obj = wait_condition(
        env.cluster,
        &env.ns,
        "identitybackend/observed",
        "Ready",
        "False",
        Some("Drifted"),
        READY,
    )
    .await;
    let drift = obj["status"]["drift"].to_string();
    assert!(
        drift.contains("spec.smtpPort") && drift.contains("spec.passwordHashingAlg"),
        "{drift}"
    );
    assert!(
        obj["metadata"]["finalizers"].is_null(),
        "Observe holds no finalizer"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.writes().await, 0, "Observe never writes");

    env.ns
        .kubectl_ok(&["delete", "identitybackend/observed", "--timeout=30s"]);
    assert!(
        env.backend("0d4b7c1e-1111-4222-8333-444455556666")
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_by_name_without_duplicating_and_orphans_by_default() {
    let mut env = Env::new("idb-adopt").await;
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
async fn rejected_spec_is_terminal_until_it_changes() {
    let mut env = Env::new("idb-rejected").await;
    env.apply(&backend(
        "Bad Roles",
        json!({"roles": [{"id": "00000000-dead-4bad-8bad-000000000000"}]}),
    ));
    env.start_operator();
    let obj = wait_condition(
        env.cluster,
        &env.ns,
        "identitybackend/bad-roles",
        "Ready",
        "False",
        Some("Rejected"),
        READY,
    )
    .await;
    let (_, _, message) = condition(&obj, "Synced").unwrap();
    assert!(
        message.contains("422") && message.contains("roles"),
        "{message}"
    );
    // Three resync intervals later the API has still seen a single attempt.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.writes().await, 1, "no retry storm");

    env.ns.kubectl_ok(&[
        "patch",
        "identitybackend/bad-roles",
        "--type=merge",
        "-p",
        r#"{"spec":{"roles":[]}}"#,
    ]);
    env.ready("identitybackend/bad-roles").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_calls_wait_and_converge() {
    let mut env = Env::new("idb-429").await;
    env.sim
        .faults(json!({"api": "boruta", "burst429": 4}))
        .await;
    for i in 0..3 {
        env.apply(&backend(&format!("Limited {i}"), json!({})));
    }
    env.start_operator();
    for i in 0..3 {
        env.ready(&format!("identitybackend/limited-{i}")).await;
    }
    let calls = env.sim.calls().await;
    assert!(calls["boruta"].to_string().contains("\"429\""), "{calls}");
    let metrics = env.op.as_ref().unwrap().metrics().await;
    assert!(metrics.contains("identity_operator_identity_api_rate_limited_total{api=\"boruta\"}"));
    assert_eq!(env.backends().await.len(), 4, "default + 3, no duplicate");
}

#[tokio::test(flavor = "multi_thread")]
async fn steady_state_makes_no_writes() {
    let mut env = Env::new("idb-steady").await;
    for i in 0..10 {
        env.apply(&backend(
            &format!("Steady {i}"),
            json!({"smtpPort": 2500 + i}),
        ));
    }
    env.start_operator();
    for i in 0..10 {
        env.ready(&format!("identitybackend/steady-{i}")).await;
    }
    let writes = env.writes().await;
    let versions = env.ns.kubectl_ok(&[
        "get",
        "identitybackends",
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
        "identitybackends",
        "-o",
        "jsonpath={.items[*].metadata.resourceVersion}",
    ]);
    assert_eq!(versions, after, "no status write in steady state");
    assert_eq!(env.writes().await, 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_api_reports_authentication_and_wrong_provider() {
    let mut env = Env::new("idb-auth").await;
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

    let api = wait_condition(
        env.cluster,
        &env.ns,
        "identityapi/boruta",
        "Ready",
        "False",
        Some("AuthenticationFailed"),
        READY,
    )
    .await;
    let (_, _, message) = condition(&api, "Ready").unwrap();
    assert!(!message.contains("not-the-secret"), "{message}");
    wait_condition(
        env.cluster,
        &env.ns,
        "identitybackend/wrong",
        "Ready",
        "False",
        Some("WrongProvider"),
        READY,
    )
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
async fn crash_during_creation_never_duplicates() {
    let mut env = Env::new("idb-crash").await;
    env.sim
        .faults(json!({"api": "boruta", "latencyMs": 40}))
        .await;
    for i in 0..15 {
        env.apply(&backend(&format!("Crash {i}"), json!({})));
    }
    env.start_operator();
    wait_for(READY, "first creations", || async {
        (env.backends().await.len() >= 3).then_some(())
    })
    .await;
    env.op.as_mut().unwrap().kill();
    env.start_operator();
    for i in 0..15 {
        env.ready(&format!("identitybackend/crash-{i}")).await;
    }
    let backends = env.backends().await;
    let mut names: Vec<&str> = backends.iter().filter_map(|b| b["name"].as_str()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate backend names: {names:?}");
    assert_eq!(names.len(), 16, "default + 15");
}

#[tokio::test(flavor = "multi_thread")]
async fn federated_client_secrets_come_from_secrets_never_from_the_spec() {
    let mut env = Env::new("idb-federated").await;
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
    let refused = wait_condition(
        env.cluster,
        &env.ns,
        "identitybackend/plain",
        "Ready",
        "False",
        Some("InvalidSpec"),
        READY,
    )
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
    let log = env.op.as_ref().unwrap().log();
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
