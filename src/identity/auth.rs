//! The vendors' authentication flows. Each returns a [`Token`] the client caches until shortly
//! before it expires; a 401 on an API call drops the cached token and logs in once more.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, SecretString};

/// Credentials resolved from an IdentityApi and its Secrets.
pub enum Credentials {
    Bearer(SecretString),
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        audience: Option<String>,
        scopes: Vec<String>,
    },
    VcdSession {
        org: String,
        username: String,
        password: SecretString,
        provider: bool,
    },
    VcdApiToken {
        org: String,
        refresh_token: SecretString,
    },
    Entrust {
        application_id: String,
        shared_secret: SecretString,
    },
    Xelion {
        user_name: String,
        password: SecretString,
        user_space: String,
    },
}

impl Credentials {
    /// Every secret value of these credentials (masked in any message built from an answer).
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Credentials::Bearer(token) => vec![token.expose()],
            Credentials::OAuth2 { client_secret, .. } => vec![client_secret.expose()],
            Credentials::VcdSession { password, .. } => vec![password.expose()],
            Credentials::VcdApiToken { refresh_token, .. } => vec![refresh_token.expose()],
            Credentials::Entrust { shared_secret, .. } => vec![shared_secret.expose()],
            Credentials::Xelion { password, .. } => vec![password.expose()],
        }
    }
}

/// An access token, with what is needed to keep it alive.
#[derive(Clone)]
pub struct Token {
    pub value: SecretString,
    /// When to stop using it (already shortened by a safety margin).
    pub refresh_at: Option<Instant>,
    /// Xelion: renew the session with this instead of logging in again.
    pub renewal: Option<SecretString>,
}

impl Token {
    pub fn is_fresh(&self) -> bool {
        self.refresh_at.is_none_or(|at| Instant::now() < at)
    }
}

/// Lifetime → the instant at which to renew: at 80 % of the lifetime, so calls in flight
/// never carry an expired token.
fn refresh_after(lifetime: Duration) -> Instant {
    Instant::now() + lifetime.mul_f64(0.8)
}

fn seconds_until(rfc3339: &str) -> Option<Duration> {
    let at: k8s_openapi::jiff::Timestamp = rfc3339.parse().ok()?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let secs = at.as_second() - now.as_second();
    Some(Duration::from_secs(secs.max(1) as u64))
}

/// Joins the IdentityApi's base URL and a vendor path; absolute URLs are kept as they are.
pub fn join_url(base: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_owned();
    }
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

pub(super) async fn login(
    http: &reqwest::Client,
    base: &str,
    tenant: Option<&str>,
    creds: &Credentials,
) -> Result<Token, ApiError> {
    match creds {
        Credentials::Bearer(token) => Ok(Token {
            value: token.clone(),
            refresh_at: None,
            renewal: None,
        }),
        Credentials::OAuth2 {
            token_url,
            client_id,
            client_secret,
            audience,
            scopes,
        } => {
            let mut form = vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.expose().to_owned()),
            ];
            if let Some(aud) = audience {
                form.push(("audience", aud.clone()));
            }
            if !scopes.is_empty() {
                form.push(("scope", scopes.join(" ")));
            }
            let req = http.post(join_url(base, token_url)).form(&form);
            let body = send_json(req, token_url).await?;
            oauth_token(&body, token_url)
        }
        Credentials::VcdSession {
            org,
            username,
            password,
            provider,
        } => {
            let path = if *provider {
                "cloudapi/1.0.0/sessions/provider"
            } else {
                "cloudapi/1.0.0/sessions"
            };
            let resp = http
                .post(join_url(base, path))
                .basic_auth(format!("{username}@{org}"), Some(password.expose()))
                .header("Accept", super::VCD_MEDIA_TYPE)
                .send()
                .await
                .map_err(ApiError::from_reqwest)?;
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = super::retry_after(resp.headers()).unwrap_or(Duration::from_secs(1));
                return Err(ApiError::RateLimited { retry_after: wait });
            }
            let token = resp
                .headers()
                .get("x-vmware-vcloud-access-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if !status.is_success() {
                let content_type = content_type(resp.headers());
                let bytes = resp.bytes().await.map_err(ApiError::from_reqwest)?;
                return Err(auth_failure(path, status, content_type.as_deref(), &bytes));
            }
            let token = token.ok_or_else(|| {
                ApiError::Authentication(format!("{path}: no x-vmware-vcloud-access-token header"))
            })?;
            // The session document does not carry the token's lifetime; VCD's default idle
            // timeout is 30 minutes, and a 401 makes us log in again anyway.
            Ok(Token {
                value: SecretString::new(token),
                refresh_at: Some(refresh_after(Duration::from_secs(30 * 60))),
                renewal: None,
            })
        }
        Credentials::VcdApiToken { org, refresh_token } => {
            let path = format!("oauth/tenant/{org}/token");
            let req = http
                .post(join_url(base, &path))
                .header("Accept", "application/json")
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.expose()),
                ]);
            let body = send_json(req, &path).await?;
            oauth_token(&body, &path)
        }
        Credentials::Entrust {
            application_id,
            shared_secret,
        } => {
            let path = "api/web/v1/adminapi/authenticate";
            let req = http.post(join_url(base, path)).json(
                &json!({"applicationId": application_id, "sharedSecret": shared_secret.expose()}),
            );
            let body = send_json(req, path).await?;
            session_token(&body, path, ("authToken", "authToken"), "expirationTime")
        }
        Credentials::Xelion {
            user_name,
            password,
            user_space,
        } => {
            let path = format!("api/v1/{}/me/login", tenant.unwrap_or("master"));
            let req = http.post(join_url(base, &path)).json(&json!({
                "userName": user_name,
                "password": password.expose(),
                "userSpace": user_space,
            }));
            let body = send_json(req, &path).await?;
            xelion_session(&body, &path)
        }
    }
}

/// Xelion allows one session per user and user space: a second login fails with 10005, so an
/// expiring session is renewed rather than replaced.
pub(super) async fn renew_xelion(
    http: &reqwest::Client,
    base: &str,
    tenant: Option<&str>,
    current: &Token,
) -> Result<Token, ApiError> {
    let renewal = current
        .renewal
        .as_ref()
        .ok_or_else(|| ApiError::Authentication("no renewal token".into()))?;
    let path = format!("api/v1/{}/me/renew", tenant.unwrap_or("master"));
    let req = http
        .request(Method::POST, join_url(base, &path))
        .header(
            "Authorization",
            format!("xelion {}", current.value.expose()),
        )
        .json(&Value::String(renewal.expose().to_owned()));
    let body = send_json(req, &path).await?;
    xelion_session(&body, &path)
}

/// Ends a Xelion session, so that the same user and user space may log in again at once.
pub(super) async fn logout_xelion(
    http: &reqwest::Client,
    base: &str,
    tenant: Option<&str>,
    current: &Token,
) -> Result<(), ApiError> {
    let path = format!("api/v1/{}/me/logout", tenant.unwrap_or("master"));
    let resp = http
        .post(join_url(base, &path))
        .header(
            "Authorization",
            format!("xelion {}", current.value.expose()),
        )
        .send()
        .await
        .map_err(ApiError::from_reqwest)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let content_type = content_type(resp.headers());
    let bytes = resp.bytes().await.map_err(ApiError::from_reqwest)?;
    Err(auth_failure(&path, status, content_type.as_deref(), &bytes))
}

fn xelion_session(body: &Value, path: &str) -> Result<Token, ApiError> {
    let token = ("authentication", "authentication token");
    Ok(Token {
        renewal: body
            .get("renewalToken")
            .and_then(Value::as_str)
            .map(|s| SecretString::new(s.to_owned())),
        ..session_token(body, path, token, "validUntil")?
    })
}

/// A session token from a login's answer: at the field `token` names (`(field, what it is)`),
/// refreshed ahead of the time at `expiry` (15 minutes from now when there is none).
fn session_token(
    body: &Value,
    path: &str,
    (token, what): (&str, &str),
    expiry: &str,
) -> Result<Token, ApiError> {
    let value = body
        .get(token)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Authentication(format!("{path}: no {what} in the answer")))?;
    let lifetime = body
        .get(expiry)
        .and_then(Value::as_str)
        .and_then(seconds_until)
        .unwrap_or(Duration::from_secs(15 * 60));
    Ok(Token {
        value: SecretString::new(value.to_owned()),
        refresh_at: Some(refresh_after(lifetime)),
        renewal: None,
    })
}

#[derive(Deserialize)]
struct OAuthTokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

fn oauth_token(body: &Value, path: &str) -> Result<Token, ApiError> {
    let parsed: OAuthTokenResponse = serde_json::from_value(body.clone())
        .map_err(|_| ApiError::Authentication(format!("{path}: no access_token in the answer")))?;
    Ok(Token {
        value: SecretString::new(parsed.access_token),
        refresh_at: Some(refresh_after(Duration::from_secs(
            parsed.expires_in.unwrap_or(3600),
        ))),
        renewal: None,
    })
}

async fn send_json(req: reqwest::RequestBuilder, path: &str) -> Result<Value, ApiError> {
    let resp = req.send().await.map_err(ApiError::from_reqwest)?;
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ApiError::RateLimited {
            retry_after: super::retry_after(resp.headers()).unwrap_or(Duration::from_secs(1)),
        });
    }
    let content_type = content_type(resp.headers());
    let bytes = resp.bytes().await.map_err(ApiError::from_reqwest)?;
    if !status.is_success() {
        return Err(auth_failure(path, status, content_type.as_deref(), &bytes));
    }
    // A token answer that is not JSON (a proxy's page, cut short) is no verdict on the
    // credentials: it counts as the token endpoint failing.
    serde_json::from_slice(&bytes).map_err(|_| ApiError::Unreadable {
        method: "POST".into(),
        path: path.to_owned(),
        status: status.as_u16(),
        detail: super::error::describe_unreadable(&bytes, content_type.as_deref()),
    })
}

fn content_type(headers: &reqwest::header::HeaderMap) -> Option<String> {
    super::content_type(headers).map(str::to_owned)
}

/// A login the authentication endpoint did not accept. A 4xx in the vendor's JSON is its
/// verdict on the credentials; a 5xx, or an answer that is not JSON (a proxy's page), says
/// the endpoint itself failed.
fn auth_failure(
    path: &str,
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) -> ApiError {
    let parsed = serde_json::from_slice::<Value>(body);
    match parsed {
        Err(_) if !body.is_empty() => ApiError::Unreadable {
            method: "POST".into(),
            path: path.to_owned(),
            status: status.as_u16(),
            detail: super::error::describe_unreadable(body, content_type),
        },
        parsed if status.is_server_error() => ApiError::Status {
            method: "POST".into(),
            path: path.to_owned(),
            status: status.as_u16(),
            message: parsed
                .ok()
                .and_then(|b| super::error::vendor_message(&b))
                .unwrap_or_default(),
        },
        parsed => {
            let detail = parsed
                .ok()
                .and_then(|b| super::error::vendor_message(&b))
                .unwrap_or_default();
            ApiError::Authentication(format!("{path} answered {}: {detail}", status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_prefix() {
        assert_eq!(
            join_url("http://h:1/auth0/", "/oauth/token"),
            "http://h:1/auth0/oauth/token"
        );
        assert_eq!(
            join_url("http://h:1/auth0", "api/v2/x"),
            "http://h:1/auth0/api/v2/x"
        );
        assert_eq!(
            join_url("http://h:1/a", "https://other/token"),
            "https://other/token"
        );
    }

    #[test]
    fn a_failing_token_endpoint_is_told_from_a_refusal() {
        let failure = |status: u16, content_type: Option<&str>, body: &str| {
            auth_failure(
                "oauth/token",
                StatusCode::from_u16(status).unwrap(),
                content_type,
                body.as_bytes(),
            )
        };
        let refused = failure(
            401,
            None,
            r#"{"error": "access_denied", "error_description": "Unauthorized"}"#,
        );
        assert!(
            matches!(refused, ApiError::Authentication(_)),
            "{refused:?}"
        );
        assert!(!refused.is_outage());
        let down = failure(503, None, r#"{"message": "Service Unavailable"}"#);
        assert!(matches!(down, ApiError::Status { status: 503, .. }) && down.is_outage());
        let page = failure(
            502,
            Some("text/html"),
            "<html><title>502 Bad Gateway</title></html>",
        );
        assert!(page.is_outage(), "{page:?}");
        assert!(page.to_string().contains("\"502 Bad Gateway\""), "{page}");
        let wrong_url = failure(
            404,
            Some("text/html"),
            "<html><title>404 Not Found</title></html>",
        );
        assert!(!wrong_url.is_outage(), "{wrong_url:?}");
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let t = oauth_token(&json!({"access_token": "t", "expires_in": 100}), "p").unwrap();
        let at = t.refresh_at.unwrap();
        assert!(at > Instant::now() + Duration::from_secs(70));
        assert!(at < Instant::now() + Duration::from_secs(81));
        assert!(oauth_token(&json!({"error": "x"}), "p").is_err());
    }
}
