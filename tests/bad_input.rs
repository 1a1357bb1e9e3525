//! Bad input, per kind, the way a user meets it:
//! - schema violations are rejected by `kubectl apply` against the real API server (or by
//!   kubectl's own validation against the schema the server publishes) with a message that
//!   names the field;
//! - CEL rules (`x-kubernetes-validations`: immutable fields, cross-field rules), which the
//!   local Kubernetes 1.20 cannot enforce but our users' 1.28+ does, are checked client-side
//!   with kube's CEL validator against the same CRD;
//! - semantically bad references (missing IdentityApi, Secret or key, an IdentityApi of the
//!   wrong provider) give `Ready=False` with a clear reason, an Event and no identity-API call,
//!   and deleting a resource whose connection cannot work any more (credentials refused, API
//!   gone) finishes (Orphan) after the operator's `--deletion-grace-period`, saying so before
//!   and naming the remote object it leaves behind.

mod support;

use std::time::{Duration, Instant};

use kube::core::cel::Validator;
use serde_json::{Value, json};
use support::cluster::{Cluster, TestNamespace, ensure_cluster};
use support::manifests::{VCD_ORG, document, identity_api, secret};
use support::operator::{
    KINDS, Operator, apply, condition, get_json, install_crds, wait_condition, wait_event,
};
use support::sim::{SimOptions, SimProcess};

/// A spec of `kind` that the API server and every CEL rule accept.
fn valid(kind: &str) -> Value {
    let api_ref = json!({"name": "api"});
    match kind {
        "IdentityApi" => json!({
            "provider": "boruta", "url": "https://boruta.example",
            "auth": {"bearerToken": {"secretRef": {"name": "s", "key": "k"}}},
        }),
        "IdentityBackend" => {
            json!({"apiRef": api_ref, "name": "n", "passwordHashingAlg": "argon2"})
        }
        "OrgConnection" => {
            json!({"apiRef": api_ref, "organizationId": "org_1", "connectionId": "con_1"})
        }
        "LdapSettings" => json!({
            "apiRef": api_ref, "enabled": true, "settingsSource": "DEFINED",
            "definedSettings": {"hostName": "ldap.example", "port": 636,
                "searchBase": "dc=example", "userName": "cn=bind,dc=example"},
        }),
        "AdminApiApp" => json!({
            "apiRef": api_ref, "name": "n", "roleId": "role-1",
            "sharedSecretTarget": {"name": "n-credentials"},
        }),
        "AuthenticationSettings" => json!({"apiRef": api_ref}),
        other => panic!("no valid spec for {other}"),
    }
}

/// `valid(kind)` with a JSON merge patch (RFC 7386: `null` removes a field) applied.
fn with(kind: &str, patch: Value) -> Value {
    let mut spec = valid(kind);
    merge(&mut spec, &patch);
    spec
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

const MANAGED: [&str; 5] = [
    "IdentityBackend",
    "OrgConnection",
    "LdapSettings",
    "AdminApiApp",
    "AuthenticationSettings",
];

// ---------------------------------------------------------------------------------------------
// OpenAPI schema violations: the real API server (Kubernetes 1.20) via kubectl apply
// ---------------------------------------------------------------------------------------------

/// One invalid spec and what the rejection must say (every fragment, case-sensitive).
struct SchemaCase {
    kind: &'static str,
    what: &'static str,
    spec: Value,
    expect: &'static [&'static str],
}

fn schema_case(
    kind: &'static str,
    what: &'static str,
    patch: Value,
    expect: &'static [&'static str],
) -> SchemaCase {
    SchemaCase {
        kind,
        what,
        spec: with(kind, patch),
        expect,
    }
}

#[rustfmt::skip]
fn schema_cases() -> Vec<SchemaCase> {
    let long = |n: usize| "x".repeat(n);
    let c = schema_case;
    vec![
        // --- every managed kind: the common fields
        c("IdentityBackend", "missing apiRef", json!({"apiRef": null}), &["apiRef"]),
        c("OrgConnection", "apiRef without name", json!({"apiRef": {"name": null}}), &["name"]),
        c("AdminApiApp", "empty apiRef name", json!({"apiRef": {"name": ""}}), &["spec.apiRef.name", "at least 1 chars"]),
        c("LdapSettings", "apiRef is a string", json!({"apiRef": "api"}), &["spec.apiRef", "string"]),
        c("AuthenticationSettings", "managementPolicy enum", json!({"managementPolicy": "Sometimes"}), &["spec.managementPolicy", "Unsupported value", "\"Apply\", \"Observe\""]),
        c("IdentityBackend", "deletionPolicy enum", json!({"deletionPolicy": "Keep"}), &["spec.deletionPolicy", "Unsupported value", "\"Delete\", \"Orphan\""]),
        c("OrgConnection", "unknown field", json!({"organisationId": "typo"}), &["unknown field", "organisationId"]),
        // --- IdentityApi
        c("IdentityApi", "provider enum", json!({"provider": "okta"}), &["spec.provider", "Unsupported value: \"okta\"", "\"boruta\""]),
        c("IdentityApi", "missing provider", json!({"provider": null}), &["provider"]),
        c("IdentityApi", "missing url", json!({"url": null}), &["url"]),
        c("IdentityApi", "missing auth", json!({"auth": null}), &["auth"]),
        c("IdentityApi", "url is a number", json!({"url": 8080}), &["spec.url", "string"]),
        c("IdentityApi", "empty url", json!({"url": ""}), &["spec.url", "at least 1 chars"]),
        c("IdentityApi", "url longer than 2048", json!({"url": format!("https://{}", long(2048))}), &["spec.url", "at most 2048 chars"]),
        c("IdentityApi", "empty tenant", json!({"tenant": ""}), &["spec.tenant", "at least 1 chars"]),
        c("IdentityApi", "tenant longer than 200", json!({"tenant": long(201)}), &["spec.tenant", "at most 200 chars"]),
        c("IdentityApi", "timeoutSeconds 0", json!({"timeoutSeconds": 0}), &["spec.timeoutSeconds", "greater than or equal to 1"]),
        c("IdentityApi", "timeoutSeconds 601", json!({"timeoutSeconds": 601}), &["spec.timeoutSeconds", "less than or equal to 600"]),
        c("IdentityApi", "timeoutSeconds is a string", json!({"timeoutSeconds": "30"}), &["spec.timeoutSeconds", "integer"]),
        c("IdentityApi", "requestsPerSecond 0", json!({"rateLimit": {"requestsPerSecond": 0}}), &["spec.rateLimit.requestsPerSecond", "greater than or equal to 1"]),
        c("IdentityApi", "burst 10001", json!({"rateLimit": {"burst": 10001}}), &["spec.rateLimit.burst", "less than or equal to 10000"]),
        c("IdentityApi", "maxConcurrent 1001", json!({"rateLimit": {"maxConcurrent": 1001}}), &["spec.rateLimit.maxConcurrent", "less than or equal to 1000"]),
        c("IdentityApi", "insecureSkipVerify is a string", json!({"tls": {"insecureSkipVerify": "yes"}}), &["spec.tls.insecureSkipVerify", "boolean"]),
        c("IdentityApi", "caSecretRef without key", json!({"tls": {"caSecretRef": {"name": "ca"}}}), &["key"]),
        c("IdentityApi", "unknown auth type", json!({"auth": {"bearerToken": null, "kerberos": {"keytab": "x"}}}), &["unknown field", "kerberos"]),
        c("IdentityApi", "secretRef without key", json!({"auth": {"bearerToken": {"secretRef": {"key": null}}}}), &["key"]),
        c("IdentityApi", "secretRef with empty name", json!({"auth": {"bearerToken": {"secretRef": {"name": ""}}}}), &["spec.auth.bearerToken.secretRef.name", "at least 1 chars"]),
        c("IdentityApi", "oauth2 without clientId", json!({"auth": {"bearerToken": null, "oauth2ClientCredentials": {"tokenUrl": "oauth/token", "clientSecretRef": {"name": "s", "key": "k"}}}}), &["clientId"]),
        c("IdentityApi", "oauth2 scopes not a list", json!({"auth": {"bearerToken": null, "oauth2ClientCredentials": {"tokenUrl": "oauth/token", "clientId": "c", "clientSecretRef": {"name": "s", "key": "k"}, "scopes": "a b"}}}), &["spec.auth.oauth2ClientCredentials.scopes", "array"]),
        c("IdentityApi", "vcdSession provider flag is a string", json!({"auth": {"bearerToken": null, "vcdSession": {"org": "o", "username": "u", "passwordSecretRef": {"name": "s", "key": "k"}, "provider": "true"}}}), &["spec.auth.vcdSession.provider", "boolean"]),
        c("IdentityApi", "xelion userSpace longer than 200", json!({"auth": {"bearerToken": null, "xelionLogin": {"userName": "u", "passwordSecretRef": {"name": "s", "key": "k"}, "userSpace": long(201)}}}), &["spec.auth.xelionLogin.userSpace", "at most 200 chars"]),
        c("IdentityApi", "entrust without sharedSecretRef", json!({"auth": {"bearerToken": null, "entrustAdminApi": {"applicationId": "a"}}}), &["sharedSecretRef"]),
        // --- IdentityBackend (Boruta)
        c("IdentityBackend", "missing name", json!({"name": null}), &["name"]),
        c("IdentityBackend", "name longer than 255", json!({"name": long(256)}), &["spec.name", "at most 255 chars"]),
        c("IdentityBackend", "passwordHashingAlg enum", json!({"passwordHashingAlg": "md5"}), &["spec.passwordHashingAlg", "Unsupported value: \"md5\"", "\"argon2\", \"bcrypt\", \"pbkdf2\""]),
        c("IdentityBackend", "type enum", json!({"type": "Kerberos"}), &["spec.type", "Unsupported value: \"Kerberos\"", "\"Internal\", \"Ldap\""]),
        c("IdentityBackend", "smtpTls enum", json!({"smtpTls": "sometimes"}), &["spec.smtpTls", "Unsupported value", "\"if_available\""]),
        c("IdentityBackend", "smtpPort is a string", json!({"smtpPort": "twenty-five"}), &["spec.smtpPort", "integer"]),
        c("IdentityBackend", "smtpPort 0", json!({"smtpPort": 0}), &["spec.smtpPort", "greater than or equal to 1"]),
        c("IdentityBackend", "smtpPort 65536", json!({"smtpPort": 65536}), &["spec.smtpPort", "less than or equal to 65535"]),
        c("IdentityBackend", "ldapPoolSize 0", json!({"ldapPoolSize": 0}), &["spec.ldapPoolSize", "greater than or equal to 1"]),
        c("IdentityBackend", "ldapPoolSize 51", json!({"ldapPoolSize": 51}), &["spec.ldapPoolSize", "less than or equal to 50"]),
        c("IdentityBackend", "isDefault is a string", json!({"isDefault": "true"}), &["spec.isDefault", "boolean"]),
        c("IdentityBackend", "empty ldapHost", json!({"ldapHost": ""}), &["spec.ldapHost", "at least 1 chars"]),
        c("IdentityBackend", "empty ldapBaseDn", json!({"ldapBaseDn": ""}), &["spec.ldapBaseDn", "at least 1 chars"]),
        c("IdentityBackend", "role without id", json!({"roles": [{"name": "admin"}]}), &["id"]),
        c("IdentityBackend", "role with empty id", json!({"roles": [{"id": ""}]}), &["spec.roles.id", "at least 1 chars"]),
        c("IdentityBackend", "role listed twice", json!({"roles": [{"id": "r1"}, {"id": "r1", "name": "again"}]}), &["spec.roles[1]", "Duplicate value"]),
        c("IdentityBackend", "metadataFields of strings", json!({"metadataFields": ["x"]}), &["spec.metadataFields", "object"]),
        c("IdentityBackend", "passwordHashingOpts is a list", json!({"passwordHashingOpts": [1]}), &["spec.passwordHashingOpts", "object"]),
        c("IdentityBackend", "hashlen 0", json!({"passwordHashingOpts": {"hashlen": 0}}), &["spec.passwordHashingOpts.hashlen", "greater than or equal to 1"]),
        c("IdentityBackend", "argon2_type 3", json!({"passwordHashingOpts": {"argon2_type": 3}}), &["spec.passwordHashingOpts.argon2_type", "less than or equal to 2"]),
        c("IdentityBackend", "pbkdf2 digest enum", json!({"passwordHashingAlg": "pbkdf2", "passwordHashingOpts": {"digest": "md5"}}), &["spec.passwordHashingOpts.digest", "Unsupported value: \"md5\""]),
        c("IdentityBackend", "metadata field without attribute_name", json!({"metadataFields": [{"user_editable": true}]}), &["attribute_name", "Required value"]),
        c("IdentityBackend", "metadata field listed twice", json!({"metadataFields": [{"attribute_name": "dept"}, {"attribute_name": "dept"}]}), &["spec.metadataFields[1]", "Duplicate value"]),
        c("IdentityBackend", "federated server without clientSecretRef", json!({"federatedServers": [{"name": "idp", "client_id": "c", "base_url": "https://idp.example"}]}), &["clientSecretRef", "Required value"]),
        c("IdentityBackend", "federated server without base_url", json!({"federatedServers": [{"name": "idp", "client_id": "c", "clientSecretRef": {"name": "s", "key": "k"}}]}), &["base_url", "Required value"]),
        c("IdentityBackend", "federated server name with a space", json!({"federatedServers": [{"name": "my idp", "client_id": "c", "base_url": "u", "clientSecretRef": {"name": "s", "key": "k"}}]}), &["spec.federatedServers.name", "should match"]),
        c("IdentityBackend", "federated metadata endpoint without claims", json!({"federatedServers": [{"name": "idp", "client_id": "c", "base_url": "u", "clientSecretRef": {"name": "s", "key": "k"}, "metadata_endpoints": [{"endpoint": "/me"}]}]}), &["claims", "Required value"]),
        c("IdentityBackend", "smtpPasswordSecretRef without key", json!({"smtpPasswordSecretRef": {"name": "smtp"}}), &["key"]),
        // --- OrgConnection (Auth0)
        c("OrgConnection", "missing organizationId", json!({"organizationId": null}), &["organizationId"]),
        c("OrgConnection", "missing connectionId", json!({"connectionId": null}), &["connectionId"]),
        c("OrgConnection", "organizationId longer than 50", json!({"organizationId": long(51)}), &["spec.organizationId", "at most 50 chars"]),
        c("OrgConnection", "empty connectionId", json!({"connectionId": ""}), &["spec.connectionId", "at least 1 chars"]),
        c("OrgConnection", "connectionId longer than 50", json!({"connectionId": long(51)}), &["spec.connectionId", "at most 50 chars"]),
        c("OrgConnection", "connection name with a space", json!({"organizationConnectionName": "corp sso"}), &["spec.organizationConnectionName", "should match"]),
        c("OrgConnection", "connection name longer than 50", json!({"organizationConnectionName": long(51)}), &["spec.organizationConnectionName", "at most 50 chars"]),
        c("OrgConnection", "empty connection name", json!({"organizationConnectionName": ""}), &["spec.organizationConnectionName", "at least 1 chars"]),
        c("OrgConnection", "access level enum", json!({"organizationAccessLevel": "admin"}), &["spec.organizationAccessLevel", "Unsupported value: \"admin\"", "\"readonly\""]),
        c("OrgConnection", "showAsButton is a string", json!({"showAsButton": "yes"}), &["spec.showAsButton", "boolean"]),
        c("OrgConnection", "isEnabled is a number", json!({"isEnabled": 1}), &["spec.isEnabled", "boolean"]),
        // --- LdapSettings (VCD)
        c("LdapSettings", "missing enabled", json!({"enabled": null}), &["enabled"]),
        c("LdapSettings", "enabled is a string", json!({"enabled": "yes"}), &["spec.enabled", "boolean"]),
        c("LdapSettings", "settingsSource enum", json!({"settingsSource": "LOCAL"}), &["spec.settingsSource", "Unsupported value: \"LOCAL\"", "\"INHERIT_SYSTEM\", \"DEFINED\""]),
        c("LdapSettings", "missing hostName", json!({"definedSettings": {"hostName": null}}), &["hostName"]),
        c("LdapSettings", "empty hostName", json!({"definedSettings": {"hostName": ""}}), &["spec.definedSettings.hostName", "at least 1 chars"]),
        c("LdapSettings", "missing port", json!({"definedSettings": {"port": null}}), &["port"]),
        c("LdapSettings", "port 0", json!({"definedSettings": {"port": 0}}), &["spec.definedSettings.port", "greater than or equal to 1"]),
        c("LdapSettings", "port 65536", json!({"definedSettings": {"port": 65536}}), &["spec.definedSettings.port", "less than or equal to 65535"]),
        c("LdapSettings", "port is a string", json!({"definedSettings": {"port": "636"}}), &["spec.definedSettings.port", "integer"]),
        c("LdapSettings", "missing searchBase", json!({"definedSettings": {"searchBase": null}}), &["searchBase"]),
        c("LdapSettings", "missing userName", json!({"definedSettings": {"userName": null}}), &["userName"]),
        c("LdapSettings", "pageSize 0", json!({"definedSettings": {"pageSize": 0}}), &["spec.definedSettings.pageSize", "greater than or equal to 1"]),
        c("LdapSettings", "maxResults 0", json!({"definedSettings": {"maxResults": 0}}), &["spec.definedSettings.maxResults", "greater than or equal to 1"]),
        c("LdapSettings", "maxUserGroups 0", json!({"definedSettings": {"maxUserGroups": 0}}), &["spec.definedSettings.maxUserGroups", "greater than or equal to 1"]),
        c("LdapSettings", "user attribute is a number", json!({"definedSettings": {"userAttributes": {"email": 5}}}), &["spec.definedSettings.userAttributes.email", "string"]),
        c("LdapSettings", "disableOnDelete is a string", json!({"disableOnDelete": "true"}), &["spec.disableOnDelete", "boolean"]),
        // --- AdminApiApp (Entrust)
        c("AdminApiApp", "missing name", json!({"name": null}), &["name"]),
        c("AdminApiApp", "name longer than 256", json!({"name": long(257)}), &["spec.name", "at most 256 chars"]),
        c("AdminApiApp", "missing sharedSecretTarget", json!({"sharedSecretTarget": null}), &["sharedSecretTarget"]),
        c("AdminApiApp", "empty sharedSecretTarget name", json!({"sharedSecretTarget": {"name": ""}}), &["spec.sharedSecretTarget.name", "at least 1 chars"]),
        c("AdminApiApp", "empty roleId", json!({"roleId": ""}), &["spec.roleId", "at least 1 chars"]),
        c("AdminApiApp", "empty spRoleId", json!({"roleId": null, "spRoleId": ""}), &["spec.spRoleId", "at least 1 chars"]),
        c("AdminApiApp", "empty applicationId", json!({"applicationId": ""}), &["spec.applicationId", "at least 1 chars"]),
        c("AdminApiApp", "allowLongLivedToken is a string", json!({"allowLongLivedToken": "yes"}), &["spec.allowLongLivedToken", "boolean"]),
        c("AdminApiApp", "rotateSharedSecret longer than 253", json!({"rotateSharedSecret": long(254)}), &["spec.rotateSharedSecret", "at most 253 chars"]),
        c("AdminApiApp", "logoFrom without key", json!({"logoFrom": {"name": "logo"}}), &["key"]),
        c("AdminApiApp", "logo not base64", json!({"logo": "not base64!"}), &["spec.logo", "byte"]),
        // --- AuthenticationSettings (Xelion)
        c("AuthenticationSettings", "securityDomain longer than 4000", json!({"securityDomain": long(4001)}), &["spec.securityDomain", "at most 4000 chars"]),
        c("AuthenticationSettings", "code longer than 4000", json!({"code": long(4001)}), &["spec.code", "at most 4000 chars"]),
        c("AuthenticationSettings", "negative tokenRetentionDays", json!({"tokenRetentionDays": -1}), &["spec.tokenRetentionDays", "greater than or equal to 0"]),
        c("AuthenticationSettings", "negative minimumPasswordLength", json!({"minimumPasswordLength": -1}), &["spec.minimumPasswordLength", "greater than or equal to 0"]),
        c("AuthenticationSettings", "maxNumberOfFalseLogins is a string", json!({"maxNumberOfFalseLogins": "3"}), &["spec.maxNumberOfFalseLogins", "integer"]),
        c("AuthenticationSettings", "tokenRetentionDays beyond 32 bits", json!({"tokenRetentionDays": 2147483648i64}), &["spec.tokenRetentionDays", "less than or equal to 2147483647"]),
        c("AuthenticationSettings", "minimumPasswordLength beyond 32 bits", json!({"minimumPasswordLength": 4294967296i64}), &["spec.minimumPasswordLength", "less than or equal to 2147483647"]),
        c("AuthenticationSettings", "maxNumberOfFalseLogins beyond 32 bits", json!({"maxNumberOfFalseLogins": 2147483648i64}), &["spec.maxNumberOfFalseLogins", "less than or equal to 2147483647"]),
        c("AuthenticationSettings", "synchronizeDomainTime is a string", json!({"synchronizeDomainTime": "no"}), &["spec.synchronizeDomainTime", "boolean"]),
        c("AuthenticationSettings", "OpenID link without oid", json!({"openIdConnections": [{"openIdId": "tenant-a"}]}), &["oid"]),
        c("AuthenticationSettings", "OpenID link with empty oid", json!({"openIdConnections": [{"oid": ""}]}), &["spec.openIdConnections.oid", "at least 1 chars"]),
        c("AuthenticationSettings", "OpenID link listed twice", json!({"openIdConnections": [{"oid": "1001"}, {"oid": "1001", "liveSyncOn": true}]}), &["spec.openIdConnections[1]", "Duplicate value"]),
        c("AuthenticationSettings", "liveSyncOn is a string", json!({"openIdConnections": [{"oid": "1001", "liveSyncOn": "on"}]}), &["spec.openIdConnections.liveSyncOn", "boolean"]),
        c("AuthenticationSettings", "openIdConnections is an object", json!({"openIdConnections": {"oid": "1001"}}), &["spec.openIdConnections", "array"]),
    ]
}

/// Specs at the edge of what the vendors' documents allow: the API server must accept them.
#[rustfmt::skip]
fn accepted_cases() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("IdentityBackend", "no passwordHashingAlg (Boruta's default argon2)", with("IdentityBackend", json!({"passwordHashingAlg": null}))),
        ("IdentityBackend", "a federated server as Boruta validates it", with("IdentityBackend", json!({"federatedServers": [{"name": "idp", "client_id": "c", "base_url": "https://idp.example", "clientSecretRef": {"name": "s", "key": "k"}, "metadata_endpoints": [{"endpoint": "/me", "claims": "email"}]}], "metadataFields": [{"attribute_name": "dept", "default_value": {"any": ["json"]}}]}))),
        ("OrgConnection", "a connection name with a tab (the document's pattern refuses spaces only)", with("OrgConnection", json!({"organizationConnectionName": "corp\tsso"}))),
        ("LdapSettings", "port 65535", with("LdapSettings", json!({"definedSettings": {"port": 65535}}))),
        ("AdminApiApp", "a base64 logo", with("AdminApiApp", json!({"logo": "iVBORw0KGgo="}))),
        ("AuthenticationSettings", "the largest 32-bit integer", with("AuthenticationSettings", json!({"tokenRetentionDays": 2147483647}))),
    ]
}

/// Runs `kubectl apply` for every document, a few at a time.
fn apply_all(cluster: &Cluster, ns: &str, docs: &[Value]) -> Vec<std::process::Output> {
    let mut outputs = Vec::with_capacity(docs.len());
    for chunk in docs.chunks(6) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|doc| {
                let (cluster, ns, doc) = (cluster.clone(), ns.to_owned(), doc.to_string());
                std::thread::spawn(move || {
                    cluster.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], &doc)
                })
            })
            .collect();
        outputs.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("kubectl thread")),
        );
    }
    outputs
}

/// `text` with every run of one character cut to 3 characters (and `…` when it was over 20).
fn collapse_runs(text: &str) -> String {
    let mut out = String::new();
    let mut run = 0;
    let mut last = None;
    for c in text.chars() {
        run = if Some(c) == last { run + 1 } else { 1 };
        last = Some(c);
        if run <= 3 {
            out.push(c);
        } else if run == 21 {
            out.push('…');
        }
    }
    out
}

#[test]
fn schema_violations_are_rejected_by_kubectl_apply() {
    let cluster = ensure_cluster();
    install_crds(cluster);
    let ns = TestNamespace::new(cluster, "bad-schema");
    let started = Instant::now();

    // The base of every case is accepted as it is: a rejection below is the mutation's doing.
    let bases: Vec<Value> = KINDS
        .iter()
        .map(|kind| document(kind, &format!("valid-{}", kind.to_lowercase()), valid(kind)))
        .collect();
    for (doc, out) in bases.iter().zip(apply_all(cluster, &ns.name, &bases)) {
        assert!(
            out.status.success(),
            "valid {} rejected: {}",
            doc["kind"],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let accepted = accepted_cases();
    let fine: Vec<Value> = accepted
        .iter()
        .enumerate()
        .map(|(i, (kind, _, spec))| document(kind, &format!("fine-{i}"), spec.clone()))
        .collect();
    for ((kind, what, _), out) in accepted.iter().zip(apply_all(cluster, &ns.name, &fine)) {
        assert!(
            out.status.success(),
            "{kind} / {what}: rejected: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let cases = schema_cases();
    let docs: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| document(case.kind, &format!("bad-{i}"), case.spec.clone()))
        .collect();
    let mut failures = Vec::new();
    for (case, out) in cases.iter().zip(apply_all(cluster, &ns.name, &docs)) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            failures.push(format!("{} / {}: accepted", case.kind, case.what));
            continue;
        }
        let missing: Vec<_> = case
            .expect
            .iter()
            .filter(|f| !stderr.contains(**f))
            .collect();
        if !missing.is_empty() {
            failures.push(format!(
                "{} / {}: message lacks {missing:?}:\n{stderr}",
                case.kind, case.what
            ));
        }
        // Readable: one short message, not a dump of the object (the API server quotes an
        // over-long value back in full; that part does not count).
        let shown = collapse_runs(&stderr);
        if shown.len() > 600 {
            failures.push(format!(
                "{} / {}: message of {} bytes: {shown}",
                case.kind,
                case.what,
                shown.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing invalid got in.
    let stored = ns.kubectl_ok(&["get", "identity", "-o", "name"]);
    assert_eq!(
        stored.lines().count(),
        KINDS.len() + accepted.len(),
        "{stored}"
    );
    eprintln!(
        "{} schema violations over {} kinds rejected in {:.1?}",
        cases.len(),
        KINDS.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// CEL rules: evaluated client-side against the CRDs the binary prints
// ---------------------------------------------------------------------------------------------

/// kube-cel 0.8 escapes every `_` of a field name as `__`, where Kubernetes escapes only a
/// double underscore (`__underscores__`): a rule that names Boruta's snake_case keys
/// (`self.passwordHashingOpts.log_rounds`) would read an absent field there. The rules are
/// evaluated as the API server reads them by spelling such field selections the way kube-cel
/// expects; quoted strings (`'raw_hash'`) are left alone.
fn kube_cel_spelling(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len());
    let (mut quoted, mut field) = (false, false);
    for c in rule.chars() {
        match c {
            '\'' => quoted = !quoted,
            '.' if !quoted => field = true,
            c if !(c.is_ascii_alphanumeric() || c == '_') => field = false,
            _ => {}
        }
        out.push(c);
        if c == '_' && field {
            out.push('_');
        }
    }
    out
}

fn respell_rules(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get_mut("x-kubernetes-validations") {
                for rule in rules.iter_mut().filter_map(|r| r.get_mut("rule")) {
                    *rule = Value::from(kube_cel_spelling(rule.as_str().unwrap_or_default()));
                }
            }
            map.values_mut().for_each(respell_rules);
        }
        Value::Array(items) => items.iter_mut().for_each(respell_rules),
        _ => {}
    }
}

#[test]
fn rules_are_respelled_for_kube_cel_only_where_they_select_a_field() {
    assert_eq!(
        kube_cel_spelling("!has(self.o.log_rounds) || self.o.format in ['raw_hash']"),
        "!has(self.o.log__rounds) || self.o.format in ['raw_hash']"
    );
    assert_eq!(kube_cel_spelling("self == oldSelf"), "self == oldSelf");
}

fn schemas() -> Vec<(String, Value)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_identity-operator"))
        .arg("crds")
        .output()
        .expect("identity-operator crds");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| !doc.trim().is_empty())
        .map(|doc| serde_yaml::from_str::<Value>(doc).expect("CRD YAML"))
        .map(|crd| {
            let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
            respell_rules(&mut schema);
            (
                crd["spec"]["names"]["kind"].as_str().unwrap().to_owned(),
                schema,
            )
        })
        .collect()
}

/// One object (and, for an update, the object it replaces) and the CEL verdict: `None` when
/// every rule must hold, else a fragment of the expected message.
struct CelCase {
    kind: &'static str,
    what: &'static str,
    old: Option<Value>,
    new: Value,
    expect: Option<&'static str>,
}

fn create(
    kind: &'static str,
    what: &'static str,
    patch: Value,
    expect: Option<&'static str>,
) -> CelCase {
    CelCase {
        kind,
        what,
        old: None,
        new: with(kind, patch),
        expect,
    }
}

fn update(
    kind: &'static str,
    what: &'static str,
    old: Value,
    new: Value,
    expect: Option<&'static str>,
) -> CelCase {
    CelCase {
        kind,
        what,
        old: Some(with(kind, old)),
        new: with(kind, new),
        expect,
    }
}

#[rustfmt::skip]
fn cel_cases() -> Vec<CelCase> {
    let token = json!({"secretRef": {"name": "s", "key": "k"}});
    let entrust = json!({"applicationId": "a", "sharedSecretRef": {"name": "s", "key": "k"}});
    let exactly_one = Some("set exactly one authentication method");
    let mut cases = vec![
        // --- IdentityApi
        create("IdentityApi", "bearer token only", json!({}), None),
        create("IdentityApi", "no auth method", json!({"auth": {"bearerToken": null}}), exactly_one),
        create("IdentityApi", "two auth methods", json!({"auth": {"entrustAdminApi": entrust}}), exactly_one),
        create("IdentityApi", "three auth methods", json!({"auth": {"entrustAdminApi": entrust, "vcdApiToken": {"org": "o", "refreshTokenSecretRef": {"name": "s", "key": "k"}}}}), exactly_one),
        create("IdentityApi", "xelion without tenant", json!({"provider": "xelion", "auth": {"bearerToken": token}}), Some("spec.tenant is required for the xelion provider")),
        create("IdentityApi", "xelion with tenant", json!({"provider": "xelion", "tenant": "master"}), None),
        create("IdentityApi", "ftp url", json!({"url": "ftp://boruta.example"}), Some("url must start with http:// or https://")),
        create("IdentityApi", "url without scheme", json!({"url": "boruta.example"}), Some("url must start with http:// or https://")),
        create("IdentityApi", "plain http url", json!({"url": "http://127.0.0.1:8080/boruta"}), None),
        // --- IdentityBackend
        create("IdentityBackend", "Ldap without LDAP settings", json!({"type": "Ldap"}), Some("an Ldap backend needs ldapHost, ldapUserRdnAttribute and ldapBaseDn")),
        create("IdentityBackend", "Ldap without base DN", json!({"type": "Ldap", "ldapHost": "ldap", "ldapUserRdnAttribute": "uid"}), Some("an Ldap backend needs ldapHost")),
        create("IdentityBackend", "complete Ldap", json!({"type": "Ldap", "ldapHost": "ldap", "ldapUserRdnAttribute": "uid", "ldapBaseDn": "dc=x"}), None),
        update("IdentityBackend", "backendId changed", json!({"backendId": "b1"}), json!({"backendId": "b2"}), Some("backendId is immutable")),
        update("IdentityBackend", "backendId removed", json!({"backendId": "b1"}), json!({}), Some("backendId is immutable")),
        update("IdentityBackend", "backendId set later (adopt)", json!({}), json!({"backendId": "b1"}), None),
        update("IdentityBackend", "name edited", json!({"backendId": "b1"}), json!({"backendId": "b1", "name": "renamed"}), None),
        create("IdentityBackend", "client_secret in the spec", json!({"federatedServers": [{"name": "idp", "client_id": "c", "base_url": "u", "clientSecretRef": {"name": "s", "key": "k"}, "client_secret": "plain"}]}), Some("client_secret does not belong in a spec")),
        create("IdentityBackend", "federated server with clientSecretRef", json!({"federatedServers": [{"name": "idp", "client_id": "c", "base_url": "u", "clientSecretRef": {"name": "s", "key": "k"}}]}), None),
        create("IdentityBackend", "bcrypt option under argon2 (the default)", json!({"passwordHashingAlg": null, "passwordHashingOpts": {"log_rounds": 12}}), Some("argon2 (the default passwordHashingAlg) takes")),
        create("IdentityBackend", "pbkdf2 format under argon2", json!({"passwordHashingOpts": {"format": "hex"}}), Some("argon2 (the default passwordHashingAlg) takes")),
        create("IdentityBackend", "argon2 options", json!({"passwordHashingOpts": {"t_cost": 3, "m_cost": 16, "format": "encoded", "hashlen": 32, "argon2_type": 2}}), None),
        create("IdentityBackend", "argon2 option under bcrypt", json!({"passwordHashingAlg": "bcrypt", "passwordHashingOpts": {"t_cost": 3}}), Some("bcrypt takes the passwordHashingOpts log_rounds and legacy")),
        create("IdentityBackend", "bcrypt options", json!({"passwordHashingAlg": "bcrypt", "passwordHashingOpts": {"log_rounds": 12, "legacy": false}}), None),
        create("IdentityBackend", "argon2 format under pbkdf2", json!({"passwordHashingAlg": "pbkdf2", "passwordHashingOpts": {"format": "encoded"}}), Some("pbkdf2 takes the passwordHashingOpts")),
        create("IdentityBackend", "pbkdf2 options", json!({"passwordHashingAlg": "pbkdf2", "passwordHashingOpts": {"salt_len": 16, "format": "django", "digest": "sha512", "length": 64}}), None),
        create("IdentityBackend", "options of an Ldap backend are Boruta's to ignore", json!({"type": "Ldap", "ldapHost": "ldap", "ldapUserRdnAttribute": "uid", "ldapBaseDn": "dc=x", "passwordHashingOpts": {"log_rounds": 12}}), None),
        // --- OrgConnection
        update("OrgConnection", "organizationId changed", json!({}), json!({"organizationId": "org_2"}), Some("organizationId is immutable")),
        update("OrgConnection", "connectionId changed", json!({}), json!({"connectionId": "con_2"}), Some("connectionId is immutable")),
        update("OrgConnection", "access level edited", json!({}), json!({"organizationAccessLevel": "full"}), None),
        // --- LdapSettings
        create("LdapSettings", "DEFINED without definedSettings", json!({"definedSettings": null}), Some("settingsSource DEFINED needs definedSettings")),
        create("LdapSettings", "enabled without settingsSource", json!({"settingsSource": null}), Some("enabled LDAP needs a settingsSource")),
        create("LdapSettings", "disabled without settingsSource", json!({"enabled": false, "settingsSource": null, "definedSettings": null}), None),
        create("LdapSettings", "INHERIT_SYSTEM", json!({"settingsSource": "INHERIT_SYSTEM", "definedSettings": null}), None),
        create("LdapSettings", "deletionPolicy set", json!({"deletionPolicy": "Delete"}), Some("deletionPolicy does not apply")),
        // --- AdminApiApp
        create("AdminApiApp", "neither roleId nor spRoleId", json!({"roleId": null}), Some("set exactly one of roleId and spRoleId")),
        create("AdminApiApp", "both roleId and spRoleId", json!({"spRoleId": "sp-1"}), Some("set exactly one of roleId and spRoleId")),
        create("AdminApiApp", "spRoleId only", json!({"roleId": null, "spRoleId": "sp-1"}), None),
        create("AdminApiApp", "logo and logoFrom", json!({"logo": "aGk=", "logoFrom": {"name": "logo", "key": "png"}}), Some("set at most one of logo and logoFrom")),
        update("AdminApiApp", "applicationId changed", json!({"applicationId": "a1"}), json!({"applicationId": "a2"}), Some("applicationId is immutable")),
        update("AdminApiApp", "applicationId removed", json!({"applicationId": "a1"}), json!({}), Some("applicationId is immutable")),
        update("AdminApiApp", "applicationTemplateId changed", json!({"applicationTemplateId": "t1"}), json!({"applicationTemplateId": "t2"}), Some("applicationTemplateId is immutable")),
        update("AdminApiApp", "applicationTemplateId removed", json!({"applicationTemplateId": "t1"}), json!({}), Some("applicationTemplateId is immutable")),
        update("AdminApiApp", "role switched", json!({}), json!({"roleId": null, "spRoleId": "sp-1"}), None),
        // --- AuthenticationSettings
        create("AuthenticationSettings", "deletionPolicy set", json!({"deletionPolicy": "Orphan"}), Some("deletionPolicy does not apply")),
        update("AuthenticationSettings", "link added", json!({}), json!({"openIdConnections": [{"oid": "1001"}]}), None),
    ];
    // Every managed kind: the IdentityApi a resource belongs to never changes.
    for kind in MANAGED {
        cases.push(update(
            kind,
            "apiRef changed",
            json!({}),
            json!({"apiRef": {"name": "other"}}),
            Some("apiRef is immutable"),
        ));
        cases.push(update(kind, "unchanged", json!({}), json!({}), None));
    }
    cases
}

#[test]
fn cel_rules_reject_with_their_messages() {
    let schemas = schemas();
    let schema = |kind: &str| {
        &schemas
            .iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"))
            .1
    };
    let validator = Validator::new();
    let mut failures = Vec::new();
    let cases = cel_cases();
    for case in &cases {
        let new = document(case.kind, "x", case.new.clone());
        let old = case.old.clone().map(|spec| document(case.kind, "x", spec));
        let errors: Vec<String> = match validator.validate(schema(case.kind), &new, old.as_ref()) {
            Ok(()) => vec![],
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        };
        match case.expect {
            None if !errors.is_empty() => failures.push(format!(
                "{} / {}: rejected: {errors:?}",
                case.kind, case.what
            )),
            Some(fragment) if !errors.iter().any(|e| e.contains(fragment)) => {
                failures.push(format!(
                    "{} / {}: want {fragment:?}, got {errors:?}",
                    case.kind, case.what
                ))
            }
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every kind has a case, and the valid bases pass every rule.
    for kind in KINDS {
        assert!(
            cases.iter().any(|c| c.kind == kind && c.expect.is_some()),
            "{kind}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Semantically bad references: the operator against the simulator, one table over all kinds
// ---------------------------------------------------------------------------------------------

/// A managed kind, the provider it needs and a spec the simulator can satisfy.
struct Managed {
    kind: &'static str,
    provider: &'static str,
    /// The simulator's name for its API (`/_sim/log?api=`).
    sim_api: &'static str,
    spec: Value,
    /// Whether a resource of this kind carries a finalizer once it exists remotely.
    finalizer: bool,
}

fn managed_kinds() -> Vec<Managed> {
    vec![
        Managed {
            kind: "IdentityBackend",
            provider: "boruta",
            sim_api: "boruta",
            spec: json!({"name": "bad-ref-backend", "passwordHashingAlg": "argon2"}),
            finalizer: true,
        },
        Managed {
            kind: "OrgConnection",
            provider: "auth0",
            sim_api: "auth0",
            spec: json!({"organizationId": "org_acme", "connectionId": "con_saml",
                         "organizationAccessLevel": "full"}),
            finalizer: true,
        },
        Managed {
            kind: "LdapSettings",
            provider: "vcd",
            sim_api: "vcd",
            spec: json!({"enabled": true, "settingsSource": "INHERIT_SYSTEM",
                         "disableOnDelete": true}),
            finalizer: true,
        },
        Managed {
            kind: "AdminApiApp",
            provider: "entrust",
            sim_api: "entrust",
            spec: json!({"name": "bad-ref-app", "roleId": "role-1",
                         "sharedSecretTarget": {"name": "bad-ref-app-credentials"}}),
            finalizer: true,
        },
        Managed {
            kind: "AuthenticationSettings",
            provider: "xelion",
            sim_api: "xelion",
            spec: json!({"securityDomain": "corp"}),
            finalizer: false,
        },
    ]
}

fn resource(m: &Managed, name: &str, api: &str) -> Value {
    let mut spec = m.spec.clone();
    spec["apiRef"] = json!({"name": api});
    document(m.kind, name, spec)
}

fn what(m: &Managed, name: &str) -> String {
    format!("{}/{name}", m.kind.to_lowercase())
}

fn sim_seed() -> Value {
    json!({
        "auth0": {
            "organizations": [{"id": "org_acme", "name": "acme"}],
            "connections": [{"id": "con_saml", "name": "corp-saml", "strategy": "samlp"}],
        },
        "vcd": {"orgs": [{"name": VCD_ORG, "id": "5d1c7e0a-3b2f-4c8d-9e6a-7f8091a2b3c4"}]},
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_references_are_reported_without_calling_the_identity_api() {
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "bad-refs");
    let sim = SimProcess::start(SimOptions::default());
    sim.seed(sim_seed()).await;
    let kinds = managed_kinds();
    let providers: Vec<&str> = kinds.iter().map(|m| m.provider).collect();
    let started = Instant::now();

    // Per provider: an IdentityApi whose Secret does not exist, and one whose Secret lacks
    // the key. Neither can authenticate, so not even the IdentityApi controller calls out.
    install_crds(cluster);
    apply(
        cluster,
        &ns,
        &secret("present", "other-key", "not-used-value").to_string(),
    );
    for p in &providers {
        let nosecret = identity_api(&sim, &format!("nosecret-{p}"), p, "absent-secret", "k");
        apply(cluster, &ns, &nosecret.to_string());
        let nokey = identity_api(&sim, &format!("nokey-{p}"), p, "present", "absent-key");
        apply(cluster, &ns, &nokey.to_string());
    }
    // (reference, expected reason, fragments of the message) per kind.
    let table = |m: &Managed, i: usize| {
        let other = providers[(i + 1) % providers.len()];
        vec![
            (
                "no-api",
                "absent".to_owned(),
                "IdentityApiNotFound",
                vec!["IdentityApi \"absent\" not found".to_owned()],
            ),
            (
                "wrong-api",
                format!("nosecret-{other}"),
                "WrongProvider",
                vec![format!(
                    "is a {other} connection, but {} needs a {} one",
                    m.kind, m.provider
                )],
            ),
            (
                "no-secret",
                format!("nosecret-{}", m.provider),
                "SecretNotFound",
                vec!["Secret \"absent-secret\" not found".to_owned()],
            ),
            (
                "no-key",
                format!("nokey-{}", m.provider),
                "SecretKeyNotFound",
                vec!["key \"absent-key\" not found in Secret \"present\"".to_owned()],
            ),
        ]
    };
    for (i, m) in kinds.iter().enumerate() {
        for (case, api, _, _) in table(m, i) {
            let name = format!("{}-{case}", m.provider);
            apply(cluster, &ns, &resource(m, &name, &api).to_string());
        }
    }
    let op = Operator::start(cluster, &ns, &[]);

    let mut checked = 0;
    let mut versions = Vec::new();
    for (i, m) in kinds.iter().enumerate() {
        for (case, _, reason, fragments) in table(m, i) {
            let name = format!("{}-{case}", m.provider);
            let obj = wait_condition(
                cluster,
                &ns,
                &what(m, &name),
                "Ready",
                "False",
                Some(reason),
                Duration::from_secs(45),
            )
            .await;
            let (_, _, message) = condition(&obj, "Ready").unwrap();
            for f in &fragments {
                assert!(
                    message.contains(f.as_str()),
                    "{} {name}: {message:?} lacks {f:?}",
                    m.kind
                );
            }
            let (synced, synced_reason, _) = condition(&obj, "Synced").expect("Synced condition");
            assert_eq!(
                (synced.as_str(), synced_reason.as_str()),
                ("False", reason),
                "{} {name}",
                m.kind
            );
            // Nothing was created or adopted, so nothing can be left behind by a deletion.
            assert!(
                obj["status"]["externalId"].is_null(),
                "{} {name}: {obj}",
                m.kind
            );
            wait_event(&ns, &name, reason, &fragments[0]).await;
            versions.push((what(m, &name), obj["metadata"]["resourceVersion"].clone()));
            checked += 1;
        }
    }
    // No hot loop: a few resync intervals (2 s) later, no status was rewritten...
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (what, version) in &versions {
        let now = get_json(&ns, cluster, what).expect("still there");
        assert_eq!(
            &now["metadata"]["resourceVersion"], version,
            "{what} rewritten"
        );
    }
    // ... and not one call reached any identity API.
    let log = sim.log().await;
    let entries = log["entries"].as_array().cloned().unwrap_or_default();
    assert!(entries.is_empty(), "identity-API calls: {entries:#?}");
    // The message of a missing Secret key never shows what the Secret holds.
    assert!(!op.log().contains("not-used-value"));
    eprintln!(
        "{checked} bad references over {} kinds reported without an identity-API call in {:.1?}",
        kinds.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_through_a_connection_that_cannot_work_finishes_after_the_grace_period() {
    // Operator::start passes --deletion-grace-period 3s.
    const GRACE: Duration = Duration::from_secs(3);
    let cluster = ensure_cluster();
    let ns = TestNamespace::new(cluster, "bad-refs-delete");
    let sim = SimProcess::start(SimOptions::default());
    sim.seed(sim_seed()).await;
    let kinds = managed_kinds();
    install_crds(cluster);
    for m in &kinds {
        let secret_name = format!("{}-credentials", m.provider);
        apply(
            cluster,
            &ns,
            &secret(&secret_name, "secret", &sim.options.client_secret).to_string(),
        );
        let api = identity_api(
            &sim,
            &format!("ok-{}", m.provider),
            m.provider,
            &secret_name,
            "secret",
        );
        apply(cluster, &ns, &api.to_string());
        apply(
            cluster,
            &ns,
            &resource(
                m,
                &format!("{}-gone", m.provider),
                &format!("ok-{}", m.provider),
            )
            .to_string(),
        );
    }
    let _op = Operator::start(cluster, &ns, &[]);
    let mut ids = Vec::new();
    for m in &kinds {
        let name = format!("{}-gone", m.provider);
        let obj = wait_condition(
            cluster,
            &ns,
            &what(m, &name),
            "Ready",
            "True",
            None,
            Duration::from_secs(45),
        )
        .await;
        let id = obj["status"]["externalId"]
            .as_str()
            .expect("linked")
            .to_owned();
        ids.push(id);
        let finalizers = obj["metadata"]["finalizers"].as_array().map_or(0, Vec::len);
        assert_eq!(finalizers > 0, m.finalizer, "{} finalizers: {obj}", m.kind);
    }
    let since = sim.log().await["lastSeq"].as_u64().unwrap_or(0);

    // Half the connections lose their credentials (revoked: the Secret now holds a value the
    // vendor refuses), half their API (gone: nothing listens at the URL any more).
    for (i, m) in kinds.iter().enumerate() {
        if i % 2 == 0 {
            let revoked = secret(&format!("{}-credentials", m.provider), "secret", "revoked");
            apply(cluster, &ns, &revoked.to_string());
        } else {
            let api = format!("identityapi/ok-{}", m.provider);
            let gone = format!(
                r#"{{"spec":{{"url":"http://127.0.0.1:9/{}"}}}}"#,
                m.provider
            );
            ns.kubectl_ok(&["patch", &api, "--type", "merge", "-p", &gone]);
        }
    }
    // The operator has seen the loss before the deletions.
    for (i, m) in kinds.iter().enumerate() {
        let name = format!("{}-gone", m.provider);
        // An API that does not answer at all: the connection backs off as a whole.
        let reason = if i % 2 == 0 {
            "AuthenticationFailed"
        } else {
            "IdentityApiUnavailable"
        };
        wait_condition(
            cluster,
            &ns,
            &what(m, &name),
            "Synced",
            "False",
            Some(reason),
            Duration::from_secs(45),
        )
        .await;
    }
    let deleted_at = Instant::now();
    for m in &kinds {
        ns.kubectl_ok(&[
            "delete",
            &what(m, &format!("{}-gone", m.provider)),
            "--wait=false",
        ]);
    }
    let mut took = Vec::new();
    for ((m, id), i) in kinds.iter().zip(&ids).zip(0..) {
        let name = format!("{}-gone", m.provider);
        support::operator::wait_for(
            Duration::from_secs(60),
            &format!("{} {name} to be gone", m.kind),
            || async {
                get_json(&ns, cluster, &what(m, &name))
                    .is_none()
                    .then_some(())
            },
        )
        .await;
        took.push((m.kind, deleted_at.elapsed()));
        if m.finalizer {
            // It said so before it gave up, and then named what it left behind.
            let reason = if i % 2 == 0 {
                "AuthenticationFailed"
            } else {
                "IdentityApiUnavailable"
            };
            let warning = wait_event(&ns, &name, reason, "left in place at").await;
            assert!(warning.contains(id.as_str()), "{warning}");
            let event = wait_event(&ns, &name, "Orphaned", "left in place after").await;
            assert!(event.contains(id.as_str()), "{} {name}: {event}", m.kind);
            assert!(!event.contains(&sim.options.client_secret), "{event}");
        }
    }
    // Never a stuck finalizer (each was gone within the wait above), and not before the grace
    // period for the kinds that had something to delete.
    for ((kind, t), m) in took.iter().zip(&kinds) {
        if m.finalizer {
            // deletionTimestamp has whole seconds, so the operator may count up to a second
            // more than this test's clock did.
            assert!(
                *t >= GRACE - Duration::from_secs(1),
                "{kind} finished in {t:?}, before the grace period"
            );
        }
    }
    // Orphaned: nothing was written (no DELETE, no disabling PUT) after the loss.
    for m in &kinds {
        let log = sim.log_since(m.sim_api, since).await;
        assert_eq!(
            support::operator::count_writes(&log, m.sim_api),
            0,
            "{}: {log:#}",
            m.kind
        );
    }
    eprintln!("deletions finished after: {took:?}");
}
