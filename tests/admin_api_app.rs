//! End to end: AdminApiApp against the simulated Entrust administration API, on a real
//! Kubernetes API server, with the operator binary driven the way a user drives it (kubectl).
//!
//! What every kind promises (Observe never writes, no write in steady state, a rejected spec
//! is terminal until it changes, rate limits, crash-safe create) is tested over all kinds at
//! once in `tests/reconcile_contract.rs`; this suite keeps what is particular to this vendor.

mod support;

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use support::env::{Env, READY, apply_example, external_id};
use support::kinds::admin_api_app::{admin_app, apps, env, identity_api};
use support::operator::{condition, wait_for};

/// What a target Secret holds.
struct Held {
    application_id: String,
    shared_secret: String,
    obj: Value,
}

/// What these tests read and change at Entrust, and in the Secrets the operator writes.
trait Entrust {
    async fn apps(&self) -> Vec<Value>;
    async fn app(&self, id: &str) -> Option<Value>;
    fn secret(&self, name: &str) -> Option<Held>;
    async fn log_entries(&self, method: &str, path_part: &str) -> Vec<Value>;
    async fn regenerations(&self) -> usize;
    async fn token(&self, application_id: &str, shared_secret: &str) -> Option<String>;
    async fn edit_remote(&self, id: &str, changes: Value);
}

impl Entrust for Env {
    async fn apps(&self) -> Vec<Value> {
        apps(&self.sim).await
    }

    /// The application as the simulator holds it (with its shared secret).
    async fn app(&self, id: &str) -> Option<Value> {
        self.apps().await.into_iter().find(|a| a["id"] == id)
    }

    fn secret(&self, name: &str) -> Option<Held> {
        let obj = self.get(&format!("secret/{name}"))?;
        let text = |key: &str| {
            let b64 = obj["data"][key].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            String::from_utf8(bytes).unwrap()
        };
        Some(Held {
            application_id: text("applicationId"),
            shared_secret: text("sharedSecret"),
            obj,
        })
    }

    async fn log_entries(&self, method: &str, path_part: &str) -> Vec<Value> {
        self.sim.log().await["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["api"] == "entrust" && e["method"] == method)
            .filter(|e| e["path"].as_str().unwrap_or_default().contains(path_part))
            .cloned()
            .collect()
    }

    async fn regenerations(&self) -> usize {
        self.log_entries("PUT", "/regenerate/").await.len()
    }

    async fn token(&self, application_id: &str, shared_secret: &str) -> Option<String> {
        self.sim.entrust_token(application_id, shared_secret).await
    }

    /// Changes an application behind the operator's back, through the vendor API itself.
    async fn edit_remote(&self, id: &str, changes: Value) {
        let opts = &self.sim.options;
        let token = self
            .token(&opts.client_id, &opts.client_secret)
            .await
            .unwrap();
        let mut body = json!({"name": self.app(id).await.unwrap()["name"]});
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        let resp = reqwest::Client::new()
            .put(format!(
                "{}/api/web/v1/applications/adminapi/{id}",
                self.sim.url("entrust")
            ))
            .header("Authorization", token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "remote edit: {}", resp.status());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_edit_drift_and_delete() {
    let mut env = env("adminapp-lifecycle").await;
    env.apply(&admin_app(
        "ci",
        json!({"description": "CI pipeline", "allowLongLivedToken": true, "ipListId": "ips-1"}),
    ));
    env.start_operator();

    // Created, and the remote object matches the spec field by field.
    let obj = env.ready("adminapiapp/ci").await;
    let id = external_id(&obj);
    assert_eq!(obj["status"]["created"], true);
    assert_eq!(obj["status"]["remote"]["name"], "ci");
    let remote = env.app(&id).await.expect("remote application");
    for (field, want) in [
        ("name", json!("ci")),
        ("description", json!("CI pipeline")),
        ("allowLongLivedToken", json!(true)),
        ("ipListId", json!("ips-1")),
        ("roleId", json!("role-admin")),
    ] {
        assert_eq!(remote[field], want, "remote field {field}");
    }
    let post = env.log_entries("POST", "/applications/adminapi").await;
    assert_eq!(
        post[0]["body"],
        json!({"name": "ci", "description": "CI pipeline", "allowLongLivedToken": true,
               "ipListId": "ips-1", "roleId": "role-admin"})
    );

    // The generated secret is in the target Secret, which the AdminApiApp controls.
    let held = env.secret("ci-credentials").expect("target Secret");
    assert_eq!(held.application_id, id);
    assert_eq!(held.shared_secret, remote["sharedSecret"].as_str().unwrap());
    let owner = &held.obj["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "AdminApiApp");
    assert_eq!(owner["uid"], obj["metadata"]["uid"]);
    assert_eq!(owner["controller"], true);
    assert!(env.token(&id, &held.shared_secret).await.is_some());
    assert_eq!(env.regenerations().await, 0, "create hands the secret out");

    // A spec edit is a PUT with the name and without the create-only template.
    env.patch("adminapiapp/ci", json!({"description": "CI pipeline v2"}));
    wait_for(READY, "spec edit reaches the API", || async {
        (env.app(&id).await?["description"] == "CI pipeline v2").then_some(())
    })
    .await;
    let puts = env.log_entries("PUT", &id).await;
    assert_eq!(
        puts[0]["body"],
        json!({"name": "ci", "description": "CI pipeline v2", "allowLongLivedToken": true,
               "ipListId": "ips-1", "roleId": "role-admin", "spRoleId": ""})
    );

    // Someone edits it behind the operator's back: repaired at the next resync.
    env.edit_remote(
        &id,
        json!({"description": "rogue", "allowLongLivedToken": false}),
    )
    .await;
    wait_for(READY, "drift repaired", || async {
        let a = env.app(&id).await?;
        (a["description"] == "CI pipeline v2" && a["allowLongLivedToken"] == true).then_some(())
    })
    .await;
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("identity_operator_drift_detected_total{kind=\"AdminApiApp\"}"),
        "{metrics}"
    );
    assert_eq!(
        env.regenerations().await,
        0,
        "repairs never rotate the secret"
    );
    env.assert_never_shown("adminapiapps", &[&held.shared_secret]);

    // Deleting the resource deletes what the operator created, and the garbage collector
    // deletes the Secret it owned.
    env.ns
        .kubectl_ok(&["delete", "adminapiapp/ci", "--wait=true", "--timeout=60s"]);
    assert!(env.app(&id).await.is_none(), "remote application deleted");
    wait_for(READY, "the owned Secret is garbage-collected", || async {
        env.secret("ci-credentials").is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_secret_is_recreated_and_rotated_once() {
    let mut env = env("adminapp-secret").await;
    env.apply(&admin_app(
        "deploy",
        json!({"rotateSharedSecret": "initial"}),
    ));
    env.start_operator();
    let obj = env.ready("adminapiapp/deploy").await;
    let id = external_id(&obj);
    let first = env.secret("deploy-credentials").unwrap().shared_secret;
    assert_eq!(obj["status"]["remote"]["sharedSecretRotation"], "initial");
    assert_eq!(
        env.regenerations().await,
        0,
        "a new application needs no rotation"
    );

    // Someone deletes the Secret: Entrust never shows the secret again, so a new one is made.
    env.ns.kubectl_ok(&["delete", "secret/deploy-credentials"]);
    let second = wait_for(READY, "the Secret is re-created", || async {
        env.secret("deploy-credentials").map(|h| h.shared_secret)
    })
    .await;
    assert_ne!(first, second);
    assert_eq!(env.regenerations().await, 1);
    assert!(env.token(&id, &second).await.is_some());
    assert!(
        env.token(&id, &first).await.is_none(),
        "the old secret is dead"
    );
    let events = env.events();
    assert!(events.contains("the Secret was missing"), "{events}");

    // A new rotateSharedSecret token: one regeneration, the Secret updated.
    env.patch(
        "adminapiapp/deploy",
        json!({"rotateSharedSecret": "2026-11"}),
    );
    let third = wait_for(READY, "the secret is rotated", || async {
        let held = env.secret("deploy-credentials")?;
        (held.shared_secret != second).then_some(held)
    })
    .await;
    assert_eq!(
        third.obj["metadata"]["annotations"]["identity.operator.dev/rotate-shared-secret"],
        "2026-11"
    );
    assert_eq!(third.application_id, id);
    assert!(env.token(&id, &third.shared_secret).await.is_some());
    let obj = env.ready("adminapiapp/deploy").await;
    assert_eq!(obj["status"]["remote"]["sharedSecretRotation"], "2026-11");

    // Once per token: three resyncs later nothing more was regenerated or written.
    let writes = env.writes().await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(env.regenerations().await, 2);
    assert_eq!(env.writes().await, writes);
    assert_eq!(
        env.secret("deploy-credentials").unwrap().shared_secret,
        third.shared_secret
    );
    env.assert_never_shown("adminapiapps", &[&first, &second, &third.shared_secret]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_reaches_an_identity_api_that_uses_it() {
    let mut env = env("adminapp-creds").await;
    env.apply(&admin_app("ops", json!({})));
    env.start_operator();
    let id = external_id(&env.ready("adminapiapp/ops").await);

    // A second IdentityApi authenticates as the application the operator just made, with the
    // Secret it wrote; an AdminApiApp is managed through it.
    env.apply(&identity_api(
        "entrust-ops",
        &env.sim,
        &id,
        "ops-credentials",
    ));
    env.ready("identityapi/entrust-ops").await;
    let mut child = admin_app("child", json!({"description": "one"}));
    child["spec"]["apiRef"]["name"] = json!("entrust-ops");
    env.apply(&child);
    let child_id = external_id(&env.ready("adminapiapp/child").await);

    // Rotating the credential: the IdentityApi picks the new Secret up, and once every token is
    // gone, the next change still goes through with the new secret.
    let before = env.secret("ops-credentials").unwrap().shared_secret;
    env.patch("adminapiapp/ops", json!({"rotateSharedSecret": "r1"}));
    wait_for(READY, "the secret is rotated", || async {
        (env.secret("ops-credentials")?.shared_secret != before).then_some(())
    })
    .await;
    env.sim.expire_tokens(Some("entrust")).await;
    env.patch("adminapiapp/child", json!({"description": "two"}));
    wait_for(READY, "an edit through the rotated credential", || async {
        (env.app(&child_id).await?["description"] == "two").then_some(())
    })
    .await;
    env.ready("adminapiapp/child").await;
    env.ready("identityapi/entrust-ops").await;
    let after = env.secret("ops-credentials").unwrap().shared_secret;
    env.assert_never_shown("adminapiapps", &[&before, &after]);
}

#[tokio::test(flavor = "multi_thread")]
async fn adoption_and_deletion_policies() {
    let mut env = env("adminapp-adopt").await;
    env.sim
        .seed(json!({"entrust": {"applications": [
            {"id": "5b0c6f0e-0000-4000-8000-0000000000a1", "name": "known", "roleId": "role-admin",
             "sharedSecret": "known-secret-value"},
            {"id": "5b0c6f0e-0000-4000-8000-0000000000b2", "name": "unknown", "roleId": "role-admin"},
        ]}}))
        .await;
    // The user already holds the secret of "known": the operator takes the Secret over.
    env.apply(&json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "known-credentials"},
        "stringData": {"applicationId": "5b0c6f0e-0000-4000-8000-0000000000a1",
                       "sharedSecret": "known-secret-value"},
    }));
    // A Secret made for something else is never overwritten.
    env.apply(&json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "taken-credentials"},
        "stringData": {"password": "unrelated"},
    }));
    env.apply(&admin_app("known", json!({})));
    env.apply(&admin_app(
        "unknown",
        json!({"applicationId": "5b0c6f0e-0000-4000-8000-0000000000b2", "description": "adopted"}),
    ));
    env.apply(&admin_app("kept", json!({"deletionPolicy": "Orphan"})));
    env.apply(&admin_app("taken", json!({})));
    env.start_operator();

    let known = env.ready("adminapiapp/known").await;
    assert_eq!(known["status"]["created"], false, "adopted by name");
    let held = env.secret("known-credentials").unwrap();
    assert_eq!(held.shared_secret, "known-secret-value", "not rotated");
    assert_eq!(
        held.obj["metadata"]["ownerReferences"][0]["uid"],
        known["metadata"]["uid"]
    );
    // Adopted by id without a known secret: a new one is the only way to hand it out.
    let unknown = env.ready("adminapiapp/unknown").await;
    assert_eq!(unknown["status"]["created"], false);
    let held = env.secret("unknown-credentials").unwrap();
    assert!(
        env.token("5b0c6f0e-0000-4000-8000-0000000000b2", &held.shared_secret)
            .await
            .is_some()
    );
    assert_eq!(env.regenerations().await, 1);
    let kept = external_id(&env.ready("adminapiapp/kept").await);

    let taken = env
        .condition("adminapiapp/taken", "False", "Conflict")
        .await;
    let (_, _, message) = condition(&taken, "Ready").unwrap();
    assert!(message.contains("taken-credentials"), "{message}");
    assert_eq!(
        env.secret("taken-credentials").unwrap().obj["data"]["password"],
        base64::engine::general_purpose::STANDARD.encode("unrelated")
    );
    let names: Vec<Value> = env.apps().await.iter().map(|a| a["name"].clone()).collect();
    assert_eq!(names.len(), 4, "no duplicate: {names:?}");

    env.ns.kubectl_ok(&[
        "delete",
        "adminapiapp/known",
        "adminapiapp/unknown",
        "adminapiapp/kept",
        "--timeout=60s",
    ]);
    for id in [
        "5b0c6f0e-0000-4000-8000-0000000000a1",
        "5b0c6f0e-0000-4000-8000-0000000000b2",
        kept.as_str(),
    ] {
        assert!(env.app(id).await.is_some(), "{id} left in place");
    }
    assert!(env.events().contains("left in place"));
}

#[tokio::test(flavor = "multi_thread")]
async fn logo_from_a_config_map() {
    let mut env = env("adminapp-logo").await;
    let mut app = admin_app("branded", json!({}));
    app["spec"]["logoFrom"] = json!({"name": "branding", "key": "logo.png"});
    env.apply(&app);
    env.start_operator();
    env.condition("adminapiapp/branded", "False", "ConfigMapNotFound")
        .await;
    assert_eq!(env.writes().await, 0);

    // Raw bytes under binaryData are encoded; the ConfigMap is found on a retry.
    let png = [0x89u8, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0xff];
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    env.apply(&json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "branding"},
        "binaryData": {"logo.png": b64(&png)},
    }));
    let id = external_id(&env.ready("adminapiapp/branded").await);
    assert_eq!(env.app(&id).await.unwrap()["logo"], b64(&png));

    // A new logo as wrapped base64 text under data: picked up at the next drift check.
    let text = format!(
        "{}\n{}\n",
        &b64(b"new-logo-bytes")[..8],
        &b64(b"new-logo-bytes")[8..]
    );
    env.apply(&json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "branding"},
        "data": {"logo.png": text},
    }));
    wait_for(READY, "the new logo reaches the API", || async {
        (env.app(&id).await?["logo"] == b64(b"new-logo-bytes")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn example_applies_as_is() {
    let (env, _) = apply_example(
        "adminapp-example",
        "entrust.json",
        "admin-api-app.yaml",
        "adminapiapp/ci-pipeline",
    )
    .await;
    assert!(
        env.get("secret/ci-pipeline-credentials").is_some(),
        "the target Secret is written"
    );
}
