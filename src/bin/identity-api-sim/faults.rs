//! Injected faults per API: latency, random errors, bursts of 429, and a request-rate limit.
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
use serde_json::Value;

use crate::wire::{Api, Locked};

/// One `POST /_sim/faults` object. Posting replaces the previous faults of the API(s) named.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// An API name or `*` (the default) for all five.
    #[serde(default, skip_serializing)]
    pub api: Option<String>,
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
    /// The next N requests get a 429 in the vendor's shape.
    #[serde(default)]
    pub burst429: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
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
}

#[derive(Debug, Default)]
pub struct Decision {
    pub latency: Duration,
    pub response_delay: Duration,
    pub reject: Option<Rejection>,
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
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1"));
            }
        }
        if let Some(status) = spec.error_status
            && !(400..=599).contains(&status)
        {
            return Err("errorStatus must be a 4xx or 5xx status".into());
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

    /// Decides what happens to one request arriving now; counts it against the rate limit.
    pub fn decide(&self, api: Api, now_ms: u64) -> Decision {
        let mut inner = self.inner.locked();
        let Some(f) = inner.get_mut(&api) else {
            return Decision::default();
        };
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
        } else if f.spec.error_rate > 0.0 && rng.random_bool(f.spec.error_rate) {
            let status = f.spec.error_status.unwrap_or(503);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            f.injected.errors += 1;
            decision.reject = Some(Rejection::Injected(status));
        }
        decision
    }
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
            .filter(|_| faults.decide(Api::Auth0, 5_000).reject.is_none())
            .count();
        assert_eq!(passed, 3);
        assert!(faults.decide(Api::Auth0, 6_000).reject.is_none());
        assert!(faults.decide(Api::Boruta, 5_000).reject.is_none());
    }

    #[test]
    fn bursts_count_down_and_wildcard_applies_everywhere() {
        let faults = Faults::default();
        faults.set(spec(r#"{"api":"*","burst429":2}"#)).unwrap();
        assert!(faults.decide(Api::Vcd, 0).reject.is_some());
        assert!(faults.decide(Api::Vcd, 0).reject.is_some());
        assert!(faults.decide(Api::Vcd, 0).reject.is_none());
        assert!(faults.decide(Api::Xelion, 0).reject.is_some());
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
        let d = faults.decide(Api::Boruta, 0);
        assert_eq!(d.latency, Duration::from_millis(105));
        assert_eq!(d.response_delay, Duration::from_millis(200));
        faults
            .set(spec(r#"{"api":"boruta","slowRate":0,"slowMs":100}"#))
            .unwrap();
        assert!(faults.decide(Api::Boruta, 0).latency.is_zero());
        let injected = &faults.snapshot()["boruta"]["injected"];
        assert_eq!(injected["slow"], 0, "counts restart with a new spec");
    }

    #[test]
    fn invalid_specs_are_refused() {
        let faults = Faults::default();
        assert!(faults.set(spec(r#"{"errorRate":2}"#)).is_err());
        assert!(faults.set(spec(r#"{"slowRate":-0.5}"#)).is_err());
        assert!(faults.set(spec(r#"{"lateRate":1.5}"#)).is_err());
        assert!(faults.set(spec(r#"{"api":"nope"}"#)).is_err());
        assert!(faults.set(spec(r#"{"errorStatus":200}"#)).is_err());
    }
}
