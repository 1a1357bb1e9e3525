//! Prometheus metrics, served as text on `/metrics`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindResult {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCall {
    pub api: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    pub api: String,
}

/// One connection: `namespace/name` of its IdentityApi.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabel {
    pub identity_api: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<KindResult, Counter>,
    pub reconcile_duration: Family<KindLabel, Histogram>,
    pub api_calls: Family<ApiCall, Counter>,
    pub rate_limited: Family<ApiLabel, Counter>,
    pub drift_detected: Family<KindLabel, Counter>,
    pub resources_ready: Family<KindLabel, Gauge>,
    pub events_dropped: Counter,
    pub connection_unavailable: Family<ConnectionLabel, Gauge>,
    pub connection_backoff: Family<ConnectionLabel, Gauge<f64, AtomicU64>>,
    pub connection_failures: Family<ConnectionLabel, Counter>,
    ready_objects: Mutex<HashMap<(String, String), bool>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("identity_operator");
        let reconciles = Family::<KindResult, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let reconcile_duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            reconcile_duration.clone(),
        );
        let api_calls = Family::<ApiCall, Counter>::default();
        registry.register(
            "identity_api_calls",
            "Identity-API calls by api, method and status code",
            api_calls.clone(),
        );
        let rate_limited = Family::<ApiLabel, Counter>::default();
        registry.register(
            "identity_api_rate_limited",
            "HTTP 429 answers received",
            rate_limited.clone(),
        );
        let drift_detected = Family::<KindLabel, Counter>::default();
        registry.register(
            "drift_detected",
            "Remote objects found changed behind the operator's back",
            drift_detected.clone(),
        );
        let resources_ready = Family::<KindLabel, Gauge>::default();
        registry.register(
            "resources_ready",
            "Resources whose Ready condition is True",
            resources_ready.clone(),
        );
        let events_dropped = Counter::default();
        registry.register(
            "events_dropped",
            "Kubernetes Events not published because too many were waiting",
            events_dropped.clone(),
        );
        let connection_unavailable = Family::<ConnectionLabel, Gauge>::default();
        registry.register(
            "identity_api_unavailable",
            "1 while the connection of an IdentityApi backs off after its API could not be reached or its token endpoint failed",
            connection_unavailable.clone(),
        );
        let connection_backoff = Family::<ConnectionLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "identity_api_backoff_seconds",
            "How long the connection of an IdentityApi waited after its last failed attempt (0 while it works)",
            connection_backoff.clone(),
        );
        let connection_failures = Family::<ConnectionLabel, Counter>::default();
        registry.register(
            "identity_api_failed_attempts",
            "Attempts of a backing-off connection that failed (one per attempt, however many calls waited for it)",
            connection_failures.clone(),
        );
        Self {
            registry,
            events_dropped,
            connection_unavailable,
            connection_backoff,
            connection_failures,
            reconciles,
            reconcile_duration,
            api_calls,
            rate_limited,
            drift_detected,
            resources_ready,
            ready_objects: Mutex::default(),
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    pub fn api_call(&self, api: &str, method: &str, status: u16) {
        let code = if status == 0 {
            "error".to_owned()
        } else {
            status.to_string()
        };
        self.api_calls
            .get_or_create(&ApiCall {
                api: api.to_owned(),
                method: method.to_owned(),
                status: code,
            })
            .inc();
        if status == 429 {
            self.rate_limited
                .get_or_create(&ApiLabel {
                    api: api.to_owned(),
                })
                .inc();
        }
    }

    /// A connection's attempt failed; it waits `wait` before the next.
    pub fn connection_failed(&self, identity_api: &str, wait: std::time::Duration) {
        let label = ConnectionLabel {
            identity_api: identity_api.to_owned(),
        };
        self.connection_unavailable.get_or_create(&label).set(1);
        self.connection_backoff
            .get_or_create(&label)
            .set(wait.as_secs_f64());
        self.connection_failures.get_or_create(&label).inc();
    }

    /// A backing-off connection works again.
    pub fn connection_recovered(&self, identity_api: &str) {
        let label = ConnectionLabel {
            identity_api: identity_api.to_owned(),
        };
        self.connection_unavailable.get_or_create(&label).set(0);
        self.connection_backoff.get_or_create(&label).set(0.0);
    }

    pub fn reconciled(&self, kind: &str, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&KindResult {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .observe(seconds);
    }

    pub fn drift(&self, kind: &str) {
        self.drift_detected
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records whether one object is Ready (`None` when it is gone) and keeps the gauge exact.
    pub fn set_ready(&self, kind: &str, object: &str, ready: Option<bool>) {
        let mut objects = self.ready_objects.lock().expect("metrics lock");
        let key = (kind.to_owned(), object.to_owned());
        let before = match ready {
            Some(r) => objects.insert(key, r),
            None => objects.remove(&key),
        }
        .unwrap_or(false);
        let after = ready.unwrap_or(false);
        let gauge = self.resources_ready.get_or_create(&KindLabel {
            kind: kind.to_owned(),
        });
        match (before, after) {
            (false, true) => {
                gauge.inc();
            }
            (true, false) => {
                gauge.dec();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_gauge_counts_objects_once() {
        let m = Metrics::default();
        m.set_ready("IdentityBackend", "ns/a", Some(true));
        m.set_ready("IdentityBackend", "ns/a", Some(true));
        m.set_ready("IdentityBackend", "ns/b", Some(false));
        m.api_call("boruta", "GET", 429);
        let text = m.encode();
        assert!(
            text.contains("identity_operator_resources_ready{kind=\"IdentityBackend\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("identity_operator_identity_api_rate_limited_total{api=\"boruta\"} 1"),
            "{text}"
        );
        m.connection_failed("ns/boruta", std::time::Duration::from_secs(2));
        let text = m.encode();
        for line in [
            "identity_operator_identity_api_unavailable{identity_api=\"ns/boruta\"} 1",
            "identity_operator_identity_api_backoff_seconds{identity_api=\"ns/boruta\"} 2.0",
            "identity_operator_identity_api_failed_attempts_total{identity_api=\"ns/boruta\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        m.connection_recovered("ns/boruta");
        assert!(
            m.encode().contains(
                "identity_operator_identity_api_unavailable{identity_api=\"ns/boruta\"} 0"
            )
        );
        m.set_ready("IdentityBackend", "ns/a", None);
        assert!(
            m.encode()
                .contains("identity_operator_resources_ready{kind=\"IdentityBackend\"} 0")
        );
    }
}
