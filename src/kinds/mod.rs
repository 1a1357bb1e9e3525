//! The custom resources: one module per kind, holding what is specific to it.

pub mod admin_api_app;
pub mod authentication_settings;
pub mod common;
pub mod identity_api;
pub mod identity_backend;
pub mod ldap_settings;
pub mod org_connection;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// API group of every kind.
pub const GROUP: &str = "identity.operator.dev";

/// Every CRD this operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        identity_api::IdentityApi::crd(),
        identity_backend::IdentityBackend::crd(),
        org_connection::OrgConnection::crd(),
        ldap_settings::LdapSettings::crd(),
        admin_api_app::AdminApiApp::crd(),
        authentication_settings::AuthenticationSettings::crd(),
    ]
    .into_iter()
    .map(portable)
    .collect()
}

/// Makes a derived CRD acceptable to every Kubernetes version we support (1.20 to current):
/// - no `null` inside `enum` lists (schemars adds it for optional enums; `nullable` already
///   says it, and 1.20's CRD conversion chokes on a JSON null there);
/// - no schema `default`s: the operator applies its defaults itself, so the API server never
///   writes fields the user did not (which would also make Argo CD report OutOfSync).
fn portable(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("default");
                if let Some(serde_json::Value::Array(values)) = map.get_mut("enum") {
                    values.retain(|e| !e.is_null());
                }
                map.values_mut().for_each(walk);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    if let Some(versions) = value.pointer_mut("/spec/versions") {
        walk(versions);
    }
    serde_json::from_value(value).expect("a CRD deserializes")
}

/// The CRDs as one multi-document YAML stream (what `identity-operator crds` prints).
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD serializes to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}
