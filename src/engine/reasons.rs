//! Every `reason` the operator can put in a `Ready` or `Synced` condition, in one list.
//!
//! Three readers depend on it being complete: the troubleshooting page
//! (`docs/troubleshooting.md`, a section per reason, checked by `tests/docs.rs`), the Argo CD
//! health script (which reasons clear by themselves, checked by `tests/argocd_health.rs`) and
//! the alerts' runbook links. Most reasons come from [`Error::reason`]; the test below walks
//! one error of every variant through it, so a new variant cannot be forgotten here.

use super::Error;

/// What a reason tells the person looking at a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// All is well: the condition is `True`.
    Success,
    /// A failure the operator retries by itself; it clears without anyone acting.
    Transient,
    /// A failure that lasts until someone changes something: the spec, a Secret, the
    /// IdentityApi or the identity system.
    NeedsChange,
    /// Writes are stopped on purpose (the pause annotation).
    Paused,
}

/// One condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason {
    pub name: &'static str,
    pub meaning: Meaning,
}

const fn reason(name: &'static str, meaning: Meaning) -> Reason {
    Reason { name, meaning }
}

use Meaning::{NeedsChange, Paused, Success, Transient};

/// Every reason, successes first, then failures in the order a reconcile meets them.
const REASONS: &[Reason] = &[
    // Set by the engine itself (reconcile.rs, controller.rs).
    reason("Synced", Success),
    reason("ReconcileSuccess", Success),
    reason("Authenticated", Success),
    reason("Observed", Success),
    reason("Drifted", NeedsChange),
    reason("Paused", Paused),
    // Error::reason().
    reason("IdentityApiNotFound", NeedsChange),
    reason("WrongProvider", NeedsChange),
    reason("SecretNotFound", NeedsChange),
    reason("SecretKeyNotFound", NeedsChange),
    reason("SecretNotText", NeedsChange),
    reason("ConfigMapNotFound", NeedsChange),
    reason("ConfigMapKeyNotFound", NeedsChange),
    reason("InvalidSpec", NeedsChange),
    reason("RemoteNotFound", NeedsChange),
    reason("Conflict", NeedsChange),
    reason("Rejected", NeedsChange),
    reason("RateLimited", Transient),
    reason("AuthenticationFailed", NeedsChange),
    reason("CertificateNotTrusted", NeedsChange),
    reason("Unauthorized", NeedsChange),
    reason("IdentityApiError", Transient),
    reason("KubernetesError", Transient),
    // Being added with the engine's circuit breaker, write-loop guard, ClusterIdentityApi and
    // deletion protection: documented ahead so that they arrive with their sections.
    reason("WriteNotConverging", NeedsChange),
    reason("IdentityApiUnavailable", Transient),
    reason("ConnectionNotAllowed", NeedsChange),
    reason("InUse", NeedsChange),
];

/// Every reason the operator can set.
pub fn reasons() -> &'static [Reason] {
    REASONS
}

/// The reason called `name`, if the operator can set it.
pub fn find(name: &str) -> Option<Reason> {
    REASONS.iter().find(|r| r.name == name).copied()
}

/// An error's reason as listed here (every reason of [`Error::reason`] is: see the test).
pub fn of(err: &Error) -> Option<Reason> {
    find(err.reason())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::identity::ApiError;

    fn answered(status: u16) -> ApiError {
        ApiError::Status {
            method: "GET".into(),
            path: "/x".into(),
            status,
            message: "m".into(),
        }
    }

    fn status(status: u16) -> Error {
        Error::Api(answered(status))
    }

    /// One error of every variant of [`Error`], and of every case `Error::reason` tells apart
    /// inside `Error::Api`. Each error names the next one in a match without a wildcard: a
    /// variant added to `Error` or `ApiError` does not compile until it is linked into this
    /// chain, and then its reason must be listed.
    fn one_of_each() -> Vec<Error> {
        let mut all = vec![Error::ApiNotFound("api".into())];
        loop {
            let next = match all.last().expect("the chain has a start") {
                Error::ApiNotFound(_) => Error::WrongProvider {
                    name: "api".into(),
                    kind: "IdentityBackend",
                    actual: "auth0",
                    expected: "boruta",
                },
                Error::WrongProvider { .. } => Error::SecretNotFound("s".into()),
                Error::SecretNotFound(_) => Error::SecretKeyNotFound {
                    name: "s".into(),
                    key: "k".into(),
                },
                Error::SecretKeyNotFound { .. } => Error::SecretNotText {
                    name: "s".into(),
                    key: "k".into(),
                },
                Error::SecretNotText { .. } => Error::ConfigMapNotFound("c".into()),
                Error::ConfigMapNotFound(_) => Error::ConfigMapKeyNotFound {
                    name: "c".into(),
                    key: "k".into(),
                },
                Error::ConfigMapKeyNotFound { .. } => Error::InvalidSpec("x".into()),
                Error::InvalidSpec(_) => Error::RemoteNotFound("x".into()),
                Error::RemoteNotFound(_) => Error::Conflict("x".into()),
                Error::Conflict(_) => Error::Rejected(answered(422)),
                Error::Rejected(_) => Error::Api(ApiError::RateLimited {
                    retry_after: Duration::from_secs(1),
                }),
                Error::Api(api) => match api {
                    ApiError::RateLimited { .. } => {
                        Error::Api(ApiError::Authentication("x".into()))
                    }
                    ApiError::Authentication(_) => {
                        Error::Api(ApiError::UntrustedCertificate("x".into()))
                    }
                    ApiError::UntrustedCertificate(_) => status(401),
                    ApiError::Status { status: 401, .. } => status(403),
                    ApiError::Status { status: 403, .. } => status(503),
                    ApiError::Status { .. } => Error::Api(ApiError::Transport("x".into())),
                    ApiError::Transport(_) => Error::Api(ApiError::Decode {
                        path: "/x".into(),
                        message: "x".into(),
                    }),
                    ApiError::Decode { .. } => Error::Kube(kube::Error::Service("x".into())),
                },
                Error::Kube(_) => return all,
            };
            all.push(next);
        }
    }

    #[test]
    fn every_error_reason_is_listed() {
        let errors = one_of_each();
        assert!(errors.len() >= 19, "the chain was cut short: {errors:?}");
        for err in &errors {
            assert!(
                of(err).is_some(),
                "{err:?} has reason {:?}: add it to REASONS (and a section to \
                 docs/troubleshooting.md)",
                err.reason()
            );
        }
    }

    #[test]
    fn an_errors_meaning_follows_how_the_engine_retries_it() {
        for err in one_of_each() {
            let meaning = of(&err).unwrap().meaning;
            assert_ne!(meaning, Success, "{err:?}");
            assert_ne!(meaning, Paused, "{err:?}");
            // What clears by itself is what the engine keeps Ready through (`is_transient`),
            // except a 4xx whose cause may be fixed on the identity system's side.
            if err.is_transient() {
                assert_eq!(meaning, Transient, "{err:?}");
            }
            if err.is_terminal() {
                assert_eq!(meaning, NeedsChange, "{err:?}");
            }
        }
    }

    #[test]
    fn names_are_unique_condition_reasons() {
        for (i, r) in REASONS.iter().enumerate() {
            assert!(
                REASONS[..i].iter().all(|o| o.name != r.name),
                "{} twice",
                r.name
            );
            // Kubernetes' condition reason: CamelCase, starting with a letter.
            assert!(
                r.name.starts_with(|c: char| c.is_ascii_uppercase())
                    && r.name.chars().all(|c| c.is_ascii_alphanumeric()),
                "{}",
                r.name
            );
        }
    }
}
