//! The custom resources: one module per kind, holding what is specific to it, and the one
//! list of managed kinds ([`MANAGED`]) from which the CRDs and the controllers are produced.
//! Adding a kind is a module and a line in that list.

pub mod admin_api_app;
pub mod authentication_settings;
pub mod cluster_identity_api;
pub mod collection;
pub mod common;
pub mod identity_api;
pub mod identity_backend;
pub mod ldap_settings;
pub mod org_connection;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::engine::registry::{ManagedKind, Registered};

/// Every managed kind, in the order of their CRDs.
pub static MANAGED: &[&dyn ManagedKind] = &[
    &Registered::<identity_backend::Boruta>::KIND,
    &Registered::<org_connection::Auth0>::KIND,
    &Registered::<ldap_settings::Vcd>::KIND,
    &Registered::<admin_api_app::Entrust>::KIND,
    &Registered::<authentication_settings::Xelion>::KIND,
];

/// API group of every kind.
pub const GROUP: &str = "identity.operator.dev";

/// Every CRD this operator serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let connections = [
        identity_api::IdentityApi::crd(),
        cluster_identity_api::ClusterIdentityApi::crd(),
    ];
    connections
        .into_iter()
        .chain(MANAGED.iter().map(|kind| kind.crd()))
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
