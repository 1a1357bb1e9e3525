//! End to end: the reconcile contract every managed kind keeps, one test per promise, each run
//! over a table of all five kinds at once (one namespace, one simulator, one operator):
//! Observe never writes, steady state makes no writes, a rejected spec is terminal until it
//! changes, rate limits are waited out, and a crash during creation never duplicates. The
//! per-kind suites (`tests/identity_backend.rs` …) keep what is particular to one vendor.
//! (`tests/contract.rs` is another matter: the requests pinned to the vendors' documents.)

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::env::{Env, READY, external_id};
use support::kinds::{
    admin_api_app, authentication_settings, identity_backend, ldap_settings, org_connection,
};
use support::operator::wait_for;

/// The simulator APIs of the five kinds.
const APIS: [&str; 5] = ["boruta", "auth0", "vcd", "entrust", "xelion"];
/// Every managed kind, as a kubectl resource list.
const KINDS: &str =
    "identitybackends,orgconnections,ldapsettings,adminapiapps,authenticationsettings";

/// A namespace and simulator with every kind's seed, Secret and IdentityApi; the VCD org holds
/// the fields of `vcd_org`.
async fn every_kind(prefix: &str, vcd_org: Value) -> Env {
    let mut seed = identity_backend::seed();
    for more in [
        org_connection::seed(),
        ldap_settings::seed(vcd_org),
        authentication_settings::seed(),
    ] {
        support::chart::merge(&mut seed, &more);
    }
    let docs = |sim: &support::sim::SimProcess| {
        let mut docs = identity_backend::connection(sim);
        docs.extend(org_connection::connection(sim));
        docs.extend(ldap_settings::connection(sim));
        docs.extend(admin_api_app::connection(sim));
        docs.extend(authentication_settings::connection(sim));
        docs
    };
    Env::new(prefix, "", identity_backend::options(), seed, docs).await
}

/// One kind's row of a contract table: the resource `what` (`kind/name`) at simulator `api`.
struct Row {
    what: String,
    api: &'static str,
}

impl Row {
    fn new(what: impl Into<String>, api: &'static str) -> Row {
        Row {
            what: what.into(),
            api,
        }
    }

    fn kind(&self) -> &str {
        self.what.split('/').next().unwrap()
    }
}

const LEGACY_APP: &str = "5b0c6f0e-0000-4000-8000-00000000000a";
const OBSERVED_BACKEND: &str = "0d4b7c1e-1111-4222-8333-444455556666";

#[tokio::test(flavor = "multi_thread")]
async fn observe_reports_drift_and_never_writes() {
    let mut env = every_kind("contract-observe", ldap_settings::existing()).await;
    // Remote objects that differ from the specs below.
    env.sim
        .seed(json!({
            "boruta": {"backends": [{"id": OBSERVED_BACKEND, "name": "Observed",
                "password_hashing_alg": "bcrypt", "smtp_port": 25}]},
            "auth0": {"organizationConnections": [{"organization_id": "org_acme",
                "connection_id": "con_db", "is_signup_enabled": false}]},
            "entrust": {"applications": [{"id": LEGACY_APP, "name": "legacy",
                "roleId": "role-admin", "description": "old"}]},
        }))
        .await;
    env.apply(&ldap_settings::password("ldap-bind", "never-sent"));
    let observe = json!({"managementPolicy": "Observe"});
    let table: [(Row, Value, &[&str]); 5] = [
        (
            Row::new("identitybackend/observed", "boruta"),
            identity_backend::backend(
                "Observed",
                json!({"managementPolicy": "Observe", "backendId": OBSERVED_BACKEND,
                       "smtpPort": 587}),
            ),
            &["spec.passwordHashingAlg", "spec.smtpPort"],
        ),
        (
            Row::new("orgconnection/acme-db", "auth0"),
            org_connection::org_connection(
                "acme-db",
                "org_acme",
                "con_db",
                json!({"managementPolicy": "Observe", "isSignupEnabled": true,
                       "showAsButton": true, "organizationAccessLevel": "none"}),
            ),
            &["spec.isSignupEnabled"],
        ),
        (
            Row::new("ldapsettings/observed", "vcd"),
            ldap_settings::ldap_settings(
                "observed",
                json!({"managementPolicy": "Observe", "disableOnDelete": true}),
            ),
            &[
                "spec.definedSettings.groupAttributes",
                "spec.definedSettings.groupSearchBase",
                "spec.definedSettings.hostName",
                "spec.definedSettings.pageSize",
                "spec.definedSettings.port",
                "spec.definedSettings.ssl",
                "spec.definedSettings.userAttributes",
                "spec.definedSettings.userName",
            ],
        ),
        (
            Row::new("adminapiapp/legacy", "entrust"),
            admin_api_app::admin_app(
                "legacy",
                json!({"managementPolicy": "Observe", "applicationId": LEGACY_APP,
                       "description": "new"}),
            ),
            &["spec.description"],
        ),
        (
            Row::new("authenticationsettings/observed", "xelion"),
            authentication_settings::settings("observed", observe),
            &[
                "spec.securityDomain",
                "spec.minimumPasswordLength",
                "spec.openIdConnections[1002]",
                "spec.openIdConnections[1001].liveSyncOn",
                "spec.openIdConnections[1003]",
            ],
        ),
    ];
    for (_, resource, _) in &table {
        env.apply(resource);
    }
    env.start_operator();

    for (row, _, drift) in &table {
        let kind = row.kind();
        let obj = env.condition(&row.what, "False", "Drifted").await;
        let reported: Vec<String> = serde_json::from_value(obj["status"]["drift"].clone())
            .unwrap_or_else(|e| panic!("{kind}: drift {e}"));
        let mut sorted = reported.clone();
        sorted.sort();
        let mut want: Vec<String> = drift.iter().map(|d| d.to_string()).collect();
        want.sort();
        assert_eq!(sorted, want, "{kind}: the drift reported");
        // Nor LDAP's bind password, which VCD never shows (the exact list says so too).
        assert!(
            reported.iter().all(|d| !d.ends_with(".password")),
            "{kind}: {reported:?}"
        );
        assert!(
            obj["metadata"]["finalizers"].is_null(),
            "{kind}: Observe holds no finalizer"
        );
    }
    let drift = env.get("authenticationsettings/observed").unwrap()["status"]["drift"].clone();
    assert_eq!(
        drift,
        json!(table[4].2),
        "Xelion's drift in the order of its operations"
    );
    let conn = env.get("orgconnection/acme-db").unwrap();
    assert_eq!(conn["status"]["remote"]["strategy"], "auth0");

    tokio::time::sleep(Duration::from_secs(5)).await;
    for (row, _, _) in &table {
        assert_eq!(
            env.writes_to(row.api).await,
            0,
            "{}: Observe never writes",
            row.kind()
        );
    }
    assert!(
        env.get("secret/legacy-credentials").is_none(),
        "nor regenerates a shared secret to write"
    );

    // Once the remote matches, Observe reports Ready, still without writing.
    org_connection::edit_remote(
        &env.sim,
        "org_acme",
        "con_db",
        json!({"is_signup_enabled": true}),
    )
    .await;
    env.ready("orgconnection/acme-db").await;
    assert_eq!(env.writes_to("auth0").await, 1, "only the test's own edit");

    let names: Vec<&str> = table.iter().map(|(row, _, _)| row.what.as_str()).collect();
    env.delete(&names, "30s");
    for (row, _, _) in &table {
        let own_edit = usize::from(row.api == "auth0");
        assert_eq!(
            env.writes_to(row.api).await,
            own_edit,
            "{}: Observe never deletes or disables",
            row.kind()
        );
    }
    let remote_backends = identity_backend::backends(&env.sim).await;
    assert!(remote_backends.iter().any(|b| b["id"] == OBSERVED_BACKEND));
    let apps = admin_api_app::apps(&env.sim).await;
    assert!(apps.iter().any(|a| a["id"] == LEGACY_APP));
    let enabled = org_connection::enabled(&env.sim).await;
    assert!(enabled.iter().any(|c| c["connection_id"] == "con_db"));
    assert_eq!(
        ldap_settings::remote(&env.sim).await["definedSettings"]["password"],
        "old-password"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn steady_state_makes_no_writes() {
    let mut env = every_kind("contract-steady", ldap_settings::existing()).await;
    let mut table: Vec<(Row, Value)> = vec![];
    for i in 0..10 {
        let what = format!("identitybackend/steady-{i}");
        let spec = json!({"smtpPort": 2500 + i});
        let backend = identity_backend::backend(&format!("Steady {i}"), spec);
        table.push((Row::new(what, "boruta"), backend));
    }
    for (i, conn) in ["con_saml", "con_db", "con_google", "con_github"]
        .iter()
        .enumerate()
    {
        let what = format!("orgconnection/steady-{i}");
        let spec = json!({"organizationConnectionName": format!("conn-{i}"),
            "organizationAccessLevel": if i == 0 { "none" } else { "limited" },
            "isEnabled": true, "showAsButton": i % 2 == 0});
        let conn = org_connection::org_connection(&format!("steady-{i}"), "org_acme", conn, spec);
        table.push((Row::new(what, "auth0"), conn));
    }
    for i in 0..5 {
        let what = format!("adminapiapp/steady-{i}");
        let spec = json!({"description": format!("app {i}"), "rotateSharedSecret": "v1"});
        let app = admin_api_app::admin_app(&format!("steady-{i}"), spec);
        table.push((Row::new(what, "entrust"), app));
    }
    let ldap = ldap_settings::ldap_settings("acme", json!({}));
    table.push((Row::new("ldapsettings/acme", "vcd"), ldap));
    let settings = authentication_settings::settings("master", json!({}));
    table.push((
        Row::new("authenticationsettings/master", "xelion"),
        settings,
    ));
    env.apply(&ldap_settings::password("ldap-bind", "bind-one"));
    for (_, resource) in &table {
        env.apply(resource);
    }
    env.start_operator();
    for (row, _) in &table {
        env.ready(&row.what).await;
    }
    // Auth0 takes a null access level and answers "none": nothing to repair for a spec that
    // says none.
    org_connection::edit_remote(
        &env.sim,
        "org_acme",
        "con_saml",
        json!({"organization_access_level": null}),
    )
    .await;

    let mut writes = vec![];
    for api in APIS {
        writes.push(env.writes_to(api).await);
    }
    let versions = || {
        let managed = ["-l", "app.kubernetes.io/managed-by=identity-operator"];
        (env.versions(KINDS, &[]), env.versions("secrets", &managed))
    };
    let before = versions();
    // Three resync intervals (2 s each): reads only, and no status or Secret write.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for (api, before) in APIS.iter().zip(&writes) {
        assert_eq!(
            env.writes_to(api).await,
            *before,
            "{api}: no identity-API write in steady state"
        );
    }
    let after = versions();
    assert_eq!(before.0, after.0, "no status write in steady state");
    assert_eq!(before.1, after.1, "no Secret write in steady state");
    // One create each for the kinds that create; one PUT of the adopted LDAP settings; the
    // two PATCHes of Xelion (link 1003, then set its field); and the test's own Auth0 edit.
    assert_eq!(writes, [10, 4 + 1, 1, 5, 2], "writes by API: {APIS:?}");
    // The reconcile requeued by each Secret write never mistook a created app for an adopted one.
    for i in 0..5 {
        let obj = env.get(&format!("adminapiapp/steady-{i}")).unwrap();
        assert_eq!(obj["status"]["created"], true, "steady-{i}");
    }
}

/// A spec the identity API refuses, and what makes it acceptable.
struct Rejected {
    row: Row,
    /// Applied first: the resource and what it reads.
    apply: Vec<Value>,
    /// In the `Synced` condition's message.
    message: &'static [&'static str],
    /// In exactly one Event: one for the failure, not one per resync.
    event: &'static str,
    /// Applied once the rejection is settled: a new spec (or a new input it reads).
    fix: Value,
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_spec_is_terminal_until_it_changes() {
    let mut org = ldap_settings::existing();
    org["importedUsersOrGroups"] = json!(true);
    let mut env = every_kind("contract-rejected", org).await;
    // An AdminApiApp's logo in the spec is checked at admission (format: byte); one read from a
    // ConfigMap reaches Entrust, which refuses it.
    let logo = |text: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "badlogo"},
               "data": {"logo": text}})
    };
    let bad_roles = json!({"roles": [{"id": "00000000-dead-4bad-8bad-000000000000"}]});
    let conn = |name: &str| {
        let spec = json!({"organizationConnectionName": name});
        org_connection::org_connection("bad-name", "org_acme", "con_saml", spec)
    };
    let table = [
        Rejected {
            row: Row::new("identitybackend/bad-roles", "boruta"),
            apply: vec![identity_backend::backend("Bad Roles", bad_roles)],
            message: &["422", "roles"],
            event: "does not exist",
            fix: identity_backend::backend("Bad Roles", json!({"roles": []})),
        },
        // A no-break space passes the CRD's `^\S+$` (RE2 knows only ASCII spaces) but not
        // Auth0's pattern: the vendor's own validation has the last word.
        Rejected {
            row: Row::new("orgconnection/bad-name", "auth0"),
            apply: vec![conn("corp\u{a0}sso")],
            message: &[
                "400",
                "Payload validation error",
                "organization_connection_name",
            ],
            event: "Payload validation error",
            fix: conn("corp-sso"),
        },
        // Disabling LDAP would strand the users imported from it.
        Rejected {
            row: Row::new("ldapsettings/acme", "vcd"),
            apply: vec![
                ldap_settings::password("ldap-bind", "bind-one"),
                ldap_settings::ldap_settings("acme", json!({"enabled": false})),
            ],
            message: &[
                "400",
                "Performing this change would strand imported users or groups.",
            ],
            event: "would strand imported users",
            fix: ldap_settings::ldap_settings("acme", json!({"enabled": true})),
        },
        Rejected {
            row: Row::new("adminapiapp/badlogo", "entrust"),
            apply: vec![
                logo("not base64!"),
                admin_api_app::admin_app(
                    "badlogo",
                    json!({"logoFrom": {"name": "badlogo", "key": "logo"}}),
                ),
            ],
            message: &["400", "logo must be base64-encoded"],
            event: "logo must be base64-encoded",
            // A new logo in the ConfigMap is tried at the next drift check.
            fix: logo("aGVsbG8="),
        },
        Rejected {
            row: Row::new("authenticationsettings/master", "xelion"),
            apply: vec![authentication_settings::settings(
                "master",
                json!({"openIdConnections": [{"oid": "1001"}, {"oid": "999", "liveSyncOn": true}]}),
            )],
            message: &["10006", "no OpenID connection with OID 999"],
            event: "no OpenID connection with OID 999",
            fix: authentication_settings::settings(
                "master",
                json!({"openIdConnections": [{"oid": "1001"}]}),
            ),
        },
    ];
    for case in &table {
        for doc in &case.apply {
            env.apply(doc);
        }
    }
    env.start_operator();
    for case in &table {
        let kind = case.row.kind();
        let obj = env.condition(&case.row.what, "False", "Rejected").await;
        let message = Env::message(&obj, "Synced");
        for fragment in case.message {
            assert!(message.contains(fragment), "{kind}: {message}");
        }
    }

    // Three resync intervals later each API has still seen a single attempt.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let events = env.events();
    for case in &table {
        let kind = case.row.kind();
        assert_eq!(
            env.writes_to(case.row.api).await,
            1,
            "{kind}: no retry storm"
        );
        assert_eq!(
            events.matches(case.event).count(),
            1,
            "{kind}: one Event for the failure, not one per resync"
        );
    }
    // The refused attempts changed nothing (a Xelion PATCH is atomic).
    let tenant = authentication_settings::tenant(&env.sim).await;
    assert_eq!(tenant["authentication"]["securityDomain"], "old");
    assert_eq!(ldap_settings::remote(&env.sim).await["enabled"], true);

    for case in &table {
        env.apply(&case.fix);
    }
    for case in &table {
        env.ready(&case.row.what).await;
    }
    let enabled = org_connection::enabled(&env.sim).await;
    let saml = enabled.iter().find(|c| c["connection_id"] == "con_saml");
    assert_eq!(saml.unwrap()["organization_connection_name"], "corp-sso");
    let settings = ldap_settings::remote(&env.sim).await;
    assert_eq!(settings["definedSettings"]["hostName"], "ldap.acme.example");
    let app = env.get("adminapiapp/badlogo").unwrap();
    let apps = admin_api_app::apps(&env.sim).await;
    let app = apps.iter().find(|a| a["id"] == external_id(&app));
    assert_eq!(app.unwrap()["logo"], "aGVsbG8=");
    let tenant = authentication_settings::tenant(&env.sim).await;
    assert_eq!(
        tenant["authentication"]["openIdConnections"],
        json!(["1001"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_calls_wait_and_converge() {
    let mut env = every_kind("contract-429", ldap_settings::existing()).await;
    // Auth0 tells its limit in headers instead: `tests/org_connection.rs` paces by them.
    let table = [
        (Row::new("identitybackend/limited-0", "boruta"), 4),
        (Row::new("ldapsettings/acme", "vcd"), 3),
        (Row::new("adminapiapp/limited-0", "entrust"), 4),
        (Row::new("authenticationsettings/master", "xelion"), 4),
    ];
    for (row, burst) in &table {
        env.sim
            .faults(json!({"api": row.api, "burst429": burst}))
            .await;
    }
    for i in 0..3 {
        env.apply(&identity_backend::backend(
            &format!("Limited {i}"),
            json!({}),
        ));
        env.apply(&admin_api_app::admin_app(
            &format!("limited-{i}"),
            json!({}),
        ));
    }
    env.apply(&ldap_settings::password("ldap-bind", "bind-one"));
    env.apply(&ldap_settings::ldap_settings("acme", json!({})));
    env.apply(&authentication_settings::settings("master", json!({})));
    env.start_operator();
    for i in 0..3 {
        env.ready(&format!("identitybackend/limited-{i}")).await;
        env.ready(&format!("adminapiapp/limited-{i}")).await;
        assert!(
            env.get(&format!("secret/limited-{i}-credentials"))
                .is_some()
        );
    }
    for (row, _) in &table {
        env.ready(&row.what).await;
    }
    let calls = env.sim.calls().await;
    let metrics = env.metrics().await;
    for (row, _) in &table {
        let api = row.api;
        assert!(calls[api].to_string().contains("\"429\""), "{api}: {calls}");
        let limited = format!("identity_operator_identity_api_rate_limited_total{{api=\"{api}\"}}");
        assert!(metrics.contains(&limited), "{api}: {metrics}");
    }

    // Nothing done twice.
    let backends = identity_backend::backends(&env.sim).await;
    assert_eq!(backends.len(), 4, "default + 3, no duplicate");
    assert_eq!(admin_api_app::apps(&env.sim).await.len(), 3, "no duplicate");
    let settings = ldap_settings::remote(&env.sim).await;
    assert_eq!(settings["definedSettings"]["hostName"], "ldap.acme.example");
    // Xelion: the PATCH that links 1003, then the one that sets its field; no duplicate add.
    let applied: Vec<Value> = env.sim.log_since("xelion", 0).await["entries"]
        .as_array()
        .into_iter()
        .flatten()
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
    let tenant = authentication_settings::tenant(&env.sim).await;
    assert_eq!(tenant["authentication"]["securityDomain"], "corp");
}

/// The kinds that create remote objects, killed (SIGKILL) while creating a batch of them: after
/// a restart every resource is Ready with one remote object of its own.
#[tokio::test(flavor = "multi_thread")]
async fn crash_during_creation_never_duplicates() {
    const BACKENDS: usize = 15;
    const APPS: usize = 12;
    let mut env = every_kind("contract-crash", ldap_settings::existing()).await;
    for api in ["boruta", "entrust"] {
        env.sim.faults(json!({"api": api, "latencyMs": 40})).await;
    }
    for i in 0..BACKENDS {
        env.apply(&identity_backend::backend(&format!("Crash {i}"), json!({})));
    }
    for i in 0..APPS {
        env.apply(&admin_api_app::admin_app(&format!("crash-{i}"), json!({})));
    }
    env.start_operator();
    wait_for(READY, "first creations", || async {
        let backends = identity_backend::backends(&env.sim).await.len();
        let apps = admin_api_app::apps(&env.sim).await.len();
        (backends >= 3 && apps >= 3).then_some(())
    })
    .await;
    env.crash_and_restart_operator();
    for i in 0..BACKENDS {
        env.ready(&format!("identitybackend/crash-{i}")).await;
    }
    for i in 0..APPS {
        let obj = env.ready(&format!("adminapiapp/crash-{i}")).await;
        // Whatever the crash lost, the Secret holds a shared secret that works.
        let secret = env.get(&format!("secret/crash-{i}-credentials")).unwrap();
        let held = |key: &str| {
            let b64 = secret["data"][key].as_str().unwrap_or_default();
            let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64);
            String::from_utf8(bytes.unwrap()).unwrap()
        };
        let id = held("applicationId");
        assert_eq!(id, external_id(&obj));
        let token = env.sim.entrust_token(&id, &held("sharedSecret")).await;
        assert!(token.is_some(), "crash-{i}: the held secret works");
    }

    let backends = identity_backend::backends(&env.sim).await;
    let mut names: Vec<&str> = backends.iter().filter_map(|b| b["name"].as_str()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate backend names: {names:?}");
    assert_eq!(names.len(), BACKENDS + 1, "default + {BACKENDS}");
    let apps = admin_api_app::apps(&env.sim).await;
    assert_eq!(apps.len(), APPS, "one application per resource");
}
