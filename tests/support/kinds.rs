//! What each managed kind's end-to-end tests start from: the simulator's seed, the Secret and
//! IdentityApi of its vendor, and a builder of the kind's resources. The per-kind suites and the
//! contract suite over every kind (`tests/reconcile_contract.rs`) share them.

use serde_json::{Value, json};

use super::env::{Env, resource, with_fields};
use super::sim::{AUTH0_AUDIENCE, SimOptions, SimProcess};

/// A Secret `name` holding `data` (as `stringData`).
pub fn secret(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})
}

/// IdentityBackend, against Boruta.
pub mod identity_backend {
    use super::*;

    pub const API: &str = "boruta";
    /// The Boruta role the seed holds.
    pub const ROLE: &str = "6a2f41a3-c54c-4f2a-9e0c-0a0b0c0d0e01";

    /// Boruta's OAuth rate limit off: the tests log in more often than a user would.
    pub fn options() -> SimOptions {
        SimOptions {
            extra_args: vec!["--boruta-oauth-rate-limit".into(), "0".into()],
            ..SimOptions::default()
        }
    }

    pub fn seed() -> Value {
        json!({"boruta": {"roles": [{"id": ROLE, "name": "admin"}]}})
    }

    /// The Secret `boruta-client` and the IdentityApi `boruta`.
    pub fn connection(sim: &SimProcess) -> Vec<Value> {
        vec![
            secret(
                "boruta-client",
                json!({"secret": sim.options.client_secret}),
            ),
            identity_api(sim, "boruta"),
        ]
    }

    pub async fn env(prefix: &str) -> Env {
        Env::new(prefix, API, options(), seed(), connection).await
    }

    pub fn identity_api(sim: &SimProcess, name: &str) -> Value {
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

    /// An IdentityBackend for the Boruta backend `name` (metadata name: `name` lowercased, spaces
    /// as dashes), `spec` set over the required fields.
    pub fn backend(name: &str, spec: Value) -> Value {
        let full = json!({
            "apiRef": {"name": "boruta"},
            "name": name,
            "passwordHashingAlg": "argon2",
        });
        let meta = name.to_lowercase().replace(' ', "-");
        resource("IdentityBackend", &meta, with_fields(full, spec))
    }

    /// The backends Boruta holds.
    pub async fn backends(sim: &SimProcess) -> Vec<Value> {
        sim.state().await["boruta"]["backends"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// OrgConnection, against Auth0.
pub mod org_connection {
    use super::*;

    pub const API: &str = "auth0";

    /// Organizations org_acme and org_beta, and four tenant connections.
    pub fn seed() -> Value {
        json!({"auth0": {
            "organizations": [{"id": "org_acme", "name": "acme"}, {"id": "org_beta", "name": "beta"}],
            "connections": [
                {"id": "con_saml", "name": "corp-saml", "strategy": "samlp"},
                {"id": "con_db", "name": "Username-Password-Authentication", "strategy": "auth0"},
                {"id": "con_google", "name": "google-oauth2", "strategy": "google-oauth2"},
                {"id": "con_github", "name": "github", "strategy": "github"},
            ],
        }})
    }

    /// The Secret `auth0-client` holding `value`.
    pub fn client_secret(value: &str) -> Value {
        secret("auth0-client", json!({"clientSecret": value}))
    }

    /// The Secret `auth0-client` and the IdentityApi `auth0`.
    pub fn connection(sim: &SimProcess) -> Vec<Value> {
        let api = json!({
            "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
            "metadata": {"name": "auth0"},
            "spec": {
                "provider": "auth0",
                "url": sim.url("auth0"),
                "auth": {"oauth2ClientCredentials": {
                    "tokenUrl": "oauth/token",
                    "clientId": sim.options.client_id,
                    "clientSecretRef": {"name": "auth0-client", "key": "clientSecret"},
                    "audience": AUTH0_AUDIENCE,
                }},
            },
        });
        vec![client_secret(&sim.options.client_secret), api]
    }

    pub async fn env(prefix: &str) -> Env {
        Env::new(prefix, API, SimOptions::default(), seed(), connection).await
    }

    /// An OrgConnection `name` enabling `conn` for `org`, `spec` set over the required fields.
    pub fn org_connection(name: &str, org: &str, conn: &str, spec: Value) -> Value {
        let full =
            json!({"apiRef": {"name": "auth0"}, "organizationId": org, "connectionId": conn});
        resource("OrgConnection", name, with_fields(full, spec))
    }

    /// Changes the connection `conn` of `org` behind the operator's back, through Auth0's API.
    pub async fn edit_remote(sim: &SimProcess, org: &str, conn: &str, body: Value) {
        let token = sim.token("auth0").await;
        let resp = reqwest::Client::new()
            .patch(format!(
                "{}/api/v2/organizations/{org}/connections/{conn}",
                sim.url("auth0")
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "remote edit: {}", resp.status());
    }

    /// The organization connections Auth0 holds.
    pub async fn enabled(sim: &SimProcess) -> Vec<Value> {
        sim.state().await["auth0"]["organizationConnections"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// LdapSettings, against VCD.
pub mod ldap_settings {
    use super::*;

    pub const API: &str = "vcd";
    pub const ORG: &str = "acme";
    pub const ORG_ID: &str = "5d1c7e0a-3b2f-4c8d-9e6a-7f8091a2b3c4";

    /// The VCD org [`ORG`], with the fields of `org` (e.g. its `ldap` settings).
    pub fn seed(org: Value) -> Value {
        let mut org = org;
        org["name"] = json!(ORG);
        org["id"] = json!(ORG_ID);
        json!({"vcd": {"orgs": [org]}})
    }

    /// A Secret `name` with a `password`.
    pub fn password(name: &str, value: &str) -> Value {
        secret(name, json!({"password": value}))
    }

    /// The Secret `vcd-login` and the IdentityApi `vcd`.
    pub fn connection(sim: &SimProcess) -> Vec<Value> {
        let api = json!({
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
        });
        vec![password("vcd-login", &sim.options.client_secret), api]
    }

    pub async fn env(prefix: &str, org: Value) -> Env {
        Env::new(prefix, API, SimOptions::default(), seed(org), connection).await
    }

    /// LDAP settings defined in the spec, for the server `host`.
    pub fn defined(host: &str) -> Value {
        json!({
            "hostName": host, "port": 636, "ssl": true, "pageSize": 500,
            "searchBase": "dc=acme,dc=example", "userName": "cn=bind,dc=acme,dc=example",
            "passwordSecretRef": {"name": "ldap-bind", "key": "password"},
            "groupSearchBase": "ou=groups,dc=acme,dc=example",
            "userAttributes": {"objectClass": "inetOrgPerson", "userName": "uid", "email": "mail"},
            "groupAttributes": {"objectClass": "groupOfUniqueNames", "membership": "uniqueMember"},
        })
    }

    /// LdapSettings `name` of [`ORG`], `spec` set over settings defined for ldap.acme.example.
    pub fn ldap_settings(name: &str, spec: Value) -> Value {
        let full = json!({
            "apiRef": {"name": "vcd"},
            "enabled": true,
            "settingsSource": "DEFINED",
            "definedSettings": defined("ldap.acme.example"),
        });
        resource("LdapSettings", name, with_fields(full, spec))
    }

    /// Settings the org already has: the operator adopts them.
    pub fn existing() -> Value {
        json!({"ldap": {
            "enabled": true, "settingsSource": "DEFINED",
            "definedSettings": {
                "hostName": "old-ldap.acme.example", "port": 389, "ssl": false,
                "searchBase": "dc=acme,dc=example", "userName": "cn=old,dc=acme,dc=example",
                "password": "old-password",
            },
        }})
    }

    /// The org's LDAP settings as the simulator stores them, password included.
    pub async fn remote(sim: &SimProcess) -> Value {
        let state = sim.state().await;
        state["vcd"]["orgs"]
            .as_array()
            .and_then(|orgs| orgs.iter().find(|o| o["name"] == ORG))
            .map(|o| o["ldap"].clone())
            .expect("the org exists")
    }
}

/// AdminApiApp, against Entrust.
pub mod admin_api_app {
    use super::*;

    pub const API: &str = "entrust";

    /// The Secret `entrust-admin` and the IdentityApi `entrust`.
    pub fn connection(sim: &SimProcess) -> Vec<Value> {
        vec![
            secret(
                "entrust-admin",
                json!({"sharedSecret": sim.options.client_secret}),
            ),
            identity_api("entrust", sim, &sim.options.client_id, "entrust-admin"),
        ]
    }

    pub async fn env(prefix: &str) -> Env {
        Env::new(prefix, API, SimOptions::default(), Value::Null, connection).await
    }

    /// An IdentityApi `name` authenticating as `application_id` with the shared secret in
    /// Secret `secret`.
    pub fn identity_api(name: &str, sim: &SimProcess, application_id: &str, secret: &str) -> Value {
        json!({
            "apiVersion": "identity.operator.dev/v1alpha1", "kind": "IdentityApi",
            "metadata": {"name": name},
            "spec": {
                "provider": "entrust",
                "url": sim.url("entrust"),
                "auth": {"entrustAdminApi": {
                    "applicationId": application_id,
                    "sharedSecretRef": {"name": secret, "key": "sharedSecret"},
                }},
            },
        })
    }

    /// An AdminApiApp `name` (the resource) for the application `name`, writing
    /// `name-credentials`, `spec` set over the required fields.
    pub fn admin_app(name: &str, spec: Value) -> Value {
        let full = json!({
            "apiRef": {"name": "entrust"},
            "name": name,
            "roleId": "role-admin",
            "sharedSecretTarget": {"name": format!("{name}-credentials")},
        });
        resource("AdminApiApp", name, with_fields(full, spec))
    }

    /// The applications Entrust holds (with their shared secrets).
    pub async fn apps(sim: &SimProcess) -> Vec<Value> {
        sim.state().await["entrust"]["applications"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// AuthenticationSettings, against Xelion.
pub mod authentication_settings {
    use super::*;

    pub const API: &str = "xelion";

    /// The master tenant: three OpenID connection objects, 1001 and 1002 linked.
    pub fn seed() -> Value {
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

    /// The Secret `xelion-login` holding `password`.
    pub fn login_secret(password: &str) -> Value {
        secret("xelion-login", json!({"password": password}))
    }

    /// The Secret `xelion-login` and the IdentityApi `xelion`.
    pub fn connection(sim: &SimProcess) -> Vec<Value> {
        let api = json!({
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
        });
        vec![login_secret(&sim.options.client_secret), api]
    }

    pub async fn env(prefix: &str, options: SimOptions) -> Env {
        Env::new(prefix, API, options, seed(), connection).await
    }

    /// AuthenticationSettings `name` of the master tenant, `spec` set over a few settings and
    /// two OpenID connections.
    pub fn settings(name: &str, spec: Value) -> Value {
        let full = json!({
            "apiRef": {"name": "xelion"},
            "securityDomain": "corp",
            "minimumPasswordLength": 12,
            "tokenRetentionDays": 30,
            "openIdConnections": [
                {"oid": "1001", "openIdId": "tenant-a", "liveSyncOn": true},
                {"oid": "1003", "openIdGroupId": "g-c"},
            ],
        });
        resource("AuthenticationSettings", name, with_fields(full, spec))
    }

    /// The master tenant as the simulator stores it: `authentication` (members as OIDs) and
    /// every OpenID connection object.
    pub async fn tenant(sim: &SimProcess) -> Value {
        let state = sim.state().await;
        state["xelion"]["tenants"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == "master"))
            .cloned()
            .expect("the master tenant")
    }
}
