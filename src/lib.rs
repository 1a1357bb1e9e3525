//! identity-operator: declarative identity-provider configuration for Kubernetes.

pub mod engine;
pub mod export;
pub mod identity;
pub mod kinds;
pub mod kubectl;
pub mod metrics;
pub mod operator;
pub mod pack;
pub mod plan;
pub mod reference;
