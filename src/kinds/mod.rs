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
    vec![
        identity_api::IdentityApi::crd(),
        identity_backend::IdentityBackend::crd(),
        org_connection::OrgConnection::crd(),
        ldap_settings::LdapSettings::crd(),
        admin_api_app::AdminApiApp::crd(),
        authentication_settings::AuthenticationSettings::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream (what `identity-operator crds` prints).
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD serializes to YAML"))
        .map(|doc| format!("---\n{doc}"))
        .collect()
}
