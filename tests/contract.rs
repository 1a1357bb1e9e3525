//! Contract tests: what the operator sends, pinned to the vendors' own documents
//! (`/work/shared/vendor-docs/`). Per kind, a table of (remote state, spec before, spec after) and
//! the exact requests (method, path, body) the change makes the operator send, among them the
//! example payloads the documents print: Xelion's four PATCH examples, Auth0's PATCH body, the
//! VCD PUT body, the Entrust PUT body and Boruta's PUT wrapper.
//!
//! The real operator binary runs against a real API server and the simulator over HTTP; the
//! requests are read back from the simulator's log (`/_sim/log`), which shows every secret as
//! `[redacted]`: a case that must send a password sees that it did, and compares the value the
//! vendor stored through `/_sim/state`, without printing it.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace};
use support::operator::{Operator, apply, condition, get_json, wait_condition, writes};
use support::sim::{AUTH0_AUDIENCE, SimProcess};

const READY: Duration = Duration::from_secs(45);
const GROUP_VERSION: &str = "identity.operator.dev/v1alpha1";
const ROLE_ADMIN: &str = "0a000000-0000-4000-8000-00000000000a";
const ROLE_VIEWER: &str = "0b000000-0000-4000-8000-00000000000b";
const LDAP: &str = "Elixir.BorutaIdentity.Accounts.Ldap";
/// The value of every Secret the cases use; the simulator accepts it as a credential too.
const REDACTED: &str = "[redacted]";
const BIND_PASSWORD: &str = "contract-bind-password";
const IDP_SECRET: &str = "contract-idp-secret";

/// A spec change and the requests it must make, in order.
struct Case {
    name: &'static str,
    /// The simulator's name of the API (`/_sim/log?api=`).
    api: &'static str,
    /// Added to the simulator before anything is applied.
    seed: Value,
    /// Applied and converged before the requests are counted (`None`: the case is the first
    /// apply).
    before: Option<Value>,
    after: Value,
    /// `(method, path, body)`; `{id}` in a path is the resource's `status.externalId`.
    expect: Vec<(&'static str, String, Value)>,
    /// Fields taken out of the spec that the API cannot clear: the `FieldsKept` condition names
    /// each (and is absent when there is none).
    kept: &'static [&'static str],
}

struct Env {
    cluster: &'static Cluster,
    ns: TestNamespace,
    sim: SimProcess,
    _op: Operator,
}

impl Env {
    /// A namespace with the credentials Secrets, one IdentityApi per API (VCD and Xelion get
    /// theirs per case: their settings are one per IdentityApi), and the operator (`resync`
    /// between drift checks).
    async fn new(prefix: &str, resync: &str) -> Env {
        let (cluster, ns) = support::env::namespace(prefix);
        let sim = SimProcess::start(support::kinds::identity_backend::options());
        sim.seed(json!({"boruta": {"roles": [
            {"id": ROLE_ADMIN, "name": "admin"}, {"id": ROLE_VIEWER, "name": "viewer"},
        ]}}))
        .await;
        let secret = |name: &str, data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data});
        let docs = [
            secret("credentials", json!({"secret": sim.options.client_secret})),
            secret("ldap-bind", json!({"password": BIND_PASSWORD})),
            secret("idp", json!({"google": IDP_SECRET})),
            identity_api(&sim, "boruta", json!({})),
            identity_api(&sim, "auth0", json!({})),
            identity_api(&sim, "entrust", json!({})),
        ];
        for doc in &docs {
            apply(cluster, &ns, &doc.to_string());
        }
        let op = Operator::start(cluster, &ns, &["--resync-interval", resync]);
        Env {
            cluster,
            ns,
            sim,
            _op: op,
        }
    }

    fn apply(&self, doc: &Value) {
        apply(self.cluster, &self.ns, &doc.to_string());
    }

    /// Applies `doc` and waits until it is Ready for its generation.
    async fn converge(&self, doc: &Value) -> Value {
        self.apply(doc);
        let what = format!(
            "{}/{}",
            doc["kind"].as_str().unwrap().to_lowercase(),
            doc["metadata"]["name"].as_str().unwrap()
        );
        wait_condition(self.cluster, &self.ns, &what, "Ready", "True", None, READY).await
    }

    async fn last_seq(&self) -> u64 {
        self.sim.log().await["lastSeq"].as_u64().unwrap_or(0)
    }

    /// The writes to `api` since `seq`, as `(method, path, body)`.
    async fn requests_since(&self, api: &str, seq: u64) -> Vec<(String, String, Value)> {
        let log = self.sim.log_since(api, seq).await;
        writes(&log, api)
            .into_iter()
            .map(|e| {
                (
                    e["method"].as_str().unwrap_or_default().to_owned(),
                    e["path"].as_str().unwrap_or_default().to_owned(),
                    e["body"].clone(),
                )
            })
            .collect()
    }

    /// Runs a case; returns the resource as it converged.
    async fn run(&self, case: &Case) -> Value {
        self.sim.seed(case.seed.clone()).await;
        if case.seed != json!({}) {
            // An object that exists before its resource is applied is older than the
            // operator's shared list snapshot (2 s) in real use; here it was seeded a moment
            // ago, so let the snapshot of the previous case run out. (An object made out of
            // band less than 2 s before its resource is applied can still be missed: the
            // closing note of this round says so.)
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
        if let Some(before) = &case.before {
            self.converge(before).await;
        }
        let seq = self.last_seq().await;
        let obj = self.converge(&case.after).await;
        let id = obj["status"]["externalId"].as_str().unwrap_or_default();
        let got = self.requests_since(case.api, seq).await;
        let want: Vec<(String, String, Value)> = case
            .expect
            .iter()
            .map(|(m, p, b)| (m.to_string(), p.replace("{id}", id), with_id(b, id)))
            .collect();
        assert_eq!(
            got, want,
            "case {:?}: the requests differ from the contract",
            case.name
        );
        let kept = condition(&obj, "FieldsKept");
        match (case.kept, &kept) {
            ([], None) => {}
            ([], Some(c)) => panic!("case {:?}: unexpected {c:?}", case.name),
            (paths, Some((status, reason, message))) => {
                assert_eq!((status.as_str(), reason.as_str()), ("True", "CannotClear"));
                for path in paths {
                    assert!(
                        message.contains(&format!("spec.{path} (")),
                        "case {:?}: {message}",
                        case.name
                    );
                }
            }
            (_, None) => panic!("case {:?}: no FieldsKept condition: {obj}", case.name),
        }
        obj
    }

    async fn state(&self, api: &str) -> Value {
        self.sim.state().await[api].clone()
    }
}

fn identity_api(sim: &SimProcess, provider: &str, extra: Value) -> Value {
    let client_id = sim.options.client_id.as_str();
    let secret = json!({"name": "credentials", "key": "secret"});
    let auth = match provider {
        "boruta" => json!({"oauth2ClientCredentials": {"tokenUrl": "oauth/token",
            "clientId": client_id, "clientSecretRef": secret,
            "scopes": ["identity-providers:manage:all"]}}),
        "auth0" => json!({"oauth2ClientCredentials": {"tokenUrl": "oauth/token",
            "clientId": client_id, "clientSecretRef": secret, "audience": AUTH0_AUDIENCE}}),
        "entrust" => {
            json!({"entrustAdminApi": {"applicationId": client_id, "sharedSecretRef": secret}})
        }
        "vcd" => json!({"vcdSession": {"org": extra["org"], "username": client_id,
            "passwordSecretRef": secret}}),
        "xelion" => json!({"xelionLogin": {"userName": client_id, "passwordSecretRef": secret,
            "userSpace": format!("contract-{}", extra["tenant"].as_str().unwrap())}}),
        other => panic!("no IdentityApi for {other}"),
    };
    let name = match provider {
        "vcd" => format!("vcd-{}", extra["org"].as_str().unwrap()),
        "xelion" => format!("xelion-{}", extra["tenant"].as_str().unwrap()),
        _ => provider.to_owned(),
    };
    let mut spec = json!({"provider": provider, "url": sim.url(provider), "auth": auth});
    if let Some(tenant) = extra.get("tenant") {
        spec["tenant"] = tenant.clone();
    }
    json!({"apiVersion": GROUP_VERSION, "kind": "IdentityApi", "metadata": {"name": name}, "spec": spec})
}

fn resource(kind: &str, name: &str, api: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["apiRef"] = json!({"name": api});
    json!({"apiVersion": GROUP_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec})
}

// ---------------------------------------------------------------------------------------------
// IdentityBackend → Boruta: `PUT /api/backends/:backend_id` takes `{"backend": {...}}`
// ---------------------------------------------------------------------------------------------

fn backend(name: &str, spec: Value) -> Value {
    resource("IdentityBackend", name, "boruta", spec)
}

fn ldap_backend() -> Value {
    json!({
        "name": "Contract LDAP", "type": "Ldap", "passwordHashingAlg": "argon2",
        "roles": [{"id": ROLE_VIEWER, "name": "Viewer"}, {"id": ROLE_ADMIN, "name": "Admins"}],
        "ldapHost": "ldap.example.com", "ldapUserRdnAttribute": "uid", "ldapBaseDn": "dc=example,dc=com",
        "ldapMasterDn": "cn=boruta,dc=example,dc=com",
        "ldapMasterPasswordSecretRef": {"name": "ldap-bind", "key": "password"},
    })
}

/// The body Boruta gets for `ldap_backend()`, in its own names; roles by id only. The bind
/// password goes with every write: Boruta shows it, so a write repairs one changed by hand.
fn ldap_backend_body() -> Value {
    json!({
        "name": "Contract LDAP", "type": LDAP, "password_hashing_alg": "argon2",
        "roles": [{"id": ROLE_VIEWER}, {"id": ROLE_ADMIN}],
        "ldap_host": "ldap.example.com", "ldap_user_rdn_attribute": "uid",
        "ldap_base_dn": "dc=example,dc=com", "ldap_master_dn": "cn=boruta,dc=example,dc=com",
        "ldap_master_password": REDACTED,
    })
}

fn with(base: Value, extra: Value) -> Value {
    let mut out = base;
    for (k, v) in extra.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

/// `body` with every string `"{id}"` in it replaced by the remote object's id.
fn with_id(body: &Value, id: &str) -> Value {
    match body {
        Value::String(s) if s == "{id}" => Value::String(id.to_owned()),
        Value::Array(items) => Value::Array(items.iter().map(|v| with_id(v, id)).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), with_id(v, id)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn boruta_cases() -> Vec<Case> {
    let adopted = "7d000000-0000-4000-8000-0000000000ad";
    let created = ldap_backend_body();
    vec![
        Case {
            name: "create: POST with what the spec states, the bind password from its Secret",
            api: "boruta",
            kept: &[],
            seed: json!({}),
            before: None,
            after: backend("contract-ldap", ldap_backend()),
            // The document's POST body, with the id the operator chooses for the new backend
            // (the resource's uid): Boruta takes a new backend's id from the request and
            // refuses one it has, so a create repeated after a lost answer is idempotent.
            expect: vec![(
                "POST",
                "/boruta/api/backends".into(),
                json!({"backend": with(created, json!({"id": "{id}"}))}),
            )],
        },
        Case {
            name: "update: the document's PUT wrapper around the whole desired backend",
            api: "boruta",
            kept: &[],
            seed: json!({}),
            before: Some(backend("contract-ldap", ldap_backend())),
            after: backend(
                "contract-ldap",
                with(ldap_backend(), json!({"smtpPort": 2525})),
            ),
            expect: vec![(
                "PUT",
                "/boruta/api/backends/{id}".into(),
                json!({"backend": with(ldap_backend_body(), json!({"smtp_port": 2525}))}),
            )],
        },
        Case {
            name: "adopt without spec.type: the type is neither sent nor changed",
            api: "boruta",
            kept: &[],
            seed: json!({"boruta": {"backends": [{"id": adopted, "name": "Adopted LDAP",
                "type": LDAP, "password_hashing_alg": "bcrypt", "ldap_host": "ldap.example.com",
                "ldap_user_rdn_attribute": "uid", "ldap_base_dn": "dc=example,dc=com"}]}}),
            before: None,
            after: backend(
                "adopted-ldap",
                json!({"name": "Adopted LDAP", "smtpPort": 587}),
            ),
            expect: vec![(
                "PUT",
                format!("/boruta/api/backends/{adopted}"),
                json!({"backend": {"name": "Adopted LDAP", "roles": [], "smtp_port": 587}}),
            )],
        },
        Case {
            name: "fields taken out of the spec: Boruta's blanks; the default flag is kept",
            api: "boruta",
            kept: &["isDefault"],
            seed: json!({}),
            before: Some(backend(
                "contract-removal",
                json!({"name": "Contract Removal", "smtpPort": 25, "smtpRelay": "smtp.example.com",
                       "metadataFields": [{"attribute_name": "dept"}], "isDefault": true}),
            )),
            after: backend("contract-removal", json!({"name": "Contract Removal"})),
            expect: vec![(
                "PUT",
                "/boruta/api/backends/{id}".into(),
                json!({"backend": {"name": "Contract Removal", "roles": [], "smtp_port": null,
                    "smtp_relay": null, "metadata_fields": []}}),
            )],
        },
        Case {
            name: "a federated server: its client secret from a Secret",
            api: "boruta",
            kept: &[],
            seed: json!({}),
            before: None,
            after: backend(
                "contract-federated",
                json!({"name": "Contract Federated", "federatedServers": [{"name": "google",
                    "client_id": "contract-client", "base_url": "https://accounts.google.com",
                    "discovery_path": "/.well-known/openid-configuration",
                    "clientSecretRef": {"name": "idp", "key": "google"}}]}),
            ),
            expect: vec![(
                "POST",
                "/boruta/api/backends".into(),
                json!({"backend": {"id": "{id}", "name": "Contract Federated", "roles": [], "federated_servers": [{
                    "name": "google", "client_id": "contract-client", "client_secret": REDACTED,
                    "base_url": "https://accounts.google.com",
                    "discovery_path": "/.well-known/openid-configuration"}]}}),
            )],
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn boruta_requests_follow_the_document() {
    let env = Env::new("contract-boruta", "1h").await;
    for case in boruta_cases() {
        env.run(&case).await;
    }
    let backends = env.state("boruta").await["backends"].clone();
    let named = |name: &str| {
        backends
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no backend {name}"))
    };
    // Secrets reached Boruta as the Secrets hold them (compared, never printed).
    let ldap = named("Contract LDAP");
    assert!(
        ldap["ldap_master_password"] == BIND_PASSWORD,
        "Boruta's bind password is not the Secret's"
    );
    let federated = named("Contract Federated");
    assert!(
        federated["federated_servers"][0]["client_secret"] == IDP_SECRET,
        "Boruta's client secret is not the Secret's"
    );
    let adopted = named("Adopted LDAP");
    assert_eq!(
        (&adopted["type"], &adopted["password_hashing_alg"]),
        (&json!(LDAP), &json!("bcrypt")),
        "an adopted backend keeps what the spec does not say"
    );
}

// ---------------------------------------------------------------------------------------------
// OrgConnection → Auth0: `PATCH /api/v2/organizations/{id}/connections/{connection_id}`
// ---------------------------------------------------------------------------------------------

const ORG: &str = "org_contract";

fn org_connection(name: &str, connection: &str, spec: Value) -> Value {
    let spec = with(
        json!({"organizationId": ORG, "connectionId": connection}),
        spec,
    );
    resource("OrgConnection", name, "auth0", spec)
}

fn auth0_cases() -> Vec<Case> {
    let path = |c: &str| format!("/auth0/api/v2/organizations/{ORG}/connections{c}");
    let connections: Vec<Value> = ["con_new", "con_doc", "con_rm"]
        .iter()
        .map(|c| json!({"id": c, "name": c, "strategy": "samlp"}))
        .collect();
    let seed = json!({"auth0": {
        "organizations": [{"id": ORG, "name": "contract"}],
        "connections": connections,
        "organizationConnections": [{"organization_id": ORG, "connection_id": "con_doc",
            "organization_connection_name": "old-name", "assign_membership_on_login": false,
            "show_as_button": false, "is_signup_enabled": false,
            "organization_access_level": "full", "is_enabled": false}],
    }});
    vec![
        Case {
            name: "enable: POST with the connection id and the stated settings",
            api: "auth0",
            kept: &[],
            seed: seed.clone(),
            before: None,
            after: org_connection(
                "contract-new",
                "con_new",
                json!({"assignMembershipOnLogin": true}),
            ),
            expect: vec![(
                "POST",
                path(""),
                json!({"connection_id": "con_new", "assign_membership_on_login": true}),
            )],
        },
        Case {
            name: "the document's PATCH body: every setting",
            api: "auth0",
            kept: &[],
            seed: json!({}),
            before: None,
            after: org_connection(
                "contract-doc",
                "con_doc",
                json!({"organizationConnectionName": "doc-name", "assignMembershipOnLogin": true,
                       "showAsButton": true, "isSignupEnabled": true,
                       "organizationAccessLevel": "none", "isEnabled": true}),
            ),
            expect: vec![(
                "PATCH",
                path("/con_doc"),
                json!({
                    "organization_connection_name": "doc-name",
                    "assign_membership_on_login": true,
                    "show_as_button": true,
                    "is_signup_enabled": true,
                    "organization_access_level": "none",
                    "is_enabled": true
                }),
            )],
        },
        Case {
            name: "settings taken out of the spec: null, or Auth0's default",
            api: "auth0",
            kept: &[],
            seed: json!({}),
            before: Some(org_connection(
                "contract-rm",
                "con_rm",
                json!({"organizationConnectionName": "rm-name", "showAsButton": false}),
            )),
            after: org_connection("contract-rm", "con_rm", json!({})),
            expect: vec![(
                "PATCH",
                path("/con_rm"),
                json!({"organization_connection_name": null, "show_as_button": true}),
            )],
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn auth0_requests_follow_the_document() {
    let env = Env::new("contract-auth0", "1h").await;
    for case in auth0_cases() {
        env.run(&case).await;
    }
    let removed = env.state("auth0").await["organizationConnections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["connection_id"] == "con_rm")
        .cloned()
        .unwrap();
    assert!(
        removed.get("organization_connection_name").is_none(),
        "{removed}"
    );
}

// ---------------------------------------------------------------------------------------------
// LdapSettings → VCD: `PUT /cloudapi/v1/orgSettings/ldap` takes the whole OrganizationLdapSettings
// ---------------------------------------------------------------------------------------------

fn ldap_settings(org: &str, spec: Value) -> Value {
    resource("LdapSettings", org, &format!("vcd-{org}"), spec)
}

/// Every field of the document's OrganizationLdapSettings, as a spec.
fn every_ldap_field() -> Value {
    json!({
        "enabled": true,
        "settingsSource": "DEFINED",
        "inheritedCustomUsersOu": "ou=users",
        "definedSettings": {
            "hostName": "ldap.example.com", "port": 636, "ssl": true,
            "pagedSearchDisabled": false, "pageSize": 500, "maxResults": 1000,
            "maxUserGroups": 100, "searchBase": "dc=example,dc=com",
            "userName": "cn=vcd,dc=example,dc=com",
            "passwordSecretRef": {"name": "ldap-bind", "key": "password"},
            "groupSearchBase": "ou=groups,dc=example,dc=com",
            "customUiButtonLabel": "Corporate login",
            "userAttributes": {
                "objectClass": "inetOrgPerson", "objectIdentifier": "entryUUID",
                "userName": "uid", "email": "mail", "displayName": "cn",
                "givenName": "givenName", "surname": "sn", "telephone": "telephoneNumber",
                "groupMembershipIdentifier": "dn", "groupBackLinkIdentifier": "memberOf",
                "domain": "dc", "managerIdentifier": "manager",
            },
            "groupAttributes": {
                "objectClass": "groupOfUniqueNames", "objectIdentifier": "entryUUID",
                "groupName": "cn", "membership": "uniqueMember",
                "membershipIdentifier": "dn", "backLinkIdentifier": "memberOf",
            },
        },
    })
}

/// The document's PUT body, with the values of `every_ldap_field()`.
fn every_ldap_field_body() -> Value {
    let mut body = every_ldap_field();
    let defined = body["definedSettings"].as_object_mut().unwrap();
    defined.remove("passwordSecretRef");
    defined.insert("password".into(), json!(REDACTED));
    body
}

fn vcd_cases() -> Vec<Case> {
    const PATH: &str = "/vcd/cloudapi/v1/orgSettings/ldap";
    let minimal = json!({"enabled": true, "settingsSource": "DEFINED", "definedSettings": {
        "hostName": "ldap.example.com", "port": 389, "searchBase": "dc=example,dc=com",
        "userName": "cn=vcd,dc=example,dc=com", "pageSize": 500,
        "customUiButtonLabel": "Corporate login"}});
    // What VCD answered to `minimal`: every field, its defaults filled in.
    let answered = json!({"enabled": true, "settingsSource": "DEFINED", "definedSettings": {
        "hostName": "ldap.example.com", "port": 389, "ssl": false, "pagedSearchDisabled": false,
        "pageSize": 500, "maxResults": 200, "maxUserGroups": 1015,
        "searchBase": "dc=example,dc=com", "userName": "cn=vcd,dc=example,dc=com",
        "customUiButtonLabel": "Corporate login"}});
    let mut edited = answered.clone();
    edited["definedSettings"]["hostName"] = json!("ldap2.example.com");
    let mut edit_spec = minimal.clone();
    edit_spec["definedSettings"]["hostName"] = json!("ldap2.example.com");
    let mut trimmed_spec = minimal.clone();
    let defined = trimmed_spec["definedSettings"].as_object_mut().unwrap();
    defined.remove("pageSize");
    defined.remove("customUiButtonLabel");
    let without_password = minimal.clone();
    let mut with_password = minimal.clone();
    with_password["definedSettings"]["passwordSecretRef"] =
        json!({"name": "ldap-bind", "key": "password"});
    let mut trimmed = answered.clone();
    let defined = trimmed["definedSettings"].as_object_mut().unwrap();
    defined.remove("pageSize");
    defined.remove("customUiButtonLabel");
    vec![
        Case {
            name: "the document's PUT body: every field, the password on the first apply",
            api: "vcd",
            kept: &[],
            seed: json!({}),
            before: None,
            after: ldap_settings("contract-doc", every_ldap_field()),
            expect: vec![("PUT", PATH.into(), every_ldap_field_body())],
        },
        Case {
            name: "an edit: the settings as VCD holds them, one field changed, no password",
            api: "vcd",
            kept: &[],
            seed: json!({}),
            before: Some(ldap_settings("contract-edit", minimal.clone())),
            after: ldap_settings("contract-edit", edit_spec),
            expect: vec![("PUT", PATH.into(), edited)],
        },
        Case {
            // A Secret no longer referenced counts as changed credentials: the settings are
            // written once, as they are, and without a password VCD keeps the one it has.
            name: "the bind password taken out: VCD keeps it, and says so",
            api: "vcd",
            kept: &["definedSettings.passwordSecretRef"],
            seed: json!({}),
            before: Some(ldap_settings("contract-password", with_password)),
            after: ldap_settings("contract-password", without_password),
            expect: vec![("PUT", PATH.into(), answered.clone())],
        },
        Case {
            name: "fields taken out of the spec are left out of the PUT",
            api: "vcd",
            kept: &[],
            seed: json!({}),
            before: Some(ldap_settings("contract-trim", minimal)),
            after: ldap_settings("contract-trim", trimmed_spec),
            expect: vec![("PUT", PATH.into(), trimmed)],
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn vcd_requests_follow_the_document() {
    let env = Env::new("contract-vcd", "1h").await;
    for case in vcd_cases() {
        let org = case.after["metadata"]["name"].as_str().unwrap().to_owned();
        env.apply(&identity_api(&env.sim, "vcd", json!({"org": org})));
        env.run(&case).await;
    }
    let orgs = env.state("vcd").await["orgs"].clone();
    let doc = orgs
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "contract-doc")
        .cloned()
        .unwrap();
    assert!(
        doc["ldap"]["definedSettings"]["password"] == BIND_PASSWORD,
        "VCD's bind password is not the Secret's"
    );
}

// ---------------------------------------------------------------------------------------------
// AdminApiApp → Entrust: `PUT /api/web/v1/applications/adminapi/:id` takes AdminApiApplicationParms
// ---------------------------------------------------------------------------------------------

fn admin_app(name: &str, spec: Value) -> Value {
    let spec = with(
        json!({"name": name, "sharedSecretTarget": {"name": format!("{name}-credentials")}}),
        spec,
    );
    resource("AdminApiApp", name, "entrust", spec)
}

fn entrust_cases() -> Vec<Case> {
    const APPS: &str = "/entrust/api/web/v1/applications/adminapi";
    let app = |role: Value| admin_app("contract-app", role);
    let every = json!({"roleId": "role-1", "description": "CI pipeline",
        "allowLongLivedToken": true, "ipListId": "iplist-1", "logo": "iVBORw0KGgo="});
    vec![
        Case {
            name: "create: POST with the name and the one role",
            api: "entrust",
            kept: &[],
            seed: json!({}),
            before: None,
            after: app(json!({"roleId": "role-1"})),
            expect: vec![(
                "POST",
                APPS.into(),
                json!({"name": "contract-app", "roleId": "role-1"}),
            )],
        },
        Case {
            name: "the document's PUT body: every field but the create-only template",
            api: "entrust",
            kept: &[],
            seed: json!({}),
            before: None,
            after: app(every.clone()),
            expect: vec![(
                "PUT",
                format!("{APPS}/{{id}}"),
                json!({"name": "contract-app", "allowLongLivedToken": true,
                       "description": "CI pipeline", "ipListId": "iplist-1",
                       "logo": "iVBORw0KGgo=", "roleId": "role-1", "spRoleId": ""}),
            )],
        },
        Case {
            name: "from roleId to spRoleId: the site role unset with an empty string",
            api: "entrust",
            kept: &[],
            seed: json!({}),
            before: None,
            after: app(with(
                every.clone(),
                json!({"roleId": null, "spRoleId": "sp-1"}),
            )),
            expect: vec![(
                "PUT",
                format!("{APPS}/{{id}}"),
                json!({"name": "contract-app", "allowLongLivedToken": true,
                       "description": "CI pipeline", "ipListId": "iplist-1",
                       "logo": "iVBORw0KGgo=", "roleId": "", "spRoleId": "sp-1"}),
            )],
        },
        Case {
            name: "back from spRoleId to roleId: the service-provider role unset",
            api: "entrust",
            kept: &[],
            seed: json!({}),
            before: None,
            after: app(with(every.clone(), json!({"roleId": "role-2"}))),
            expect: vec![(
                "PUT",
                format!("{APPS}/{{id}}"),
                json!({"name": "contract-app", "allowLongLivedToken": true,
                       "description": "CI pipeline", "ipListId": "iplist-1",
                       "logo": "iVBORw0KGgo=", "roleId": "role-2", "spRoleId": ""}),
            )],
        },
        Case {
            name: "fields taken out: an empty description, false; the IP list and logo kept",
            api: "entrust",
            kept: &["ipListId", "logo"],
            seed: json!({}),
            before: None,
            after: app(json!({"roleId": "role-2"})),
            expect: vec![(
                "PUT",
                format!("{APPS}/{{id}}"),
                json!({"name": "contract-app", "allowLongLivedToken": false,
                       "description": "", "roleId": "role-2", "spRoleId": ""}),
            )],
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn entrust_requests_follow_the_document() {
    let env = Env::new("contract-entrust", "1h").await;
    let cases = entrust_cases();
    for (i, case) in cases.iter().enumerate() {
        env.run(case).await;
        let app = env.state("entrust").await["applications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "contract-app")
            .cloned()
            .unwrap();
        // Entrust holds exactly one of the two roles, the one the spec names.
        let roles = (app["roleId"].clone(), app["spRoleId"].clone());
        let want = match i {
            0 | 1 => (json!("role-1"), Value::Null),
            2 => (Value::Null, json!("sp-1")),
            _ => (json!("role-2"), Value::Null),
        };
        assert_eq!(roles, want, "case {:?}", case.name);
    }
}

// ---------------------------------------------------------------------------------------------
// AuthenticationSettings → Xelion: `PATCH /server/authentication`, the document's four examples
// ---------------------------------------------------------------------------------------------

fn authentication(tenant: &str, spec: Value) -> Value {
    resource(
        "AuthenticationSettings",
        tenant,
        &format!("xelion-{tenant}"),
        spec,
    )
}

fn tenant(name: &str, connections: Value, linked: Value) -> Value {
    json!({"xelion": {"tenants": [{"name": name, "openIdConnections": connections,
        "authentication": {"openIdConnections": linked}}]}})
}

fn xelion_cases() -> Vec<Case> {
    let path = |t: &str| format!("/xelion/api/v1/{t}/server/authentication");
    let operations = |ops: Value| json!({ "operations": ops });
    vec![
        Case {
            name: "replace some authorization settings direct members",
            api: "xelion",
            kept: &[],
            seed: tenant("doc-replace", json!([]), json!([])),
            before: None,
            after: authentication(
                "doc-replace",
                json!({"securityDomain": "mySecurityDomain", "domainServer1": "myDomainServer1",
                       "domainServer2": "myDomainServer2", "synchronizeDomainTime": true}),
            ),
            expect: vec![(
                "PATCH",
                path("doc-replace"),
                operations(json!([
                    {"op": "replace", "path": "/securityDomain", "value": "mySecurityDomain"},
                    {"op": "replace", "path": "/domainServer1", "value": "myDomainServer1"},
                    {"op": "replace", "path": "/domainServer2", "value": "myDomainServer2"},
                    {"op": "replace", "path": "/synchronizeDomainTime", "value": true}
                ])),
            )],
        },
        Case {
            name: "add a new OpenId connection: virtual id '1', the OID as value",
            api: "xelion",
            kept: &[],
            seed: tenant("doc-add", json!([{"oid": "1756113"}]), json!([])),
            before: None,
            after: authentication(
                "doc-add",
                json!({"openIdConnections": [{"oid": "1756113"}]}),
            ),
            expect: vec![(
                "PATCH",
                path("doc-add"),
                operations(json!([
                    {"op": "add", "path": "/openIdConnections/1", "value": "1756113"}
                ])),
            )],
        },
        Case {
            name: "remove an OpenId connection by its OID",
            api: "xelion",
            kept: &[],
            seed: tenant(
                "doc-remove",
                json!([{"oid": "321443"}, {"oid": "1001"}]),
                json!(["321443", "1001"]),
            ),
            before: None,
            after: authentication(
                "doc-remove",
                json!({"openIdConnections": [{"oid": "1001"}]}),
            ),
            expect: vec![(
                "PATCH",
                path("doc-remove"),
                operations(json!([{"op": "remove", "path": "/openIdConnections/321443"}])),
            )],
        },
        Case {
            name: "patch an existing OpenId connection by its OID",
            api: "xelion",
            kept: &[],
            seed: tenant(
                "doc-patch",
                json!([{"oid": "3669834", "openIdId": "old", "openIdProvider": "GOOGLE",
                        "openIdGroupId": "old-group", "liveSyncOn": false}]),
                json!(["3669834"]),
            ),
            before: None,
            after: authentication(
                "doc-patch",
                json!({"openIdConnections": [{"oid": "3669834", "openIdId": "myOpenIdId",
                    "openIdProvider": "MICROSOFT", "openIdGroupId": "myopenIdGroupId",
                    "liveSyncOn": true}]}),
            ),
            expect: vec![(
                "PATCH",
                path("doc-patch"),
                operations(json!([
                    {"op": "replace", "path": "/openIdConnections/3669834/openIdId", "value": "myOpenIdId"},
                    {"op": "replace", "path": "/openIdConnections/3669834/openIdProvider", "value": "MICROSOFT"},
                    {"op": "replace", "path": "/openIdConnections/3669834/openIdGroupId", "value": "myopenIdGroupId"},
                    {"op": "replace", "path": "/openIdConnections/3669834/liveSyncOn", "value": true}
                ])),
            )],
        },
        Case {
            name: "link a connection with fields: add, then replace by OID what differs",
            api: "xelion",
            kept: &[],
            seed: tenant(
                "doc-link",
                json!([{"oid": "1756114", "openIdProvider": "MICROSOFT", "liveSyncOn": false}]),
                json!([]),
            ),
            before: None,
            after: authentication(
                "doc-link",
                json!({"openIdConnections": [{"oid": "1756114", "openIdProvider": "MICROSOFT",
                    "liveSyncOn": true}]}),
            ),
            expect: vec![
                (
                    "PATCH",
                    path("doc-link"),
                    operations(json!([
                        {"op": "add", "path": "/openIdConnections/1", "value": "1756114"}
                    ])),
                ),
                (
                    "PATCH",
                    path("doc-link"),
                    operations(json!([
                        {"op": "replace", "path": "/openIdConnections/1756114/liveSyncOn", "value": true}
                    ])),
                ),
            ],
        },
        Case {
            name: "fields taken out: \"\" and false replace them; a number is kept",
            api: "xelion",
            kept: &["tokenRetentionDays"],
            seed: tenant("doc-removal", json!([{"oid": "4001"}]), json!([])),
            before: Some(authentication(
                "doc-removal",
                json!({"securityDomain": "corp", "tokenRetentionDays": 14,
                       "openIdConnections": [{"oid": "4001", "liveSyncOn": true}]}),
            )),
            after: authentication(
                "doc-removal",
                json!({"openIdConnections": [{"oid": "4001"}]}),
            ),
            expect: vec![(
                "PATCH",
                path("doc-removal"),
                operations(json!([
                    {"op": "replace", "path": "/securityDomain", "value": ""},
                    {"op": "replace", "path": "/openIdConnections/4001/liveSyncOn", "value": false}
                ])),
            )],
        },
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn xelion_requests_follow_the_document() {
    let env = Env::new("contract-xelion", "1h").await;
    for case in xelion_cases() {
        let tenant = case.after["metadata"]["name"].as_str().unwrap().to_owned();
        env.sim.seed(case.seed.clone()).await;
        env.apply(&identity_api(&env.sim, "xelion", json!({"tenant": tenant})));
        env.run(&case).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Steady state: names and orders the vendor keeps its own way are no reason to write
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn steady_state_writes_nothing_whatever_the_vendors_names_and_orders() {
    const RESYNC: Duration = Duration::from_secs(1);
    let env = Env::new("contract-steady", "1s").await;
    // Boruta answers roles in its own order (by id: admin, viewer) with its own names
    // (admin, viewer), and holds the lists in another order than the spec's.
    let id = "5e000000-0000-4000-8000-00000000005e";
    env.sim
        .seed(json!({"boruta": {"backends": [{"id": id, "name": "Steady",
            "roles": [{"id": ROLE_VIEWER}, {"id": ROLE_ADMIN}],
            "metadata_fields": [{"attribute_name": "site"}, {"attribute_name": "dept", "user_editable": true}],
            "federated_servers": [
                {"name": "github", "client_id": "gh", "client_secret": "s", "base_url": "https://github.com"},
                {"name": "google", "client_id": "go", "client_secret": IDP_SECRET, "base_url": "https://accounts.google.com"},
            ]}]}}))
        .await;
    let steady = backend(
        "steady",
        json!({"name": "Steady",
        "roles": [{"id": ROLE_VIEWER, "name": "VIEWER"}, {"id": ROLE_ADMIN, "name": "Administrators"}],
        "metadataFields": [{"attribute_name": "dept", "user_editable": true}, {"attribute_name": "site"}],
        "federatedServers": [
            {"name": "google", "client_id": "go", "base_url": "https://accounts.google.com",
             "clientSecretRef": {"name": "idp", "key": "google"}},
            {"name": "github", "client_id": "gh", "base_url": "https://github.com",
             "clientSecretRef": {"name": "idp", "key": "google"}},
        ]}),
    );
    // Xelion answers the links in its own order too.
    env.sim
        .seed(tenant(
            "steady",
            json!([{"oid": "2001", "liveSyncOn": true}, {"oid": "2002"}]),
            json!(["2002", "2001"]),
        ))
        .await;
    env.apply(&identity_api(
        &env.sim,
        "xelion",
        json!({"tenant": "steady"}),
    ));
    let links = authentication(
        "steady",
        json!({"openIdConnections": [{"oid": "2001", "liveSyncOn": true}, {"oid": "2002"}]}),
    );
    env.converge(&steady).await;
    env.converge(&links).await;
    // The first sync sends the federated client secrets once (their Secret was never sent);
    // from then on, nothing.
    let seq = env.last_seq().await;
    let versions = |what: &str| {
        get_json(&env.ns, env.cluster, what).unwrap()["metadata"]["resourceVersion"].clone()
    };
    let before = (
        versions("identitybackend/steady"),
        versions("authenticationsettings/steady"),
    );
    let start = env.last_seq().await;
    // Three drift checks, and a little more.
    tokio::time::sleep(RESYNC * 3 + Duration::from_millis(1500)).await;
    for api in ["boruta", "xelion"] {
        let log = env.sim.log_since(api, seq).await;
        assert_eq!(writes(&log, api), Vec::<&Value>::new(), "{api} written");
        let reads = log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["method"] == "GET")
            .count();
        // A list snapshot younger than 2 s serves a drift check without a call, so three
        // checks make two reads at least.
        assert!(
            reads >= 2,
            "{api}: {reads} reads since seq {start}: the drift checks did not run"
        );
    }
    let after = (
        versions("identitybackend/steady"),
        versions("authenticationsettings/steady"),
    );
    assert_eq!(before, after, "no status write in steady state");
}
