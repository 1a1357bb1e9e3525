//! Errors of identity-API calls, classified so the engine knows how to react.

use std::time::Duration;

use serde_json::Value;
use tokio_rustls::rustls::{self, CertificateError};

/// An identity-API call that failed.
#[derive(thiserror::Error, Debug, Clone)]
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
    /// The call did not complete (timeout, connection lost): the request may have been handled.
    #[error("{0}")]
    Transport(String),
    /// No connection to the API could be made (refused, no route, name not resolved): the
    /// request was never sent.
    #[error("{0}")]
    Unreachable(String),
    /// The server's TLS certificate failed verification (unknown CA, wrong host name, expired).
    #[error("{0}")]
    UntrustedCertificate(String),
    /// The API answered JSON of a shape we do not know (a 200 whose body has the wrong type).
    #[error("unexpected response from {path}: {message}")]
    Decode { path: String, message: String },
    /// The answer is not the API's JSON at all: a proxy's HTML page, JSON cut short. `detail`
    /// describes it without quoting it (see [`describe_unreadable`]).
    #[error("{method} {path} answered {status} with an unreadable answer: {detail}")]
    Unreadable {
        method: String,
        path: String,
        status: u16,
        detail: String,
    },
    /// The connection is backing off after its API could not be reached or its token endpoint
    /// failed: every call through it waits for the connection's next attempt (see
    /// [`super::breaker`]). The message stays the same while the cause does, so a retry
    /// rewrites no status and repeats no Event.
    #[error(
        "unavailable ({cause}); every resource using this IdentityApi waits for the connection's next attempt"
    )]
    Unavailable { retry_in: Duration, cause: String },
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

    /// A token endpoint that fails this way is down, not refusing our credentials: the whole
    /// connection backs off (see [`super::breaker`]).
    pub fn is_outage(&self) -> bool {
        match self {
            ApiError::Transport(_) | ApiError::Unreachable(_) => true,
            ApiError::Status { status, .. } | ApiError::Unreadable { status, .. } => {
                *status >= 500 || (200..300).contains(status)
            }
            _ => false,
        }
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
        let kind = if err.is_connect() {
            "connection failed"
        } else if err.is_timeout() {
            "timed out"
        } else {
            "request failed"
        };
        let mut msg = format!("{kind}: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        if err.is_connect() {
            ApiError::Unreachable(msg)
        } else {
            ApiError::Transport(msg)
        }
    }

    /// JSON of another shape than expected ([`Self::Decode`]), without the values serde quotes.
    pub fn decode(path: &str, err: &serde_json::Error) -> Self {
        ApiError::Decode {
            path: path.to_owned(),
            message: without_values(&err.to_string()),
        }
    }

    /// A body that did not decode as `T`: cut short or not JSON at all is [`Self::Unreadable`],
    /// JSON of another shape [`Self::Decode`]. Neither quotes the body.
    pub fn undecodable(
        method: &str,
        path: &str,
        status: u16,
        body: &[u8],
        err: &serde_json::Error,
    ) -> Self {
        if err.is_data() {
            ApiError::decode(path, err)
        } else {
            ApiError::Unreadable {
                method: method.to_owned(),
                path: path.to_owned(),
                status,
                detail: describe_unreadable(body, None),
            }
        }
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

/// What an answer that is not the API's JSON looks like, in a few words a user can act on,
/// never its content: an HTML page by its title (a proxy's "502 Bad Gateway"), JSON by where
/// it broke off, anything else by its size. A body may hold what an API returns in plain text
/// (Boruta's passwords) or echoes from the request, and none of it may reach a condition, an
/// Event or a log line; an HTML title is the one piece of text kept (a proxy's page, not the
/// API's data).
pub fn describe_unreadable(body: &[u8], content_type: Option<&str>) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim_start();
    let html = content_type.is_some_and(|t| t.contains("html")) || trimmed.starts_with('<');
    if body.is_empty() {
        "an empty body".to_owned()
    } else if html {
        match html_title(trimmed) {
            Some(title) => format!("an HTML page titled {title:?} ({} bytes)", body.len()),
            None => format!("an HTML page ({} bytes)", body.len()),
        }
    } else if trimmed.starts_with(['{', '[']) {
        match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) if e.is_eof() => {
                format!("JSON cut short after {} bytes", body.len())
            }
            Err(e) => format!(
                "malformed JSON at line {} column {} of {} bytes",
                e.line(),
                e.column(),
                body.len()
            ),
            Ok(_) => format!("{} bytes of JSON", body.len()),
        }
    } else {
        format!("{} bytes that are not JSON", body.len())
    }
}

/// The text of an HTML page's `<title>` (or first `<h1>`), tags removed, whitespace collapsed,
/// at most 60 characters.
fn html_title(page: &str) -> Option<String> {
    let lower = page.to_ascii_lowercase();
    let (open, close) = ["title", "h1"].iter().find_map(|tag| {
        let start = lower.find(&format!("<{tag}"))?;
        let open = start + lower[start..].find('>')? + 1;
        let close = open + lower[open..].find(&format!("</{tag}"))?;
        Some((open, close))
    })?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in page[open..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag && !c.is_control() => text.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let title: String = words.join(" ").chars().take(60).collect();
    (!title.is_empty()).then_some(title)
}

/// A serde message with the values it quotes left out (`invalid type: string "…", expected
/// u16`): the value could be anything the API sent, a password among them.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '"' {
            // Skip to the closing quote (serde writes strings with Debug escapes).
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
            out.push_str("…\"");
        }
    }
    out
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

    #[test]
    fn unreadable_answers_are_described_without_their_content() {
        let nginx = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
        assert_eq!(
            describe_unreadable(nginx, Some("text/html")),
            format!(
                "an HTML page titled \"502 Bad Gateway\" ({} bytes)",
                nginx.len()
            )
        );
        let h1_only =
            b"<body><h1>Service\n  <b>Unavailable</b></h1><p>secret-ish detail</p></body>";
        assert!(describe_unreadable(h1_only, None).contains("\"Service Unavailable\""));
        let cut = br#"{"data":{"id":"1","ldap_master_password":"hunter2","name":"#;
        let described = describe_unreadable(cut, Some("application/json"));
        assert_eq!(
            described,
            format!("JSON cut short after {} bytes", cut.len())
        );
        assert!(!describe_unreadable(b"{\"a\": tru}", None).contains("tru"));
        assert_eq!(
            describe_unreadable(b"password=hunter2", None),
            "16 bytes that are not JSON"
        );
        assert_eq!(describe_unreadable(b"", None), "an empty body");
    }

    #[test]
    fn decode_errors_never_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Backend {
            id: String,
            smtp_port: Option<u16>,
        }
        let wrong: &[u8] = br#"{"id": "1", "smtp_port": "hunter\"2"}"#;
        let err = serde_json::from_slice::<Backend>(wrong).unwrap_err();
        let e = ApiError::undecodable("GET", "api/backends/1", 200, wrong, &err);
        let text = e.to_string();
        assert!(matches!(e, ApiError::Decode { .. }), "{e:?}");
        assert!(!text.contains("hunter"), "{text}");
        assert!(text.contains("invalid type: string \"…\""), "{text}");

        let cut: &[u8] = br#"{"id": "1", "smtp_po"#;
        let err = serde_json::from_slice::<Backend>(cut).unwrap_err();
        let e = ApiError::undecodable("PUT", "api/backends/1", 200, cut, &err);
        assert!(
            matches!(e, ApiError::Unreadable { status: 200, .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "PUT api/backends/1 answered 200 with an unreadable answer: JSON cut short after {} bytes",
                cut.len()
            )
        );
    }

    #[test]
    fn outages_are_what_a_token_endpoint_cannot_help() {
        let status = |status| ApiError::Status {
            method: "POST".into(),
            path: "oauth/token".into(),
            status,
            message: String::new(),
        };
        assert!(status(503).is_outage());
        assert!(!status(401).is_outage());
        assert!(!status(400).is_outage());
        assert!(ApiError::Unreachable("refused".into()).is_outage());
        assert!(ApiError::Transport("timed out".into()).is_outage());
        assert!(!ApiError::Authentication("bad secret".into()).is_outage());
        let html = |status| ApiError::Unreadable {
            method: "POST".into(),
            path: "oauth/token".into(),
            status,
            detail: String::new(),
        };
        assert!(html(200).is_outage() && html(502).is_outage() && !html(404).is_outage());
    }
}
