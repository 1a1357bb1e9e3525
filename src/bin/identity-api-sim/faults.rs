//! Injected faults per API: latency, random errors, bursts of 429, a request-rate limit, and
//! what a real network does to answers: a 2xx cut short, a connection dropped after the change
//! was applied, a proxy's HTML page instead of the API's answer, and reads that lag behind
//! the writes (a read replica or search index); and fields an update silently ignores.
//!
//! The rate limit is a fixed one-second window aligned to wall-clock UNIX seconds: at most
//! `requestsPerSecond` requests are let through per second, every request beyond that gets a
//! 429, and rejected requests do not consume the budget. This makes "how many were refused"
//! exactly predictable in tests, and `x-ratelimit-reset` is simply the next second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::wire::{Api, Locked};

/// One `POST /_sim/faults` object. Posting replaces the previous faults of the API(s) named.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// An API name or `*` (the default) for all five.
    #[serde(default, skip_serializing)]
    pub api: Option<String>,
    /// Only requests with this method (`POST`, ...) are faulted; the others pass untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Only requests whose vendor path (after the API's prefix) starts with this are faulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Sleep before the request is handled (a long one simulates a client timeout before
    /// anything happened).
    #[serde(default)]
    pub latency_ms: u64,
    /// Sleep after the request was handled and recorded (a long one simulates a timeout after
    /// the server applied the change).
    #[serde(default)]
    pub response_delay_ms: u64,
    /// That share of requests sleeps `slowMs` before being handled (with `slowMs` over the
    /// client's timeout: a timeout on which nothing happened).
    #[serde(default)]
    pub slow_rate: f64,
    #[serde(default)]
    pub slow_ms: u64,
    /// That share of requests sleeps `lateMs` after being handled (with `lateMs` over the
    /// client's timeout: a timeout after the change was applied, the case that duplicates).
    #[serde(default)]
    pub late_rate: f64,
    #[serde(default)]
    pub late_ms: u64,
    #[serde(default)]
    pub error_rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_status: Option<u16>,
    /// That share of requests is handled, and a 2xx answer's body is cut in half: the client
    /// gets a complete HTTP answer whose JSON ends too soon.
    #[serde(default)]
    pub truncate_rate: f64,
    /// That share of requests is handled (a write is applied), then the connection is closed
    /// without an answer.
    #[serde(default)]
    pub drop_after_apply_rate: f64,
    /// That share of requests never reaches the API: a proxy answers with its own HTML page
    /// and `htmlStatus` (default 502; 200 is a captive portal or a maintenance page).
    #[serde(default)]
    pub html_rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_status: Option<u16>,
    /// Reads (GET) do not see objects created less than this long ago: lists and single
    /// reads are served by a replica that lags behind the writes. Not limited by `method`
    /// and `path`.
    #[serde(default)]
    pub read_lag_ms: u64,
    /// The next N requests get a 429 in the vendor's shape.
    #[serde(default)]
    pub burst429: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Fields an update accepts but does not store, as dotted paths in the vendor's names
    /// (`ldap_host`, `definedSettings.hostName`): the write is answered as usual, and the field
    /// keeps its old value in the stored object, in the write's answer and in every read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_fields: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    pub requests_per_second: u32,
}

/// Rate-limit figures for the vendor's headers.
#[derive(Clone, Copy, Debug)]
pub struct LimitInfo {
    pub limit: u32,
    pub remaining: u32,
    /// UNIX seconds at which the window resets.
    pub reset: u64,
}

#[derive(Debug)]
pub enum Rejection {
    /// Over the configured rate limit, or an injected 429 burst.
    TooManyRequests(LimitInfo),
    Injected(StatusCode),
    /// A proxy's HTML page with this status.
    Html(StatusCode),
}

/// What happens to a request's answer after the API handled it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spoil {
    /// A 2xx body is cut in half.
    Truncate,
    /// The connection is closed without an answer.
    Drop,
}

#[derive(Debug, Default)]
pub struct Decision {
    pub latency: Duration,
    pub response_delay: Duration,
    pub reject: Option<Rejection>,
    pub spoil: Option<Spoil>,
    /// Present when a rate limit is configured, for vendors that send headers on every answer.
    pub limit: Option<LimitInfo>,
}

#[derive(Default)]
struct ApiFaults {
    spec: FaultSpec,
    burst_left: u32,
    window_second: u64,
    window_count: u32,
    injected: Injected,
}

/// What the faults in force have done so far (reported by `GET /_sim/faults`).
#[derive(Clone, Copy, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Injected {
    pub errors: u64,
    pub too_many_requests: u64,
    pub slow: u64,
    pub late: u64,
    pub truncated: u64,
    pub dropped: u64,
    pub html: u64,
    /// Updates in which at least one ignored field would have changed.
    pub ignored_writes: u64,
}

#[derive(Default)]
pub struct Faults {
    inner: Mutex<HashMap<Api, ApiFaults>>,
}

impl Faults {
    pub fn set(&self, spec: FaultSpec) -> Result<(), String> {
        for (name, rate) in [
            ("errorRate", spec.error_rate),
            ("slowRate", spec.slow_rate),
            ("lateRate", spec.late_rate),
            ("truncateRate", spec.truncate_rate),
            ("dropAfterApplyRate", spec.drop_after_apply_rate),
            ("htmlRate", spec.html_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        // One draw picks at most one of these per request, so their shares add up.
        if spec.error_rate + spec.truncate_rate + spec.drop_after_apply_rate + spec.html_rate
            > 1.0 + f64::EPSILON
        {
            return Err(
                "errorRate + truncateRate + dropAfterApplyRate + htmlRate must be at most 1".into(),
            );
        }
        if let Some(status) = spec.error_status
            && !(400..=599).contains(&status)
        {
            return Err("errorStatus must be a 4xx or 5xx status".into());
        }
        if let Some(status) = spec.html_status
            && !(200..=599).contains(&status)
        {
            return Err("htmlStatus must be a 2xx to 5xx status".into());
        }
        if let Some(method) = &spec.method
            && method.parse::<axum::http::Method>().is_err()
        {
            return Err(format!("method {method:?} is not an HTTP method"));
        }
        if spec
            .ignore_fields
            .iter()
            .any(|f| f.split('.').any(str::is_empty))
        {
            return Err(
                "ignoreFields are dotted field paths such as definedSettings.hostName".into(),
            );
        }
        let apis: Vec<Api> = match spec.api.as_deref().unwrap_or("*") {
            "*" => Api::ALL.to_vec(),
            name => vec![Api::from_name(name).ok_or(format!("unknown api {name:?}"))?],
        };
        let mut inner = self.inner.locked();
        for api in apis {
            inner.insert(
                api,
                ApiFaults {
                    burst_left: spec.burst429,
                    spec: spec.clone(),
                    ..Default::default()
                },
            );
        }
        Ok(())
    }

    pub fn clear(&self) {
        self.inner.locked().clear();
    }

    pub fn snapshot(&self) -> Value {
        let inner = self.inner.locked();
        let mut out = serde_json::Map::new();
        for api in Api::ALL {
            if let Some(f) = inner.get(&api) {
                let mut spec = serde_json::to_value(&f.spec).unwrap_or_default();
                spec["burst429"] = f.burst_left.into();
                spec["injected"] = serde_json::to_value(f.injected).unwrap_or_default();
                out.insert(api.name().into(), spec);
            }
        }
        Value::Object(out)
    }

    /// Puts back into `after`, the object an update of `api` produced from `before`, the old
    /// value of every field the API ignores on write (absent stays absent).
    pub fn keep_ignored(
        &self,
        api: Api,
        before: &Map<String, Value>,
        after: &mut Map<String, Value>,
    ) {
        let mut inner = self.inner.locked();
        let Some(f) = inner.get_mut(&api) else {
            return;
        };
        let mut changed = false;
        for path in &f.spec.ignore_fields {
            let keys: Vec<&str> = path.split('.').collect();
            let old = lookup(before, &keys);
            let Some((last, parents)) = keys.split_last() else {
                continue;
            };
            let Some(parent) = parents
                .iter()
                .try_fold(&mut *after, |map, key| map.get_mut(*key)?.as_object_mut())
            else {
                continue;
            };
            if parent.get(*last) == old {
                continue;
            }
            changed = true;
            match old {
                Some(value) => parent.insert(last.to_string(), value.clone()),
                None => parent.remove(*last),
            };
        }
        if changed {
            f.injected.ignored_writes += 1;
        }
    }

    /// How far reads of `api` lag behind its writes.
    pub fn read_lag(&self, api: Api) -> Duration {
        let inner = self.inner.locked();
        Duration::from_millis(inner.get(&api).map_or(0, |f| f.spec.read_lag_ms))
    }

    /// Whether a read of `api` now cannot see yet an object created at `created_ms` (seeded
    /// objects, created at 0, are always seen).
    pub fn hides(&self, api: Api, created_ms: u64, now_ms: u64) -> bool {
        created_ms > 0 && created_ms + self.read_lag(api).as_millis() as u64 > now_ms
    }

    /// Counts a truncation that took effect (the answer was a 2xx with a body).
    pub fn truncated(&self, api: Api) {
        if let Some(f) = self.inner.locked().get_mut(&api) {
            f.injected.truncated += 1;
        }
    }

    /// Decides what happens to one request (`method` on the vendor `path`) arriving now;
    /// counts it against the rate limit.
    pub fn decide(&self, api: Api, method: &str, path: &str, now_ms: u64) -> Decision {
        let mut inner = self.inner.locked();
        let Some(f) = inner.get_mut(&api) else {
            return Decision::default();
        };
        let in_scope = f
            .spec
            .method
            .as_ref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && f.spec
                .path
                .as_ref()
                .is_none_or(|p| path.starts_with(p.as_str()));
        if !in_scope {
            return Decision::default();
        }
        let mut decision = Decision {
            latency: Duration::from_millis(f.spec.latency_ms),
            response_delay: Duration::from_millis(f.spec.response_delay_ms),
            ..Default::default()
        };
        let mut rng = rand::rng();
        if f.spec.slow_rate > 0.0 && rng.random_bool(f.spec.slow_rate) {
            decision.latency += Duration::from_millis(f.spec.slow_ms);
            f.injected.slow += 1;
        }
        if f.spec.late_rate > 0.0 && rng.random_bool(f.spec.late_rate) {
            decision.response_delay += Duration::from_millis(f.spec.late_ms);
            f.injected.late += 1;
        }
        let second = now_ms / 1000;
        if let Some(rl) = &f.spec.rate_limit {
            if f.window_second != second {
                f.window_second = second;
                f.window_count = 0;
            }
            let limit = rl.requests_per_second;
            let mut info = LimitInfo {
                limit,
                remaining: 0,
                reset: second + 1,
            };
            if f.window_count >= limit {
                f.injected.too_many_requests += 1;
                decision.reject = Some(Rejection::TooManyRequests(info));
                return decision;
            }
            f.window_count += 1;
            info.remaining = limit - f.window_count;
            decision.limit = Some(info);
        }
        if f.burst_left > 0 {
            f.burst_left -= 1;
            let limit = f
                .spec
                .rate_limit
                .as_ref()
                .map_or(0, |r| r.requests_per_second);
            let info = LimitInfo {
                limit,
                remaining: 0,
                reset: second + 1,
            };
            f.injected.too_many_requests += 1;
            decision.reject = Some(Rejection::TooManyRequests(info));
        } else {
            decision_by_share(f, rng.random_range(0.0..1.0), &mut decision);
        }
        decision
    }
}

/// Picks at most one of the shared faults (error, HTML page, truncate, drop) with one draw
/// `r` in [0, 1): each takes its share of the interval.
fn decision_by_share(f: &mut ApiFaults, r: f64, decision: &mut Decision) {
    let spec = &f.spec;
    let mut edge = spec.error_rate;
    if r < edge {
        let status = spec.error_status.unwrap_or(503);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        f.injected.errors += 1;
        decision.reject = Some(Rejection::Injected(status));
        return;
    }
    edge += spec.html_rate;
    if r < edge {
        let status = spec.html_status.unwrap_or(502);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        f.injected.html += 1;
        decision.reject = Some(Rejection::Html(status));
        return;
    }
    edge += spec.truncate_rate;
    if r < edge {
        decision.spoil = Some(Spoil::Truncate);
        return;
    }
    edge += spec.drop_after_apply_rate;
    if r < edge {
        f.injected.dropped += 1;
        decision.spoil = Some(Spoil::Drop);
    }
}

/// The value at `keys` below `map`, if every step is an object.
fn lookup<'a>(map: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    let (last, parents) = keys.split_last()?;
    parents
        .iter()
        .try_fold(map, |m, key| m.get(*key)?.as_object())?
        .get(*last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fixed_window_lets_exactly_the_limit_through_per_second() {
        let faults = Faults::default();
        faults
            .set(spec(
                r#"{"api":"auth0","rateLimit":{"requestsPerSecond":3}}"#,
            ))
            .unwrap();
        let passed = (0..10)
            .filter(|_| {
                faults
                    .decide(Api::Auth0, "GET", "/", 5_000)
                    .reject
                    .is_none()
            })
            .count();
        assert_eq!(passed, 3);
        assert!(
            faults
                .decide(Api::Auth0, "GET", "/", 6_000)
                .reject
                .is_none()
        );
        assert!(
            faults
                .decide(Api::Boruta, "GET", "/", 5_000)
                .reject
                .is_none()
        );
    }

    #[test]
    fn bursts_count_down_and_wildcard_applies_everywhere() {
        let faults = Faults::default();
        faults.set(spec(r#"{"api":"*","burst429":2}"#)).unwrap();
        assert!(faults.decide(Api::Vcd, "GET", "/", 0).reject.is_some());
        assert!(faults.decide(Api::Vcd, "GET", "/", 0).reject.is_some());
        assert!(faults.decide(Api::Vcd, "GET", "/", 0).reject.is_none());
        assert!(faults.decide(Api::Xelion, "GET", "/", 0).reject.is_some());
        assert_eq!(faults.snapshot()["vcd"]["injected"]["tooManyRequests"], 2);
    }

    #[test]
    fn slow_and_late_shares_add_their_delays() {
        let faults = Faults::default();
        faults
            .set(spec(
                r#"{"api":"boruta","latencyMs":5,"slowRate":1,"slowMs":100,"lateRate":1,"lateMs":200}"#,
            ))
            .unwrap();
        let d = faults.decide(Api::Boruta, "GET", "/", 0);
        assert_eq!(d.latency, Duration::from_millis(105));
        assert_eq!(d.response_delay, Duration::from_millis(200));
        faults
            .set(spec(r#"{"api":"boruta","slowRate":0,"slowMs":100}"#))
            .unwrap();
        assert!(faults.decide(Api::Boruta, "GET", "/", 0).latency.is_zero());
        let injected = &faults.snapshot()["boruta"]["injected"];
        assert_eq!(injected["slow"], 0, "counts restart with a new spec");
    }

    #[test]
    fn one_draw_picks_at_most_one_shared_fault() {
        let mut f = ApiFaults {
            spec: spec(
                r#"{"errorRate":0.1,"htmlRate":0.2,"htmlStatus":200,"truncateRate":0.3,"dropAfterApplyRate":0.2}"#,
            ),
            ..Default::default()
        };
        let pick = |f: &mut ApiFaults, r: f64| {
            let mut d = Decision::default();
            decision_by_share(f, r, &mut d);
            (d.reject, d.spoil)
        };
        assert!(matches!(pick(&mut f, 0.05), (Some(Rejection::Injected(s)), None) if s == 503));
        assert!(matches!(pick(&mut f, 0.15), (Some(Rejection::Html(s)), None) if s == 200));
        assert!(matches!(pick(&mut f, 0.45), (None, Some(Spoil::Truncate))));
        assert!(matches!(pick(&mut f, 0.75), (None, Some(Spoil::Drop))));
        assert!(matches!(pick(&mut f, 0.85), (None, None)));
        assert_eq!(
            (f.injected.errors, f.injected.html, f.injected.dropped),
            (1, 1, 1)
        );
    }

    #[test]
    fn method_and_path_limit_every_fault() {
        let faults = Faults::default();
        faults
            .set(spec(
                r#"{"api":"boruta","method":"post","path":"/api/backends","errorRate":1,"readLagMs":500}"#,
            ))
            .unwrap();
        assert!(
            faults
                .decide(Api::Boruta, "POST", "/api/backends", 0)
                .reject
                .is_some()
        );
        assert!(
            faults
                .decide(Api::Boruta, "POST", "/api/backends/1", 0)
                .reject
                .is_some()
        );
        assert!(
            faults
                .decide(Api::Boruta, "GET", "/api/backends", 0)
                .reject
                .is_none()
        );
        assert!(
            faults
                .decide(Api::Boruta, "POST", "/oauth/token", 0)
                .reject
                .is_none()
        );
        assert_eq!(faults.read_lag(Api::Boruta), Duration::from_millis(500));
        assert!(faults.read_lag(Api::Auth0).is_zero());
    }

    #[test]
    fn invalid_specs_are_refused() {
        let faults = Faults::default();
        assert!(faults.set(spec(r#"{"errorRate":2}"#)).is_err());
        assert!(faults.set(spec(r#"{"slowRate":-0.5}"#)).is_err());
        assert!(faults.set(spec(r#"{"lateRate":1.5}"#)).is_err());
        assert!(faults.set(spec(r#"{"api":"nope"}"#)).is_err());
        assert!(faults.set(spec(r#"{"errorStatus":200}"#)).is_err());
        assert!(faults.set(spec(r#"{"htmlStatus":100}"#)).is_err());
        assert!(faults.set(spec(r#"{"method":"NOT A METHOD"}"#)).is_err());
        assert!(
            faults
                .set(spec(
                    r#"{"errorRate":0.5,"truncateRate":0.3,"htmlRate":0.3}"#
                ))
                .is_err()
        );
        assert!(faults.set(spec(r#"{"ignoreFields":["a..b"]}"#)).is_err());
    }

    #[test]
    fn ignored_fields_keep_their_old_value_nested_or_absent() {
        let faults = Faults::default();
        faults
            .set(spec(
                r#"{"api":"vcd","ignoreFields":["enabled","definedSettings.hostName","settingsSource"]}"#,
            ))
            .unwrap();
        let object = |v: Value| v.as_object().cloned().unwrap();
        let before = object(
            serde_json::json!({"enabled": true, "definedSettings": {"hostName": "a", "port": 1}}),
        );
        let mut after = object(
            serde_json::json!({"enabled": false, "settingsSource": "DEFINED",
            "definedSettings": {"hostName": "b", "port": 2}}),
        );
        faults.keep_ignored(Api::Vcd, &before, &mut after);
        assert_eq!(
            Value::Object(after),
            serde_json::json!({"enabled": true, "definedSettings": {"hostName": "a", "port": 2}})
        );
        // Other APIs write everything.
        let mut other = before.clone();
        other.insert("enabled".into(), false.into());
        faults.keep_ignored(Api::Boruta, &before, &mut other);
        assert_eq!(other["enabled"], false);
        assert_eq!(faults.snapshot()["vcd"]["injected"]["ignoredWrites"], 1);
    }
}
