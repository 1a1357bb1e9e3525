//! End to end: LdapSettings against the simulated VCD cloudapi, on a real Kubernetes API server,
//! with the operator binary driven the way a user drives it (kubectl).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::operator::{
    Operator, apply, condition, count_writes, get_json, wait_condition, wait_for,
};
use support::sim::{SimOptions, SimProcess};

const READY: Duration = Duration::from_secs(45);
const ORG: &str = "acme";
const ORG_ID: &str = "5d1c7e0a-3b2f-4c8d-9e6a-7f8091a2b3c4";
const MEDIA_TYPE: &str = "application/json;version=9.1.0";

struct Env {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    op: Option<Operator>,
}

impl Env {
    async fn new(prefix: &str, org: Value) -> Env {
        Env::with_sim(prefix, SimOptions::default(), org).await
    }

    async fn with_sim(prefix: &str, options: SimOptions, org: Value) -> Env {
        let cluster = ensure_cluster();
        // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
        support::operator::install_crds(cluster);
        let ns = TestNamespace::new(cluster, prefix);
        let sim = SimProcess::start(options);
        let mut org = org;
        org["name"] = json!(ORG);
        org["id"] = json!(ORG_ID);
        sim.seed(json!({"vcd": {"orgs": [org]}})).await;
        let env = Env {
            cluster,
            ns,
            sim,
            op: None,
        };
        env.apply(&secret("vcd-login", env.sim.options.client_secret.as_str()));
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

    /// The org's settings as the simulator stores them, password included.
    async fn remote(&self) -> Value {
        let state = self.sim.state().await;
        state["vcd"]["orgs"]
            .as_array()
            .and_then(|orgs| orgs.iter().find(|o| o["name"] == ORG))
            .map(|o| o["ldap"].clone())
            .expect("the org exists")
    }

    /// Every PUT of the LDAP settings since `since`, with its body.
    async fn puts_since(&self, since: u64) -> Vec<Value> {
        let log = self.sim.log_since("vcd", since).await;
        log["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["method"] == "PUT" && e["path"] == "/vcd/cloudapi/v1/orgSettings/ldap")
            .map(|e| e["body"].clone())
            .collect()
    }

    async fn last_seq(&self) -> u64 {
        self.sim.log().await["lastSeq"].as_u64().unwrap_or(0)
    }

    async fn writes(&self) -> usize {
        count_writes(&self.sim.log().await, "vcd")
    }

    /// Changes the settings behind the operator's back, through the vendor API itself.
    async fn edit_remote(&self, changes: impl FnOnce(&mut Value)) {
        let http = reqwest::Client::new();
        let vcd = self.sim.url("vcd");
        let session = http
            .post(format!("{vcd}/cloudapi/1.0.0/sessions"))
            .basic_auth(
                format!("{}@{ORG}", self.sim.options.client_id),
                Some(&self.sim.options.client_secret),
            )
            .header("Accept", MEDIA_TYPE)
            .send()
            .await
            .unwrap();
        let token = session.headers()["x-vmware-vcloud-access-token"]
            .to_str()
            .unwrap()
            .to_owned();
        let url = format!("{vcd}/cloudapi/v1/orgSettings/ldap");
        let mut settings: Value = http
            .get(&url)
            .bearer_auth(&token)
            .header("Accept", MEDIA_TYPE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        changes(&mut settings);
        let resp = http
            .put(&url)
            .bearer_auth(&token)
            .header("Accept", MEDIA_TYPE)
            .header("Content-Type", MEDIA_TYPE)
            .body(settings.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "remote edit: {}", resp.status());
    }

    fn events(&self) -> String {
        self.ns.kubectl_ok(&["get", "events", "-o", "json"])
    }

    fn operator_log(&self) -> String {
        self.op.as_ref().map(Operator::log).unwrap_or_default()
    }
}

fn secret(name: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"password": value},
    })
}

fn identity_api(sim: &SimProcess) -> Value {
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
        "metadata": {"name": "vcd"},
        "spec": {
            "provider": "vcd",
            "url": sim.url("vcd"),
            "auth": {"vcdSession": {
                "org": ORG,
                "username": sim.options.client_id,
                "passwordSecretRef": {"name": "vcd-login", "key": "password"},
            }},
        },
    })
}

fn defined(host: &str) -> Value {
    json!({
        "hostName": host, "port": 636, "ssl": true, "pageSize": 500,
        "searchBase": "dc=acme,dc=example", "userName": "cn=bind,dc=acme,dc=example",
        "passwordSecretRef": {"name": "ldap-bind", "key": "password"},
        "groupSearchBase": "ou=groups,dc=acme,dc=example",
        "userAttributes": {"objectClass": "inetOrgPerson", "userName": "uid", "email": "mail"},
        "groupAttributes": {"objectClass": "groupOfUniqueNames", "membership": "uniqueMember"},
    })
}

fn ldap_settings(name: &str, spec: Value) -> Value {
    let mut full = json!({
        "apiRef": {"name": "vcd"},
        "enabled": true,
        "settingsSource": "DEFINED",
        "definedSettings": defined("ldap.acme.example"),
    });
    for (k, v) in spec.as_object().unwrap() {
        full[k] = v.clone();
    }
    json!({
        "apiVersion": "identity.operator.dev/v1alpha1", "kind": "LdapSettings",
        "metadata": {"name": name},
        "spec": full,
    })
}

/// Settings the org already has: the operator adopts them.
fn existing() -> Value {
    json!({"ldap": {
        "enabled": true, "settingsSource": "DEFINED",
        "definedSettings": {
            "hostName": "old-ldap.acme.example", "port": 389, "ssl": false,
            "searchBase": "dc=acme,dc=example", "userName": "cn=old,dc=acme,dc=example",
            "password": "old-password",
        },
    }})
}

/// Whether a PUT carried the bind password. The simulator's log shows it as `[redacted]`; the
/// value itself is compared in the simulator's state, never printed.
fn password_sent(put: &Value) -> bool {
    put["definedSettings"]
        .get("password")
        .is_some_and(|p| p == "[redacted]")
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_edit_drift_rotation_and_steady_state() {
    let mut env = Env::new("ldaps-lifecycle", existing()).await;
    env.apply(&secret("ldap-bind", "bind-one"));
    env.apply(&ldap_settings("acme", json!({})));
    env.start_operator();

    // Adopted: Ready, the org's settings equal the spec, the password sent once.
    let obj = env.ready("ldapsettings/acme").await;
    assert_eq!(obj["status"]["externalId"], ORG);
    assert_eq!(obj["status"]["created"], false);
    assert!(
        obj["metadata"]["finalizers"].is_null(),
        "no finalizer without disableOnDelete"
    );
    let remote = env.remote().await;
    assert_eq!(remote["enabled"], true);
    assert_eq!(remote["settingsSource"], "DEFINED");
    let d = &remote["definedSettings"];
    for (field, want) in [
        ("hostName", json!("ldap.acme.example")),
        ("port", json!(636)),
        ("ssl", json!(true)),
        ("pageSize", json!(500)),
        ("searchBase", json!("dc=acme,dc=example")),
        ("userName", json!("cn=bind,dc=acme,dc=example")),
        ("password", json!("bind-one")),
        ("groupSearchBase", json!("ou=groups,dc=acme,dc=example")),
    ] {
        assert_eq!(d[field], want, "remote definedSettings.{field}");
    }
    assert_eq!(d["userAttributes"]["userName"], "uid");
    assert_eq!(d["groupAttributes"]["membership"], "uniqueMember");
    let puts = env.puts_since(0).await;
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(password_sent(&puts[0]));

    // Steady state: three resync intervals of reads only, and no status write.
    let version = env.get("ldapsettings/acme").unwrap()["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.writes().await, 1, "no write in steady state");
    let after = env.get("ldapsettings/acme").unwrap();
    assert_eq!(after["metadata"]["resourceVersion"], version);

    // A spec edit is sent without the password: VCD keeps the stored one.
    let seq = env.last_seq().await;
    env.ns.kubectl_ok(&[
        "patch",
        "ldapsettings/acme",
        "--type=merge",
        "-p",
        r#"{"spec":{"definedSettings":{"hostName":"ldap2.acme.example"}}}"#,
    ]);
    wait_for(READY, "spec edit reaches VCD", || async {
        let r = env.remote().await;
        (r["definedSettings"]["hostName"] == "ldap2.acme.example").then_some(())
    })
    .await;
    let puts = env.puts_since(seq).await;
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(!password_sent(&puts[0]), "{}", puts[0]);
    assert_eq!(
        env.remote().await["definedSettings"]["password"],
        "bind-one"
    );

    // Drift behind the operator's back is repaired, again without the password.
    let seq = env.last_seq().await;
    env.edit_remote(|s| {
        s["definedSettings"]["port"] = json!(389);
        s["definedSettings"]["userAttributes"]["email"] = json!("userPrincipalName");
    })
    .await;
    wait_for(READY, "drift repaired", || async {
        let d = env.remote().await["definedSettings"].clone();
        (d["port"] == 636 && d["userAttributes"]["email"] == "mail").then_some(())
    })
    .await;
    let puts = env.puts_since(seq).await;
    let ours: Vec<&Value> = puts
        .iter()
        .filter(|p| p["definedSettings"]["port"] == 636)
        .collect();
    assert_eq!(ours.len(), 1, "{puts:?}");
    assert!(!password_sent(ours[0]));
    assert_eq!(
        env.remote().await["definedSettings"]["password"],
        "bind-one"
    );
    let metrics = env.op.as_ref().unwrap().metrics().await;
    assert!(
        metrics.contains("identity_operator_drift_detected_total{kind=\"LdapSettings\"}"),
        "{metrics}"
    );

    // Rotating the bind password re-sends it, with no spec change.
    let generation = env.get("ldapsettings/acme").unwrap()["metadata"]["generation"].clone();
    let seq = env.last_seq().await;
    env.apply(&secret("ldap-bind", "bind-two"));
    wait_for(READY, "rotated password reaches VCD", || async {
        let r = env.remote().await;
        (r["definedSettings"]["password"] == "bind-two").then_some(())
    })
    .await;
    let puts = env.puts_since(seq).await;
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert!(password_sent(&puts[0]));
    let obj = env.ready("ldapsettings/acme").await;
    assert_eq!(obj["metadata"]["generation"], generation);

    // No secret value anywhere the operator writes.
    let status = obj["status"].to_string();
    let log = env.operator_log();
    let events = env.events();
    for secret in [
        "bind-one",
        "bind-two",
        env.sim.options.client_secret.as_str(),
    ] {
        assert!(!status.contains(secret), "status holds a secret: {status}");
        assert!(!log.contains(secret), "the operator log holds a secret");
        assert!(!events.contains(secret), "an Event holds a secret");
    }

    // Deleted: the settings stay as they are (Orphan by default).
    let seq = env.last_seq().await;
    env.ns
        .kubectl_ok(&["delete", "ldapsettings/acme", "--timeout=30s"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(env.puts_since(seq).await.is_empty());
    assert_eq!(env.remote().await["enabled"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_reports_drift_and_never_writes() {
    let mut env = Env::new("ldaps-observe", existing()).await;
    env.apply(&secret("ldap-bind", "never-sent"));
    env.apply(&ldap_settings(
        "observed",
        json!({"managementPolicy": "Observe", "disableOnDelete": true}),
    ));
    env.start_operator();
    let obj = env
        .condition("ldapsettings/observed", "False", "Drifted")
        .await;
    let drift = obj["status"]["drift"].to_string();
    for path in [
        "spec.definedSettings.hostName",
        "spec.definedSettings.port",
        "spec.definedSettings.ssl",
        "spec.definedSettings.userName",
    ] {
        assert!(drift.contains(path), "{path} in {drift}");
    }
    assert!(!drift.contains("password"), "{drift}");
    assert!(
        obj["metadata"]["finalizers"].is_null(),
        "Observe holds no finalizer"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.writes().await, 0, "Observe never writes");

    env.ns
        .kubectl_ok(&["delete", "ldapsettings/observed", "--timeout=30s"]);
    assert_eq!(env.writes().await, 0, "Observe never disables either");
    assert_eq!(
        env.remote().await["definedSettings"]["password"],
        "old-password"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stranding_imported_users_is_terminal_until_the_spec_changes() {
    let mut org = existing();
    org["importedUsersOrGroups"] = json!(true);
    let mut env = Env::new("ldaps-strand", org).await;
    env.apply(&secret("ldap-bind", "bind-one"));
    env.apply(&ldap_settings("acme", json!({"enabled": false})));
    env.start_operator();

    let obj = env
        .condition("ldapsettings/acme", "False", "Rejected")
        .await;
    let (_, _, message) = condition(&obj, "Synced").unwrap();
    assert!(
        message.contains("Performing this change would strand imported users or groups.")
            && message.contains("400"),
        "{message}"
    );
    assert!(env.events().contains("would strand imported users"));
    // Three resync intervals later VCD has still seen a single attempt.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.writes().await, 1, "no retry storm");
    assert_eq!(env.remote().await["enabled"], true);

    // Keeping LDAP enabled with the same source is accepted.
    env.ns.kubectl_ok(&[
        "patch",
        "ldapsettings/acme",
        "--type=merge",
        "-p",
        r#"{"spec":{"enabled":true}}"#,
    ]);
    env.ready("ldapsettings/acme").await;
    assert_eq!(
        env.remote().await["definedSettings"]["hostName"],
        "ldap.acme.example"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_ldap_settings_is_a_conflict_until_the_first_is_deleted() {
    let mut env = Env::new("ldaps-singleton", existing()).await;
    env.apply(&secret("ldap-bind", "bind-one"));
    env.apply(&ldap_settings("first", json!({})));
    // A long resync: the hand-over below must come from the deletion itself.
    env.op = Some(Operator::start(
        env.cluster,
        &env.ns,
        &["--resync-interval", "10m"],
    ));
    env.ready("ldapsettings/first").await;
    let writes = env.writes().await;

    env.apply(&ldap_settings(
        "second",
        json!({"definedSettings": defined("ldap-second.acme.example")}),
    ));
    let obj = env
        .condition("ldapsettings/second", "False", "Conflict")
        .await;
    let (_, _, message) = condition(&obj, "Ready").unwrap();
    assert!(message.contains("\"first\""), "{message}");
    assert!(obj["status"]["externalId"].is_null());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.writes().await, writes, "the younger one never writes");
    let first = env.get("ldapsettings/first").unwrap();
    assert_eq!(condition(&first, "Ready").unwrap().0, "True");

    // The older one goes (no finalizer: nothing to clean up): the younger one takes over.
    env.ns
        .kubectl_ok(&["delete", "ldapsettings/first", "--timeout=30s"]);
    wait_condition(
        env.cluster,
        &env.ns,
        "ldapsettings/second",
        "Ready",
        "True",
        None,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        env.remote().await["definedSettings"]["hostName"],
        "ldap-second.acme.example"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_on_delete_disables_ldap_and_keeps_the_rest() {
    let mut env = Env::new("ldaps-disable", existing()).await;
    env.apply(&secret("ldap-bind", "bind-one"));
    env.apply(&ldap_settings("acme", json!({"disableOnDelete": true})));
    env.start_operator();
    let obj = env.ready("ldapsettings/acme").await;
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["identity.operator.dev/cleanup"])
    );

    let seq = env.last_seq().await;
    env.ns
        .kubectl_ok(&["delete", "ldapsettings/acme", "--timeout=60s"]);
    assert!(env.get("ldapsettings/acme").is_none());
    let remote = env.remote().await;
    assert_eq!(remote["enabled"], false);
    assert_eq!(remote["definedSettings"]["hostName"], "ldap.acme.example");
    assert_eq!(remote["definedSettings"]["password"], "bind-one");
    let puts = env.puts_since(seq).await;
    assert_eq!(puts.len(), 1, "{puts:?}");
    assert_eq!(puts[0]["enabled"], false);
    assert!(!password_sent(&puts[0]), "{}", puts[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_calls_wait_and_converge() {
    let mut env = Env::new("ldaps-429", existing()).await;
    env.sim.faults(json!({"api": "vcd", "burst429": 3})).await;
    env.apply(&secret("ldap-bind", "bind-one"));
    env.apply(&ldap_settings("acme", json!({})));
    env.start_operator();
    env.ready("ldapsettings/acme").await;
    let calls = env.sim.calls().await;
    assert!(calls["vcd"].to_string().contains("\"429\""), "{calls}");
    assert_eq!(
        env.remote().await["definedSettings"]["hostName"],
        "ldap.acme.example"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_manifest_works_as_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest = std::fs::read_to_string(format!("{root}/examples/ldap-settings.yaml")).unwrap();
    let seed: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/examples/sim-seed/vcd.json")).unwrap(),
    )
    .unwrap();
    let cluster = ensure_cluster();
    // The CRDs before the first apply: on a fresh cluster, no operator has installed them yet.
    support::operator::install_crds(cluster);
    let ns = TestNamespace::new(cluster, "ldaps-example");
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
    let obj = wait_condition(
        cluster,
        &ns,
        "ldapsettings/acme-ldap",
        "Ready",
        "True",
        None,
        READY,
    )
    .await;
    assert_eq!(obj["status"]["externalId"], "acme");
    let state = sim.state().await;
    let acme = state["vcd"]["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "acme")
        .unwrap()
        .clone();
    assert_eq!(acme["ldap"]["enabled"], true);
    assert_eq!(
        acme["ldap"]["definedSettings"]["hostName"],
        "ldap.acme.example"
    );
}

/// #13's write-loop guard end to end: VCD silently ignores `definedSettings.hostName` on write
/// (the simulator's `ignoreFields` fault), so every PUT leaves the drift in place. The operator
/// stops after a few writes with `WriteNotConverging` naming the field, an Event and the
/// `write_loops_total` metric, writes nothing more over several drift checks, and resumes once
/// the spec changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_the_api_ignores_stops_writing_with_write_not_converging() {
    let mut env = Env::new("ldaps-write-loop", existing()).await;
    env.sim
        .faults(json!({"api": "vcd", "ignoreFields": ["definedSettings.hostName"]}))
        .await;
    env.apply(&secret("ldap-bind", "bind-one"));
    env.apply(&ldap_settings("acme", json!({})));
    env.start_operator();

    let obj = env
        .condition("ldapsettings/acme", "False", "WriteNotConverging")
        .await;
    let (_, _, message) = condition(&obj, "Ready").expect("Ready");
    assert!(
        message.contains("spec.definedSettings.hostName"),
        "{message}"
    );
    let stopped_at = env.writes().await;
    assert!(
        (2..=4).contains(&stopped_at),
        "{stopped_at} writes before stopping"
    );
    support::operator::wait_event(&env.ns, "acme", "WriteNotConverging", "hostName").await;
    let metrics = env.op.as_ref().unwrap().metrics().await;
    assert!(
        metrics.contains("identity_operator_write_loops_total{kind=\"LdapSettings\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        env.remote().await["definedSettings"]["hostName"],
        "old-ldap.acme.example"
    );

    // No storm: several 2 s drift checks later, still no new write.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(env.writes().await, stopped_at, "writes after stopping");

    // A spec change is a new attempt: with the fault gone, it converges.
    env.sim.clear_faults().await;
    env.apply(&ldap_settings(
        "acme",
        json!({"definedSettings": defined("ldap2.acme.example")}),
    ));
    let obj = wait_for(READY, "Ready for the new generation", || async {
        let obj = env.get("ldapsettings/acme")?;
        let ready = condition(&obj, "Ready")?;
        let current = obj["status"]["observedGeneration"] == obj["metadata"]["generation"];
        (ready.0 == "True" && current).then_some(obj)
    })
    .await;
    assert_eq!(obj["status"]["externalId"], ORG);
    assert_eq!(
        env.remote().await["definedSettings"]["hostName"],
        "ldap2.acme.example"
    );
}
