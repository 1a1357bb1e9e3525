//! The IdentityApis of the three kinds that create remote objects (Boruta backends, Auth0
//! organization connections, Entrust applications) against one simulator, and the resources
//! of those kinds: what the reliability suite and the network tests start from.

use serde_json::{Value, json};

use super::sim::{AUTH0_AUDIENCE, SimProcess};

pub const GROUP_VERSION: &str = "identity.operator.dev/v1alpha1";
/// The Auth0 organization the OrgConnections enable their connections for.
pub const ORG: &str = "org_reliability";

/// A Secret with one key.
pub fn secret(name: &str, key: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
           "stringData": {key: value}})
}

/// The Secret `api-client` holding the simulator's client secret, and the IdentityApis
/// `boruta`, `auth0` and `entrust` that use it, each with `timeoutSeconds`.
pub fn creating_apis(sim: &SimProcess, timeout_seconds: u32) -> Vec<Value> {
    let api = |name: &str, auth: Value| {
        json!({"apiVersion": GROUP_VERSION, "kind": "IdentityApi", "metadata": {"name": name},
               "spec": {"provider": name, "url": sim.url(name), "auth": auth,
                        "timeoutSeconds": timeout_seconds}})
    };
    let client_id = &sim.options.client_id;
    vec![
        secret("api-client", "secret", &sim.options.client_secret),
        api(
            "boruta",
            json!({"oauth2ClientCredentials": {"tokenUrl": "oauth/token", "clientId": client_id,
                "clientSecretRef": {"name": "api-client", "key": "secret"},
                "scopes": ["identity-providers:manage:all"]}}),
        ),
        api(
            "auth0",
            json!({"oauth2ClientCredentials": {"tokenUrl": "oauth/token", "clientId": client_id,
                "clientSecretRef": {"name": "api-client", "key": "secret"}, "audience": AUTH0_AUDIENCE}}),
        ),
        api(
            "entrust",
            json!({"entrustAdminApi": {"applicationId": client_id,
                "sharedSecretRef": {"name": "api-client", "key": "secret"}}}),
        ),
    ]
}

/// Seeds organization [`ORG`] and the tenant connections `con_<i>` for `connections`.
pub async fn seed_connections(sim: &SimProcess, connections: impl IntoIterator<Item = usize>) {
    let connections: Vec<Value> = connections
        .into_iter()
        .map(|i| json!({"id": format!("con_{i}"), "name": format!("con-{i}"), "strategy": "samlp"}))
        .collect();
    sim.seed(
        json!({"auth0": {"organizations": [{"id": ORG, "name": "reliability"}],
                              "connections": connections}}),
    )
    .await;
}

/// An LDAP IdentityBackend `name` (metadata name `meta`) whose bind password is in Secret
/// `ldap-bind`, at SMTP port `smtp_port` (the field edits change).
pub fn backend(meta: &str, name: &str, smtp_port: u32) -> Value {
    json!({
        "apiVersion": GROUP_VERSION, "kind": "IdentityBackend", "metadata": {"name": meta},
        "spec": {
            "apiRef": {"name": "boruta"}, "name": name,
            "type": "Ldap", "passwordHashingAlg": "argon2",
            "ldapHost": "ldap.example", "ldapUserRdnAttribute": "uid", "ldapBaseDn": "dc=example",
            "ldapMasterDn": "cn=admin,dc=example",
            "ldapMasterPasswordSecretRef": {"name": "ldap-bind", "key": "password"},
            "smtpPort": smtp_port,
        },
    })
}

/// An OrgConnection `meta` enabling `con_<i>` for [`ORG`].
pub fn org_connection(meta: &str, i: usize, assign: bool, name: &str) -> Value {
    json!({
        "apiVersion": GROUP_VERSION, "kind": "OrgConnection", "metadata": {"name": meta},
        "spec": {
            "apiRef": {"name": "auth0"}, "organizationId": ORG,
            "connectionId": format!("con_{i}"),
            "assignMembershipOnLogin": assign,
            "organizationConnectionName": name,
        },
    })
}

/// An AdminApiApp `name` (metadata name `meta`) whose shared secret goes to Secret
/// `<meta>-credentials`.
pub fn admin_app(meta: &str, name: &str, description: &str) -> Value {
    json!({
        "apiVersion": GROUP_VERSION, "kind": "AdminApiApp", "metadata": {"name": meta},
        "spec": {
            "apiRef": {"name": "entrust"}, "name": name,
            "roleId": "role-admin", "description": description,
            "sharedSecretTarget": {"name": format!("{meta}-credentials")},
        },
    })
}
