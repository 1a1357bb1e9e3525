//! The one error type of a reconcile. Each variant knows its condition reason and what the
//! engine should do next.

use std::time::Duration;

use super::conditions::Reason;
use super::spec::ApiKind;
use crate::identity::ApiError;

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("{} {name:?} not found", kind.as_str())]
    ApiNotFound { kind: ApiKind, name: String },
    #[error("IdentityApi {name:?} is a {actual} connection, but {kind} needs a {expected} one")]
    WrongProvider {
        name: String,
        kind: &'static str,
        actual: &'static str,
        expected: &'static str,
    },
    #[error("{connection} does not allow this resource: {why}")]
    ConnectionNotAllowed { connection: String, why: String },
    #[error("Secret {0:?} not found")]
    SecretNotFound(String),
    #[error("key {key:?} not found in Secret {name:?}")]
    SecretKeyNotFound { name: String, key: String },
    #[error("key {key:?} in Secret {name:?} is empty: fill it in (an empty value is never sent)")]
    SecretKeyEmpty { name: String, key: String },
    #[error("value of key {key:?} in Secret {name:?} is not UTF-8 text")]
    SecretNotText { name: String, key: String },
    #[error("ConfigMap {0:?} not found")]
    ConfigMapNotFound(String),
    #[error("key {key:?} not found in ConfigMap {name:?}")]
    ConfigMapKeyNotFound { name: String, key: String },
    #[error("the spec cannot be applied: {0}")]
    InvalidSpec(String),
    #[error("{0}")]
    RemoteNotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A create refused because the object exists (a 409, Boruta's taken id) while no earlier
    /// attempt of the operator may have made it: someone else did since the lookup. The next
    /// lookup, a fresh one, finds it and adopts it as not the operator's.
    #[error("{0}")]
    AlreadyExists(String),
    #[error(
        "the remote object still differs at {} after {writes} writes in a row; no more writes until the spec, a Secret or the remote object changes",
        drift.join(", ")
    )]
    WriteNotConverging { drift: Vec<String>, writes: u32 },
    #[error("identity API rejected the change: {0}")]
    Rejected(ApiError),
    #[error("identity API: {0}")]
    Api(ApiError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        if e.is_validation() {
            Error::Rejected(e)
        } else {
            Error::Api(e)
        }
    }
}

/// What the engine does after a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Retry with per-object exponential backoff (transient failures).
    Backoff,
    /// Retry after the API's own delay.
    After(Duration),
    /// Do not retry until the resource, its IdentityApi or a referenced Secret changes.
    WaitForChange,
}

impl Error {
    /// The `reason` of the Ready/Synced conditions.
    pub fn reason(&self) -> Reason {
        match self {
            Error::ApiNotFound { .. } => Reason::IdentityApiNotFound,
            Error::WrongProvider { .. } => Reason::WrongProvider,
            Error::ConnectionNotAllowed { .. } => Reason::ConnectionNotAllowed,
            Error::SecretNotFound(_) => Reason::SecretNotFound,
            Error::SecretKeyNotFound { .. } | Error::SecretKeyEmpty { .. } => {
                Reason::SecretKeyNotFound
            }
            Error::SecretNotText { .. } => Reason::SecretNotText,
            Error::ConfigMapNotFound(_) => Reason::ConfigMapNotFound,
            Error::ConfigMapKeyNotFound { .. } => Reason::ConfigMapKeyNotFound,
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::RemoteNotFound(_) => Reason::RemoteNotFound,
            Error::Conflict(_) | Error::AlreadyExists(_) => Reason::Conflict,
            Error::WriteNotConverging { .. } => Reason::WriteNotConverging,
            Error::Rejected(_) => Reason::Rejected,
            Error::Api(ApiError::RateLimited { .. }) => Reason::RateLimited,
            Error::Api(ApiError::Unavailable { .. }) => Reason::IdentityApiUnavailable,
            Error::Api(ApiError::Authentication(_)) => Reason::AuthenticationFailed,
            Error::Api(ApiError::UntrustedCertificate(_)) => Reason::CertificateNotTrusted,
            Error::Api(ApiError::Status {
                status: 401 | 403, ..
            }) => Reason::Unauthorized,
            Error::Api(_) => Reason::IdentityApiError,
            Error::Kube(_) => Reason::KubernetesError,
        }
    }

    pub fn next(&self) -> Next {
        match self {
            Error::Api(ApiError::RateLimited { retry_after }) => Next::After(*retry_after),
            // The connection's next attempt: every resource using it waits for that one.
            Error::Api(ApiError::Unavailable { retry_in, .. }) => Next::After(*retry_in),
            Error::ApiNotFound { .. }
            | Error::WrongProvider { .. }
            | Error::ConnectionNotAllowed { .. }
            | Error::SecretNotFound(_)
            | Error::SecretKeyNotFound { .. }
            | Error::SecretKeyEmpty { .. }
            | Error::SecretNotText { .. }
            | Error::InvalidSpec(_)
            | Error::Rejected(_)
            | Error::Conflict(_)
            | Error::WriteNotConverging { .. } => Next::WaitForChange,
            // ConfigMaps are not watched: retrying is how a new one is noticed.
            Error::ConfigMapNotFound(_)
            | Error::ConfigMapKeyNotFound { .. }
            | Error::RemoteNotFound(_)
            | Error::AlreadyExists(_)
            | Error::Api(_)
            | Error::Kube(_) => Next::Backoff,
        }
    }

    /// Failures that say nothing about the remote object and clear by themselves: the
    /// identity API or Kubernetes unreachable, slow, overloaded or rate limiting, or an answer
    /// lost on the way (cut short, replaced by a proxy's page, of a shape we do not know).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Api(
                ApiError::RateLimited { .. }
                | ApiError::Transport(_)
                | ApiError::Unreachable(_)
                | ApiError::Unreadable { .. }
                | ApiError::Decode { .. }
                | ApiError::Unavailable { .. },
            )
            | Error::Kube(_) => true,
            Error::Api(ApiError::Status { status, .. }) => *status == 408 || *status >= 500,
            _ => false,
        }
    }

    /// Terminal errors are remembered in status so the same spec is not sent again.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Error::Rejected(_) | Error::InvalidSpec(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(e: ApiError) -> Error {
        Error::Api(e)
    }

    #[test]
    fn lost_answers_and_dead_apis_are_transient_never_terminal() {
        let unreadable = api(ApiError::Unreadable {
            method: "POST".into(),
            path: "api/backends".into(),
            status: 200,
            detail: "JSON cut short after 80 bytes".into(),
        });
        let decode = api(ApiError::Decode {
            path: "api/backends".into(),
            message: "invalid type: string \"…\", expected a sequence".into(),
        });
        let unavailable = api(ApiError::Unavailable {
            retry_in: Duration::from_secs(8),
            cause: "connection refused".into(),
        });
        for e in [&unreadable, &decode, &unavailable] {
            assert!(e.is_transient(), "{e}");
            assert!(!e.is_terminal(), "{e}");
        }
        assert_eq!(unreadable.reason(), Reason::IdentityApiError);
        assert_eq!(unreadable.next(), Next::Backoff);
        assert_eq!(unavailable.reason(), Reason::IdentityApiUnavailable);
        assert_eq!(unavailable.next(), Next::After(Duration::from_secs(8)));
        let exists = Error::AlreadyExists("made by someone else".into());
        assert_eq!(
            (exists.reason(), exists.next()),
            (Reason::Conflict, Next::Backoff)
        );
        assert!(!exists.is_terminal());
    }
}
