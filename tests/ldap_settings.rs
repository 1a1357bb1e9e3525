//! End to end: LdapSettings against the simulated VCD cloudapi, on a real Kubernetes API server,
//! with the operator binary driven the way a user drives it (kubectl).
//!
//! What every kind promises (Observe never writes, no write in steady state, a rejected spec
//! is terminal until it changes, rate limits, crash-safe create) is tested over all kinds at
//! once in `tests/reconcile_contract.rs`; this suite keeps what is particular to this vendor.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::env::{Env, READY, apply_example};
use support::kinds::ldap_settings::{
    ORG, defined, env, existing, ldap_settings, password as secret, remote,
};
use support::operator::{condition, wait_for};
use support::sim::answer;

const MEDIA_TYPE: &str = "application/json;version=9.1.0";

/// What these tests read and change at VCD.
trait Vcd {
    async fn remote(&self) -> Value;
    async fn puts_since(&self, since: u64) -> Vec<Value>;
    async fn edit_remote(&self, changes: impl FnOnce(&mut Value));
}

impl Vcd for Env {
    /// The org's settings as the simulator stores them, password included.
    async fn remote(&self) -> Value {
        remote(&self.sim).await
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
        let mut settings: Value = answer(
            http.get(&url)
                .bearer_auth(&token)
                .header("Accept", MEDIA_TYPE),
        )
        .await;
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
}

/// Whether a PUT carried the bind password. The simulator's log shows it as `[redacted]`; the
/// value itself is compared in the simulator's state, never printed.
fn password_sent(put: &Value) -> bool {
    put["definedSettings"]
        .get("password")
        .is_some_and(|p| p == "[redacted]")
}

#[tokio::test(flavor = "multi_thread")]
async fn adopt_edit_drift_and_rotation() {
    let mut env = env("ldaps-lifecycle", existing()).await;
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

    // A spec edit is sent without the password: VCD keeps the stored one.
    let seq = env.last_seq().await;
    env.patch(
        "ldapsettings/acme",
        json!({"definedSettings":{"hostName":"ldap2.acme.example"}}),
    );
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
    let metrics = env.metrics().await;
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
async fn a_second_ldap_settings_is_a_conflict_until_the_first_is_deleted() {
    let mut env = env("ldaps-singleton", existing()).await;
    env.apply(&secret("ldap-bind", "bind-one"));
    env.apply(&ldap_settings("first", json!({})));
    // A long resync: the hand-over below must come from the deletion itself.
    env.start_operator_with(&["--resync-interval", "10m"]);
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
    support::operator::wait_condition(
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
    let mut env = env("ldaps-disable", existing()).await;
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
async fn the_example_manifest_works_as_is() {
    let (env, obj) = apply_example(
        "ldaps-example",
        "vcd.json",
        "ldap-settings.yaml",
        "ldapsettings/acme-ldap",
    )
    .await;
    assert_eq!(obj["status"]["externalId"], "acme");
    let ldap = remote(&env.sim).await;
    assert_eq!(ldap["enabled"], true);
    assert_eq!(ldap["definedSettings"]["hostName"], "ldap.acme.example");
}

/// #13's write-loop guard end to end: VCD silently ignores `definedSettings.hostName` on write
/// (the simulator's `ignoreFields` fault), so every PUT leaves the drift in place. The operator
/// stops after a few writes with `WriteNotConverging` naming the field, an Event and the
/// `write_loops_total` metric, writes nothing more over several drift checks, and resumes once
/// the spec changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_the_api_ignores_stops_writing_with_write_not_converging() {
    let mut env = env("ldaps-write-loop", existing()).await;
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
    let metrics = env.metrics().await;
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
