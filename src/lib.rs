//! identity-operator: declarative identity-provider configuration for Kubernetes.

pub mod kinds;
