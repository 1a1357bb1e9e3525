//! One HTTP client per IdentityApi: authentication with a cached token, a client-side rate
//! limit and concurrency cap, pacing from the vendors' rate-limit headers, a breaker that makes
//! the whole connection wait while its API is down, and classified errors.

pub mod auth;
pub mod breaker;
mod budget;
pub mod error;
pub mod lists;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;

pub use auth::{Credentials, Token};
pub use error::ApiError;

use crate::metrics::Metrics;

/// The identity system family a connection speaks. Each managed kind needs one provider.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Boruta admin API (IdentityBackend).
    Boruta,
    /// Auth0 Management API v2 (OrgConnection).
    Auth0,
    /// VMware Cloud Director / VCF Automation cloudapi (LdapSettings).
    Vcd,
    /// Entrust Identity as a Service administration API (AdminApiApp).
    Entrust,
    /// Xelion REST API v1 (AuthenticationSettings).
    Xelion,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Boruta => "boruta",
            Provider::Auth0 => "auth0",
            Provider::Vcd => "vcd",
            Provider::Entrust => "entrust",
            Provider::Xelion => "xelion",
        }
    }
}

/// The media type VCD's cloudapi 9.1 expects in `Accept` and `Content-Type`.
pub const VCD_MEDIA_TYPE: &str = "application/json;version=9.1.0";

/// A secret value. It cannot be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Arc<str>);

impl SecretString {
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Connection settings of one IdentityApi, resolved from its spec and Secrets.
pub struct ClientConfig {
    pub provider: Provider,
    pub base_url: String,
    pub tenant: Option<String>,
    pub credentials: Credentials,
    pub ca_pem: Option<SecretString>,
    pub insecure_skip_verify: bool,
    pub timeout: Duration,
    /// Client-side limit; `None`: only the concurrency cap and the API's own 429s and
    /// rate-limit headers pace the calls.
    pub requests_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub max_concurrent: u32,
    /// VCD provider session acting for a tenant organisation.
    pub tenant_context: Option<String>,
    pub user_agent: String,
    /// The IdentityApi, `namespace/name`: the `connection` label of the call metrics.
    pub connection: String,
}

/// A JSON answer of an identity API, in one buffer of its size: a list of thousands of objects
/// is decoded from it straight into typed items, never parsed into a `Value` tree first.
#[derive(Debug)]
pub struct Response {
    method: Method,
    pub status: u16,
    pub headers: HeaderMap,
    body: bytes::Bytes,
    /// The answer already decoded as it arrived ([`IdentityClient::get_decoded`]); `body` is
    /// then empty.
    decoded: Option<Decoded>,
}

/// An answer decoded while it arrived, as the type its caller asked for.
struct Decoded(Box<dyn std::any::Any + Send>);

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoded(..)")
    }
}

/// Decodes a 2xx JSON answer while it arrives (see [`IdentityClient::get_decoded`]).
type Decoder = dyn Fn(reqwest::Response) -> futures::future::BoxFuture<'static, Result<Decoded, ApiError>>
    + Sync;

/// The largest answer whose buffer is made to its announced size at once (a wrong
/// Content-Length must not make the operator ask for gigabytes before the first byte).
const MAX_PRESIZED: u64 = 64 << 20;

impl Response {
    fn parse<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    /// The answer as JSON: nothing, or anything that is not JSON, is `null` (its text is
    /// never handed on: it could be anything, a secret among it).
    pub fn body(&self) -> Value {
        self.parse().unwrap_or(Value::Null)
    }

    /// The answer decoded as `T`; `path` names the call in the error, which never quotes the
    /// answer.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.parse().map_err(|e| {
            ApiError::undecodable(self.method.as_str(), path, self.status, &self.body, &e)
        })
    }

    fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    fn content_type(&self) -> Option<&str> {
        content_type(&self.headers)
    }

    /// A 2xx answer that is not JSON at all (a proxy's HTML page, JSON cut short) says nothing
    /// about the call's outcome: it is refused here, once for every caller, before anyone
    /// reads it.
    fn readable(self, path: &str) -> Result<Response, ApiError> {
        if self.is_empty() || self.decoded.is_some() {
            return Ok(self);
        }
        let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(&self.body).map(|_| ());
        match syntax {
            Ok(()) => Ok(self),
            Err(_) => Err(self.unreadable(path)),
        }
    }

    fn unreadable(&self, path: &str) -> ApiError {
        ApiError::Unreadable {
            method: self.method.to_string(),
            path: path.to_owned(),
            status: self.status,
            detail: error::describe_unreadable(&self.body, self.content_type()),
        }
    }
}

pub struct IdentityClient {
    provider: Provider,
    connection: String,
    base_url: String,
    tenant: Option<String>,
    tenant_context: Option<String>,
    http: reqwest::Client,
    /// The connection of the lists read as they arrive ([`Self::get_decoded`]), kept apart:
    /// hyper grows a connection's read buffer up to 400 KiB for a large answer and keeps it
    /// while the connection idles in the pool. Sharing the pool, every connection came to hold
    /// one once it had served a list (8.9 MB of the peak heap at 10,000 Boruta backends).
    lists_http: reqwest::Client,
    credentials: Credentials,
    token: tokio::sync::Mutex<Option<Token>>,
    limiter: Option<DefaultDirectRateLimiter>,
    in_flight: Semaphore,
    paused_until: Mutex<Option<Instant>>,
    budget: Mutex<budget::Budget>,
    /// Wakes the calls waiting on the budget when an answer changes it.
    budget_changed: tokio::sync::Notify,
    /// Set by `close`: a replaced client never logs in again.
    closed: std::sync::atomic::AtomicBool,
    /// When the API last answered anything but a server error: whether it is there at all.
    last_answer: Mutex<Option<Instant>>,
    /// Makes the whole connection wait while its API is down.
    breaker: breaker::Breaker,
    /// Logins finished so far, and the last one's refusal (see [`Self::current_token`]).
    logins: AtomicU64,
    last_refusal: Mutex<Option<(u64, ApiError)>>,
    /// The IdentityApi's `timeoutSeconds`: how long a call waits for a probe's outcome too.
    timeout: Duration,
    metrics: Arc<Metrics>,
    lists: lists::Lists,
}

/// How old a shared list snapshot may be when a resource looks up its remote object in it.
const LIST_MAX_AGE: Duration = Duration::from_secs(2);
/// How long a single 429 may make a call wait before it gives up and lets the engine requeue.
const MAX_INLINE_RATE_LIMIT_WAIT: Duration = Duration::from_secs(10);

/// A pool of connections to the API, keeping at most `idle` open between calls.
fn http_client(config: &ClientConfig, idle: usize) -> Result<reqwest::Client, ApiError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(idle)
        .user_agent(config.user_agent.as_str());
    if let Some(pem) = &config.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.expose().as_bytes())
            .map_err(|e| ApiError::Transport(format!("invalid CA bundle: {e}")))?;
        if certs.is_empty() {
            return Err(ApiError::Transport(
                "the CA bundle holds no PEM certificate".into(),
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if config.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(ApiError::from_reqwest)
}

impl IdentityClient {
    pub fn new(config: ClientConfig, metrics: Arc<Metrics>) -> Result<Self, ApiError> {
        let http = http_client(&config, config.max_concurrent as usize)?;
        let lists_http = http_client(&config, 1)?;
        let limiter = config.requests_per_second.map(|rps| {
            let rps = NonZeroU32::new(rps.max(1)).expect("max(1)");
            let burst = NonZeroU32::new(config.burst.unwrap_or(rps.get()).max(1)).expect("max(1)");
            RateLimiter::direct(Quota::per_second(rps).allow_burst(burst))
        });
        Ok(Self {
            provider: config.provider,
            connection: config.connection.clone(),
            base_url: config.base_url,
            tenant: config.tenant,
            tenant_context: config.tenant_context,
            http,
            lists_http,
            credentials: config.credentials,
            token: tokio::sync::Mutex::new(None),
            limiter,
            in_flight: Semaphore::new(config.max_concurrent.max(1) as usize),
            paused_until: Mutex::new(None),
            budget: Mutex::default(),
            budget_changed: tokio::sync::Notify::new(),
            closed: Default::default(),
            last_answer: Mutex::default(),
            breaker: breaker::Breaker::new(metrics.clone(), config.connection),
            logins: AtomicU64::new(0),
            last_refusal: Mutex::default(),
            timeout: config.timeout,
            metrics,
            lists: lists::Lists::new(LIST_MAX_AGE),
        })
    }

    /// Shared list snapshots of this API (see [`lists`]).
    pub fn lists(&self) -> &lists::Lists {
        &self.lists
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Xelion paths carry the tenant: `api/v1/{tenant}/...`.
    pub fn tenant(&self) -> &str {
        self.tenant.as_deref().unwrap_or("master")
    }

    /// The VCD organisation the calls act on: the tenant context of a provider session, else
    /// the organisation logged in to.
    pub fn organization(&self) -> Option<&str> {
        self.tenant_context.as_deref().or(match &self.credentials {
            Credentials::VcdSession { org, .. } | Credentials::VcdApiToken { org, .. } => {
                Some(org.as_str())
            }
            _ => None,
        })
    }

    /// Ends the session of a client that is being replaced. Xelion refuses a second login for
    /// the same user and user space (10005) while a session lives, so the replacement could
    /// not log in before the old session expired. Other APIs have nothing to end.
    pub async fn close(&self) {
        let mut slot = self.token.lock().await;
        // A call still in flight on this client must not open a session the replacement's
        // login would then collide with.
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let (Provider::Xelion, Some(token)) = (self.provider, slot.take())
            && let Err(e) =
                auth::logout_xelion(&self.http, &self.base_url, self.tenant.as_deref(), &token)
                    .await
        {
            tracing::debug!(error = %e, "Xelion logout failed; the session will expire");
        }
    }

    /// Whether the API answered a call (login included) with anything but a server error
    /// within the last `period`: an API that does not is gone, as far as anyone can tell.
    pub fn answered_within(&self, period: Duration) -> bool {
        self.last_answer
            .lock()
            .expect("answer lock")
            .is_some_and(|at| at.elapsed() <= period)
    }

    /// Records an answer of `status` (0: none came).
    fn answered(&self, status: u16) {
        if (1..500).contains(&status) {
            *self.last_answer.lock().expect("answer lock") = Some(Instant::now());
        }
    }

    /// Makes sure a valid token is at hand (logging in if needed): the IdentityApi's Ready check.
    pub async fn authenticate(&self) -> Result<(), ApiError> {
        let ticket = self.breaker.admit(self.timeout).await?;
        self.current_token(None, &ticket).await.map(|_| ())
    }

    /// Returns a fresh token, logging in (or renewing a Xelion session) when there is none or
    /// when `stale` is the one a call was just refused with. Logins are single-flight: callers
    /// queued behind a login that failed take its outcome (an open breaker, or the refusal)
    /// instead of asking again.
    async fn current_token(
        &self,
        stale: Option<&SecretString>,
        ticket: &breaker::Ticket<'_>,
    ) -> Result<SecretString, ApiError> {
        let logins_before = self.logins.load(Ordering::SeqCst);
        let mut slot = self.token.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ApiError::Transport(
                "the IdentityApi's connection settings changed; the call is retried with the new ones"
                    .into(),
            ));
        }
        if let Some(token) = slot.as_ref() {
            let refused = stale.is_some_and(|s| *s == token.value);
            if token.is_fresh() && !refused {
                return Ok(token.value.clone());
            }
            // Xelion keeps one session per user and user space: renew it (even when the
            // server just refused it) before trying a new login, which it would refuse (10005)
            // while the old session lives.
            if token.renewal.is_some()
                && let Ok(renewed) =
                    auth::renew_xelion(&self.http, &self.base_url, self.tenant.as_deref(), token)
                        .await
            {
                let value = renewed.value.clone();
                *slot = Some(renewed);
                return Ok(value);
            }
        }
        *slot = None;
        self.breaker.check()?;
        if let Some((at, refusal)) = &*self.last_refusal.lock().expect("refusal lock")
            && *at > logins_before
        {
            return Err(refusal.clone());
        }
        // Callers queued on the lock behind a rate-limited login wait for the window too.
        self.paced(async {
            self.wait_for_pause().await;
            self.wait_for_budget(true).await;
        })
        .await;
        let token = auth::login(
            &self.http,
            &self.base_url,
            self.tenant.as_deref(),
            &self.credentials,
        )
        .await
        .map_err(|e| self.redacted(e));
        let logins = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
        self.record_call("LOGIN", login_status(&token));
        self.answered(login_status(&token));
        let refusal = match token {
            Ok(token) => {
                ticket.pass();
                let value = token.value.clone();
                *slot = Some(token);
                return Ok(value);
            }
            // The token endpoint is down, not refusing us: the whole connection waits.
            Err(e) if e.is_outage() => return Err(ticket.fail(&e)),
            Err(e) => e,
        };
        ticket.pass();
        if let ApiError::RateLimited { retry_after } = &refusal {
            self.pause(*retry_after);
        }
        *self.last_refusal.lock().expect("refusal lock") = Some((logins, refusal.clone()));
        Err(refusal)
    }

    /// `e` with every credential of this connection that a vendor's message may echo (an OAuth
    /// error quoting the client secret) masked.
    fn redacted(&self, e: ApiError) -> ApiError {
        let mask = |text: String| {
            self.credentials
                .secrets()
                .into_iter()
                .filter(|secret| secret.len() >= 4)
                .fold(text, |text, secret| text.replace(secret, "***"))
        };
        match e {
            ApiError::Status {
                method,
                path,
                status,
                message,
            } => ApiError::Status {
                method,
                path,
                status,
                message: mask(message),
            },
            ApiError::Authentication(message) => ApiError::Authentication(mask(message)),
            ApiError::Unreadable {
                method,
                path,
                status,
                detail,
            } => ApiError::Unreadable {
                method,
                path,
                status,
                detail: mask(detail),
            },
            other => other,
        }
    }

    fn authorization(&self, token: &SecretString) -> String {
        match (self.provider, &self.credentials) {
            (Provider::Xelion, _) => format!("xelion {}", token.expose()),
            // Entrust documents the bare token; it accepts it with `Bearer ` too.
            (Provider::Entrust, Credentials::Entrust { .. }) => token.expose().to_owned(),
            _ => format!("Bearer {}", token.expose()),
        }
    }

    fn record_call(&self, method: &str, status: u16) {
        self.metrics
            .api_call(self.provider.as_str(), &self.connection, method, status);
    }

    /// Runs `wait` (a wait for the rate limit, a 429's delay or the budget) and counts the
    /// time it took in the connection's rate-limit wait metric.
    async fn paced(&self, wait: impl std::future::Future<Output = ()>) {
        let started = Instant::now();
        wait.await;
        self.metrics
            .rate_limit_waited(self.provider.as_str(), &self.connection, started.elapsed());
    }

    async fn wait_for_pause(&self) {
        loop {
            let until = *self.paused_until.lock().expect("pause lock");
            match until {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at.into()).await,
                _ => return,
            }
        }
    }

    /// Waits until the budget allows one more call (`login`: a login a call needs, see
    /// [`budget::Budget::take_login`]).
    async fn wait_for_budget(&self, login: bool) {
        loop {
            // Registered before the budget is read, so an answer in between is not missed.
            let changed = self.budget_changed.notified();
            let take = {
                let mut budget = self.budget.lock().expect("budget lock");
                let (now, unix) = (Instant::now(), budget::unix_now());
                if login {
                    budget.take_login(now, unix)
                } else {
                    budget.take(now, unix)
                }
            };
            match take {
                budget::Take::Go => return,
                budget::Take::Until(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = changed => {}
                    }
                }
                // The probe's answer; should it never come (a hung call), the timeout of
                // that call ends it, and a second at most passes here.
                budget::Take::Answer => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), changed).await;
                }
            }
        }
    }

    fn budget_answered(&self, headers: Option<(Option<u64>, u64, u64)>, announces: bool) {
        self.budget
            .lock()
            .expect("budget lock")
            .answered(headers, announces);
        self.budget_changed.notify_waiters();
    }

    fn pause(&self, wait: Duration) {
        let at = Instant::now() + wait;
        let mut slot = self.paused_until.lock().expect("pause lock");
        if slot.is_none_or(|current| current < at) {
            *slot = Some(at);
        }
    }

    /// Sends one call to `path` (relative to the IdentityApi's URL) and returns the answer when
    /// its status is 2xx and it is JSON (or empty); otherwise the classified error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, ApiError> {
        self.exchange(method, path, body, None).await
    }

    /// GETs `path` and decodes its answer as `T` while it arrives, on a blocking thread fed
    /// chunk by chunk, with the retries, pacing and breaker of [`call`](Self::call). A list of
    /// thousands of objects is then never held as text beside its decoded items (the 8 MB
    /// answer of 10,000 Boruta backends was the largest part of the operator's peak heap).
    pub async fn get_decoded<T>(&self, path: &str) -> Result<T, ApiError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let named = path.to_owned();
        let decoder = move |resp: reqwest::Response| -> futures::future::BoxFuture<'static, _> {
            let path = named.clone();
            Box::pin(async move {
                let decoded = decode_streaming::<T>(resp, &path).await?;
                Ok(Decoded(Box::new(decoded)))
            })
        };
        let resp = self
            .exchange(Method::GET, path, None, Some(&decoder))
            .await?;
        match resp.decoded {
            Some(Decoded(any)) => Ok(*any.downcast::<T>().expect("decoded as the T asked for")),
            // Not announced as JSON, or empty: read whole, as any answer.
            None => resp.decode(path),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        decoder: Option<&Decoder>,
    ) -> Result<Response, ApiError> {
        let mut stale: Option<SecretString> = None;
        let mut rate_limited_once = false;
        let mut retries = retry_delays(&method);
        loop {
            let ticket = self.breaker.admit(self.timeout).await?;
            self.paced(async {
                self.wait_for_pause().await;
                if let Some(limiter) = &self.limiter {
                    limiter.until_ready().await;
                }
            })
            .await;
            let _permit = self
                .in_flight
                .acquire()
                .await
                .expect("semaphore never closed");
            let token = self.current_token(stale.as_ref(), &ticket).await?;
            // Last before sending: a call counted in one window must not leave in the next.
            self.paced(self.wait_for_budget(false)).await;
            let sent = match self.send(&method, path, body, &token, decoder).await {
                // Not even a connection: the API is down, and every call waits for the
                // connection's next attempt instead of trying on its own.
                Err(e @ ApiError::Unreachable(_)) => return Err(ticket.fail(&e)),
                Ok(resp) if (200..300).contains(&resp.status) => {
                    resp.readable(path).map_err(|e| self.redacted(e))
                }
                sent => sent,
            };
            if let Some(down) = self.tell_breaker(&ticket, &sent, path) {
                return Err(down);
            }
            let passing = matches!(
                &sent,
                Err(ApiError::Transport(_)) | Ok(Response { status: 500.., .. })
            );
            if passing && let Some(delay) = retries.next() {
                drop(_permit);
                tokio::time::sleep(delay).await;
                continue;
            }
            let resp = sent?;
            match StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR) {
                StatusCode::UNAUTHORIZED if stale.is_none() => {
                    // One re-authentication per call: the token may have expired server-side.
                    stale = Some(token);
                    continue;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(&resp.headers).unwrap_or(Duration::from_secs(1));
                    self.pause(wait);
                    if rate_limited_once || wait > MAX_INLINE_RATE_LIMIT_WAIT {
                        return Err(ApiError::RateLimited { retry_after: wait });
                    }
                    rate_limited_once = true;
                    continue;
                }
                s if s.is_success() => return Ok(resp),
                _ => return Err(self.redacted(failure(&resp, path))),
            }
        }
    }

    /// What the connection learns from a call: any answer says it works; no answer (a
    /// timeout, a 5xx, a proxy's page instead of the API's JSON) is a strike, and strikes in a
    /// row say the API is down (then the error every caller gets, see [`breaker`]).
    fn tell_breaker(
        &self,
        ticket: &breaker::Ticket<'_>,
        sent: &Result<Response, ApiError>,
        path: &str,
    ) -> Option<ApiError> {
        let no_answer = match sent {
            Err(e @ (ApiError::Transport(_) | ApiError::Unreadable { .. })) => e.clone(),
            Ok(resp) if resp.status >= 500 => self.redacted(failure(resp, path)),
            _ => {
                ticket.pass();
                return None;
            }
        };
        ticket.strike(&no_answer)
    }

    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: &SecretString,
        decoder: Option<&Decoder>,
    ) -> Result<Response, ApiError> {
        let url = auth::join_url(&self.base_url, path);
        let http = if decoder.is_some() {
            &self.lists_http
        } else {
            &self.http
        };
        let mut req = http
            .request(method.clone(), &url)
            .header("Authorization", self.authorization(token));
        req = match self.provider {
            Provider::Vcd => {
                let mut r = req.header("Accept", VCD_MEDIA_TYPE);
                if let Some(org) = &self.tenant_context {
                    r = r.header("X-VMWARE-VCLOUD-TENANT-CONTEXT", org);
                }
                if let Some(b) = body {
                    r = r.header("Content-Type", VCD_MEDIA_TYPE).body(b.to_string());
                }
                r
            }
            _ => {
                let r = req.header("Accept", "application/json");
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            }
        };
        let result = req.send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.budget_answered(None, false);
                self.record_call(method.as_str(), 0);
                return Err(ApiError::from_reqwest(e));
            }
        };
        let status = resp.status().as_u16();
        self.record_call(method.as_str(), status);
        self.answered(status);
        let headers = resp.headers().clone();
        self.pace_from_headers(&headers);
        let json = content_type(&headers).is_some_and(|t| t.contains("json"));
        if let Some(decode) = decoder.filter(|_| json && (200..300).contains(&status)) {
            return Ok(Response {
                method: method.clone(),
                status,
                headers,
                body: bytes::Bytes::new(),
                decoded: Some(decode(resp).await?),
            });
        }
        // Copied chunk by chunk into one buffer of the answer's size: hyper reads into buffers
        // of up to 400 KiB and hands out slices of them, so keeping its chunks kept those
        // buffers whole (18 MB for the 8 MB list of 10,000 Boruta backends, by heaptrack).
        let mut body = bytes::BytesMut::with_capacity(
            resp.content_length()
                .map_or(0, |n| n.min(MAX_PRESIZED) as usize),
        );
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(ApiError::from_reqwest)? {
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            method: method.clone(),
            status,
            headers,
            body: body.freeze(),
            decoded: None,
        })
    }

    /// Auth0 says how many calls are left in the window and when it resets: start no more
    /// than that, instead of spending calls on 429s.
    fn pace_from_headers(&self, headers: &HeaderMap) {
        let announced = header_u64(headers, "x-ratelimit-remaining")
            .zip(header_u64(headers, "x-ratelimit-reset"))
            .map(|(remaining, reset)| (header_u64(headers, "x-ratelimit-limit"), remaining, reset));
        self.budget_answered(announced, true);
    }
}

/// The error of a non-2xx answer: the vendor's message when it answered its JSON, a
/// description (never the content) when the answer is something else, a proxy's page most
/// likely. A 404 or 409 counts as the vendor's verdict only in the vendor's own words.
fn failure(resp: &Response, path: &str) -> ApiError {
    if resp.is_empty() {
        return ApiError::Status {
            method: resp.method.to_string(),
            path: path.to_owned(),
            status: resp.status,
            message: String::new(),
        };
    }
    match resp.parse::<Value>() {
        Ok(body) => ApiError::Status {
            method: resp.method.to_string(),
            path: path.to_owned(),
            status: resp.status,
            message: error::vendor_message(&body)
                .unwrap_or_else(|| truncate(&body.to_string(), 300)),
        },
        Err(_) => resp.unreadable(path),
    }
}

/// The status a login is counted with in the calls metric (0: no answer).
fn login_status(login: &Result<Token, ApiError>) -> u16 {
    match login {
        Ok(_) => 200,
        Err(ApiError::RateLimited { .. }) => 429,
        Err(ApiError::Status { status, .. } | ApiError::Unreadable { status, .. }) => *status,
        Err(
            ApiError::Transport(_) | ApiError::Unreachable(_) | ApiError::UntrustedCertificate(_),
        ) => 0,
        Err(_) => 401,
    }
}

/// Delays before sending a call again that failed for a passing reason (unreachable, timeout,
/// 5xx): twice, about 0.2 s and 0.4 s later, and only for methods whose repetition changes
/// nothing (GET, PUT, DELETE). A flaky API then costs a few calls instead of a failed reconcile
/// and growing per-object backoff. A POST is never repeated (a create whose answer was lost is
/// found by name on the next reconcile), nor a PATCH (Xelion's are operation lists).
fn retry_delays(method: &Method) -> impl Iterator<Item = Duration> + use<> {
    let idempotent = [Method::GET, Method::PUT, Method::DELETE].contains(method);
    backon::BackoffBuilder::build(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(if idempotent { 2 } else { 0 }),
    )
}

/// One path segment, percent-encoded, so an id from a spec can never reach another path.
pub fn path_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn reset_wait(headers: &HeaderMap) -> Option<Duration> {
    let reset = header_u64(headers, "x-ratelimit-reset")?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    // The reset is whole UNIX seconds: waiting until that second has begun is enough.
    Some(
        Duration::from_secs(reset)
            .saturating_sub(now)
            .max(Duration::from_millis(50)),
    )
}

/// `Retry-After` (seconds) first, then Auth0's `x-ratelimit-reset`, as the vendors' SDKs do.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(secs) = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(Duration::from_secs_f64(secs.clamp(0.05, 3600.0)));
    }
    reset_wait(headers)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The Content-Type an answer announces, if it is text.
fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Decodes a 2xx answer as `T` on a blocking thread while its chunks arrive (a few chunks in
/// flight at most). Cut short or not JSON is [`ApiError::Unreadable`], JSON of another shape
/// [`ApiError::Decode`]; neither quotes the answer.
async fn decode_streaming<T>(mut resp: reqwest::Response, path: &str) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Send + 'static,
{
    let status = resp.status().as_u16();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let decoding = tokio::task::spawn_blocking(move || {
        let mut chunks = std::io::BufReader::with_capacity(16 << 10, Chunks::new(rx));
        let decoded = serde_json::from_reader::<_, T>(&mut chunks);
        (decoded, chunks.into_inner().read)
    });
    let mut cut = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                // A decoder that stopped has failed: its error says why.
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                cut = Some(ApiError::from_reqwest(e));
                break;
            }
        }
    }
    drop(tx);
    let (decoded, read) = decoding
        .await
        .map_err(|e| ApiError::Transport(format!("decoding the answer of {path} failed: {e}")))?;
    if let Some(cut) = cut {
        return Err(cut);
    }
    decoded.map_err(|e| match e.is_data() {
        true => ApiError::decode(path, &e),
        false => ApiError::Unreadable {
            method: Method::GET.to_string(),
            path: path.to_owned(),
            status,
            detail: match (read, e.is_eof()) {
                (0, _) => "an empty body".to_owned(),
                (_, true) => format!("JSON cut short after {read} bytes"),
                (_, false) => format!(
                    "malformed JSON at line {} column {} (after {read} bytes)",
                    e.line(),
                    e.column()
                ),
            },
        },
    })
}

/// The chunks of an answer as a `Read`, for a decoder on a blocking thread.
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
    /// Bytes handed to the decoder so far.
    read: usize,
}

impl Chunks {
    fn new(rx: tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        Chunks {
            rx,
            current: bytes::Bytes::new(),
            read: 0,
        }
    }
}

impl std::io::Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        self.read += n;
        Ok(n)
    }
}

#[cfg(test)]
mod response_tests {
    use super::*;

    /// An answer received in these chunks (`call` joins them as they come).
    fn response(chunks: &[&str]) -> Response {
        Response {
            method: Method::GET,
            status: 200,
            headers: HeaderMap::new(),
            body: bytes::Bytes::from(chunks.concat()),
            decoded: None,
        }
    }

    #[test]
    fn a_body_in_chunks_reads_as_one() {
        let r = response(&[r#"{"data": [{"id""#, r#": "a"}, {"id": "#, r#""b"}]}"#]);
        assert_eq!(
            r.body(),
            serde_json::json!({"data": [{"id": "a"}, {"id": "b"}]})
        );
        let v: Value = r.decode("p").unwrap();
        assert_eq!(v["data"][1]["id"], "b");
        assert_eq!(response(&[]).body(), Value::Null);
        assert_eq!(response(&["", ""]).body(), Value::Null);
        assert_eq!(response(&["not ", "json"]).body(), Value::Null);
        assert!(response(&["{", "}x"]).decode::<Value>("p").is_err());
    }

    #[test]
    fn a_2xx_that_is_not_json_is_refused_without_quoting_it() {
        let cut = response(&[
            r#"{"data": {"id": "1", "#,
            r#""ldap_master_password": "hunt"#,
        ]);
        let err = cut.readable("api/backends/1").unwrap_err();
        assert!(
            matches!(err, ApiError::Unreadable { status: 200, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("JSON cut short"), "{err}");
        assert!(!err.to_string().contains("hunt"), "{err}");
        let mut page = response(&["<html><head><title>Maintenance</title></head></html>"]);
        page.headers
            .insert(reqwest::header::CONTENT_TYPE, "text/html".parse().unwrap());
        let err = page.readable("p").unwrap_err();
        assert!(err.to_string().contains("\"Maintenance\""), "{err}");
        assert!(response(&[]).readable("p").is_ok());
        assert!(response(&["[1,", "2]"]).readable("p").is_ok());
    }

    /// A 2xx JSON answer as it would arrive, whole.
    fn arriving(body: &str) -> reqwest::Response {
        reqwest::Response::from(axum::http::Response::new(reqwest::Body::from(
            body.to_owned(),
        )))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_answer_decoded_as_it_arrives_fails_as_a_whole_one_would() {
        let list: Value = decode_streaming(arriving(r#"{"data": [{"id": "a"}]}"#), "p")
            .await
            .unwrap();
        assert_eq!(list["data"][0]["id"], "a");

        let cut = r#"{"data": [{"id": "a", "ldap_master_password": "hunt"#;
        let err = decode_streaming::<Value>(arriving(cut), "p")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::Unreadable { status: 200, .. }),
            "{err:?}"
        );
        let expected = format!("JSON cut short after {} bytes", cut.len());
        assert!(err.to_string().contains(&expected), "{err}");
        assert!(!err.to_string().contains("hunt"), "{err}");

        let err = decode_streaming::<Value>(arriving("{} x"), "p")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("malformed JSON"), "{err}");
        let err = decode_streaming::<Value>(arriving(""), "p")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("an empty body"), "{err}");

        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Data {
            data: Vec<u32>,
        }
        let err = decode_streaming::<Data>(arriving(r#"{"data": ["secret"]}"#), "p")
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::Decode { .. }), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    /// The decoder reads across chunk boundaries, whatever their size.
    #[test]
    fn chunks_read_as_one_stream() {
        let text = r#"{"data": [{"id": "a"}, {"id": "b"}]}"#;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        for piece in text.as_bytes().chunks(3) {
            tx.try_send(bytes::Bytes::copy_from_slice(piece)).unwrap();
        }
        tx.try_send(bytes::Bytes::new()).unwrap();
        drop(tx);
        let mut chunks = Chunks::new(rx);
        let v: Value = serde_json::from_reader(&mut chunks).unwrap();
        assert_eq!(v["data"][1]["id"], "b");
        assert_eq!(chunks.read, text.len());
    }

    #[test]
    fn only_the_vendors_json_is_its_verdict() {
        let mut proxy = response(&["<html><title>404 Not Found</title></html>"]);
        proxy.status = 404;
        let err = failure(&proxy, "api/backends/1");
        assert!(!err.is_not_found(), "{err:?}");
        assert!(err.to_string().contains("\"404 Not Found\""), "{err}");
        let mut vendor = response(&[r#"{"code": "NOT_FOUND", "message": "Not found"}"#]);
        vendor.status = 404;
        assert!(failure(&vendor, "api/backends/1").is_not_found());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_idempotent_methods_are_sent_again() {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let delays: Vec<Duration> = retry_delays(&method).collect();
            assert_eq!(delays.len(), 2, "{method}");
            assert!(delays[0] >= Duration::from_millis(200), "{delays:?}");
            assert!(delays[1] < Duration::from_secs(1), "{delays:?}");
        }
        for method in [Method::POST, Method::PATCH] {
            assert_eq!(retry_delays(&method).count(), 0, "{method}");
        }
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn retry_after_wins_over_reset() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let h = headers(&[
            ("retry-after", "2".into()),
            ("x-ratelimit-reset", (now + 30).to_string()),
        ]);
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        let h = headers(&[("x-ratelimit-reset", (now + 3).to_string())]);
        let wait = retry_after(&h).unwrap();
        assert!(
            wait <= Duration::from_secs(3) && wait >= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn secrets_do_not_print() {
        let s = SecretString::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
