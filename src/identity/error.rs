//! Errors of identity-API calls, classified so the engine knows how to react.

use std::time::Duration;

use serde_json::Value;
use tokio_rustls::rustls::{self, CertificateError};

/// An identity-API call that failed.
#[derive(thiserror::Error, Debug)]
pub enum ApiError {
    /// The API answered with an error status.
    #[error("{method} {path} answered {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// The API asked us to slow down.
    #[error("rate limited, retry in {}s", retry_after.as_secs_f32())]
    RateLimited { retry_after: Duration },
    /// Logging in failed (bad credentials, wrong scope, unreachable token endpoint).
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// The call did not complete (connection refused, timeout, TLS).
    #[error("{0}")]
    Transport(String),
    /// The server's TLS certificate failed verification (unknown CA, wrong host name, expired).
    #[error("{0}")]
    UntrustedCertificate(String),
    /// The API answered something we could not understand.
    #[error("unexpected response from {path}: {message}")]
    Decode { path: String, message: String },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The API rejected the request itself: retrying the same request cannot succeed.
    pub fn is_validation(&self) -> bool {
        matches!(self.status(), Some(400 | 409 | 413 | 422))
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        // reqwest's Display includes the URL, never the body or headers, so no secret leaks here.
        if let Some(certificate) = certificate_error(&err) {
            let url = err
                .url()
                .map(|u| format!("{}://{}", u.scheme(), u.authority()))
                .unwrap_or_default();
            return ApiError::UntrustedCertificate(format!(
                "TLS certificate of {url} {}",
                explain_certificate_error(certificate)
            ));
        }
        let kind = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "connection failed"
        } else {
            "request failed"
        };
        let mut msg = format!("{kind}: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        ApiError::Transport(msg)
    }
}

/// The rustls certificate error somewhere in `err`'s source chain. rustls' error reaches us
/// wrapped in `io::Error`s (two, with reqwest 0.12), whose `source()` skips the wrapped error
/// itself, so each link is also unwrapped.
fn certificate_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CertificateError> {
    let mut next = Some(err);
    while let Some(link) = next {
        let mut e = link;
        loop {
            if let Some(rustls::Error::InvalidCertificate(c)) = e.downcast_ref() {
                return Some(c);
            }
            match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => e = inner,
                None => break,
            }
        }
        next = link.source();
    }
    None
}

/// What went wrong with the certificate, and what to do about it, in the user's words.
fn explain_certificate_error(err: &CertificateError) -> String {
    const FIX_CA: &str = "put the PEM CA bundle that signed it in a Secret and point \
        spec.tls.caSecretRef at it";
    match err {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            format!("is not trusted: it is not signed by a known CA; {FIX_CA}")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "is not valid for this host name: use a spec.url whose host the certificate names"
                .to_owned()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "is not valid yet (check the clocks)".to_owned()
        }
        CertificateError::Revoked => "has been revoked".to_owned(),
        other => format!("is not trusted ({other}); {FIX_CA}"),
    }
}

/// The human-readable message of a vendor error body. Every vendor names it differently:
/// Boruta `message` + `errors{field:[msg]}`, Auth0 `message`, Xelion `message`,
/// VCD `message` (with `minorErrorCode`), Entrust `errorMessage`.
pub fn vendor_message(body: &Value) -> Option<String> {
    let message = ["message", "errorMessage", "error_description", "error"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    let fields = body.get("errors").and_then(Value::as_object).map(|errors| {
        errors
            .iter()
            .map(|(field, msgs)| {
                let msgs = match msgs {
                    Value::Array(list) => list
                        .iter()
                        .map(|m| {
                            m.as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| m.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                    other => other
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| other.to_string()),
                };
                format!("{field}: {msgs}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    let code = ["errorCode", "minorErrorCode", "code"]
        .iter()
        .find_map(|k| body.get(*k))
        .map(|c| {
            c.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| c.to_string())
        });
    let mut out = match (message, fields) {
        (Some(m), Some(f)) if !f.is_empty() => format!("{m} ({f})"),
        (Some(m), _) => m,
        (None, Some(f)) if !f.is_empty() => f,
        _ => return None,
    };
    if let Some(code) = code {
        out = format!("{out} [{code}]");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_of_every_vendor_shape() {
        let boruta = json!({"code": "UNPROCESSABLE_ENTITY", "message": "Your request could not be processed.", "errors": {"name": ["can't be blank"]}});
        assert_eq!(
            vendor_message(&boruta).unwrap(),
            "Your request could not be processed. (name: can't be blank) [UNPROCESSABLE_ENTITY]"
        );
        let auth0 = json!({"statusCode": 400, "error": "Bad Request", "message": "Payload validation error", "errorCode": "invalid_body"});
        assert_eq!(
            vendor_message(&auth0).unwrap(),
            "Payload validation error [invalid_body]"
        );
        let xelion = json!({"errorCode": 10004, "message": "Invalid value", "info": "resource=PATCH /api/v1/master/server/authentication"});
        assert_eq!(vendor_message(&xelion).unwrap(), "Invalid value [10004]");
        let vcd = json!({"minorErrorCode": "BAD_REQUEST", "message": "Performing this change would strand imported users or groups.", "stackTrace": null});
        assert_eq!(
            vendor_message(&vcd).unwrap(),
            "Performing this change would strand imported users or groups. [BAD_REQUEST]"
        );
        let entrust = json!({"errorCode": "invalid_parameter", "errorMessage": "name is required", "parameters": []});
        assert_eq!(
            vendor_message(&entrust).unwrap(),
            "name is required [invalid_parameter]"
        );
        assert_eq!(vendor_message(&json!({})), None);
    }
}
