//! Prometheus metrics, served as text on `/metrics`. The chart's alerts and Grafana dashboard
//! query them (docs/operations.md lists them); `tests/observability.rs` checks that every metric
//! they use is here.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

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
pub struct KindReason {
    pub kind: String,
    pub reason: String,
}

/// A resource's Ready condition: `ready` is `True` or `False`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyCondition {
    pub kind: String,
    pub ready: String,
    pub reason: String,
}

/// `connection` is the IdentityApi, `namespace/name`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiCall {
    pub api: String,
    pub connection: String,
    pub method: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiConnection {
    pub api: String,
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    pub api: String,
}

/// One connection: `namespace/name` of its IdentityApi (the `connection` label of every
/// per-connection series).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabel {
    pub connection: String,
}

/// One namespace's use of one connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionNamespace {
    pub connection: String,
    pub namespace: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<KindResult, Counter>,
    pub reconcile_duration: Family<KindLabel, Histogram>,
    pub api_calls: Family<ApiCall, Counter>,
    pub rate_limited: Family<ApiLabel, Counter>,
    pub drift_detected: Family<KindLabel, Counter>,
    pub resources_ready: Family<KindLabel, Gauge>,
    pub resources: Family<ReadyCondition, Gauge>,
    pub reconcile_errors: Family<KindReason, Counter>,
    pub rate_limit_wait: Family<ApiConnection, Counter<f64, AtomicU64>>,
    pub write_loops: Family<KindLabel, Counter>,
    pub leader: Gauge,
    pub events_dropped: Counter,
    pub connection_unavailable: Family<ConnectionLabel, Gauge>,
    pub connection_backoff: Family<ConnectionLabel, Gauge<f64, AtomicU64>>,
    pub connection_failures: Family<ConnectionLabel, Counter>,
    pub put_off: Family<ConnectionNamespace, Counter>,
    /// Each object's Ready condition (status, reason), so that the gauges count it once; by a
    /// hash of its kind and `namespace/name`, not a copy of them (at 30,000 objects two share
    /// a hash with a chance of about one in 10^10, and would then be miscounted).
    ready_objects: Mutex<HashMap<u64, (bool, Box<str>)>>,
    object_hasher: std::hash::RandomState,
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
        let resources = Family::<ReadyCondition, Gauge>::default();
        registry.register(
            "resources",
            "Resources by kind and their Ready condition's status and reason",
            resources.clone(),
        );
        let reconcile_errors = Family::<KindReason, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by the condition reason they reported",
            reconcile_errors.clone(),
        );
        let rate_limit_wait = Family::<ApiConnection, Counter<f64, AtomicU64>>::default();
        registry.register(
            "identity_api_rate_limit_wait_seconds",
            "Time identity-API calls spent waiting for the connection's rate limit, a 429's \
             delay or the vendor's announced budget",
            rate_limit_wait.clone(),
        );
        let write_loops = Family::<KindLabel, Counter>::default();
        registry.register(
            "write_loops",
            "Writes stopped because the remote object still differed right after them",
            write_loops.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica reconciles (it holds the Lease, or runs without leader \
             election), 0 while it waits",
            leader.clone(),
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
        let put_off = Family::<ConnectionNamespace, Counter>::default();
        registry.register(
            "reconciles_put_off",
            "Reconciles put off, without any call, because their namespace had its share of a \
             ClusterIdentityApi several namespaces use running",
            put_off.clone(),
        );
        Self {
            registry,
            put_off,
            events_dropped,
            connection_unavailable,
            connection_backoff,
            connection_failures,
            resources,
            reconcile_errors,
            rate_limit_wait,
            write_loops,
            leader,
            reconciles,
            reconcile_duration,
            api_calls,
            rate_limited,
            drift_detected,
            resources_ready,
            ready_objects: Mutex::default(),
            object_hasher: std::hash::RandomState::new(),
        }
    }
}

/// The kinds the engine reconciles against a remote object (every kind but IdentityApi).
impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }

    pub fn api_call(&self, api: &str, connection: &str, method: &str, status: u16) {
        let code = if status == 0 {
            "error".to_owned()
        } else {
            status.to_string()
        };
        self.api_calls
            .get_or_create(&ApiCall {
                api: api.to_owned(),
                connection: connection.to_owned(),
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
    pub fn connection_failed(&self, connection: &str, wait: Duration) {
        let label = ConnectionLabel {
            connection: connection.to_owned(),
        };
        self.connection_unavailable.get_or_create(&label).set(1);
        self.connection_backoff
            .get_or_create(&label)
            .set(wait.as_secs_f64());
        self.connection_failures.get_or_create(&label).inc();
    }

    /// A backing-off connection works again.
    pub fn connection_recovered(&self, connection: &str) {
        let label = ConnectionLabel {
            connection: connection.to_owned(),
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

    /// A reconcile (or an IdentityApi's authentication) failed with `reason`.
    pub fn reconcile_error(&self, kind: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&KindReason {
                kind: kind.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A call of `connection` waited `waited` before it could be sent. Less than a millisecond
    /// is the time it takes to find that there is nothing to wait for: not counted.
    pub fn rate_limit_waited(&self, api: &str, connection: &str, waited: Duration) {
        if waited < Duration::from_millis(1) {
            return;
        }
        self.rate_limit_wait
            .get_or_create(&ApiConnection {
                api: api.to_owned(),
                connection: connection.to_owned(),
            })
            .inc_by(waited.as_secs_f64());
    }

    /// The engine stopped writing a resource of `kind` whose remote object kept differing.
    /// A managed kind's controller starts: its write-loop counter exists from then on, at 0.
    /// Prometheus' `increase()` sees no increase in a series' first sample, so the alert on
    /// write loops would miss the first one of a kind if its series only appeared with it.
    pub fn kind_started(&self, kind: &str) {
        let _created = self.write_loops.get_or_create(&KindLabel {
            kind: kind.to_owned(),
        });
    }

    pub fn write_loop(&self, kind: &str) {
        self.write_loops
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// A reconcile of a resource in `namespace` was put off for its turn on `connection`.
    pub fn put_off(&self, connection: &str, namespace: &str) {
        self.put_off
            .get_or_create(&ConnectionNamespace {
                connection: connection.to_owned(),
                namespace: namespace.to_owned(),
            })
            .inc();
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    pub fn drift(&self, kind: &str) {
        self.drift_detected
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Records one object's Ready condition, `(is it True, its reason)`, or `None` when the
    /// object is gone, and keeps the gauges exact (but for a hash collision, see
    /// `ready_objects`).
    pub fn set_ready(&self, kind: &str, object: &str, ready: Option<(bool, &str)>) {
        let mut objects = self.ready_objects.lock().expect("metrics lock");
        let key = self.object_hasher.hash_one((kind, object));
        let before = match ready {
            Some((r, reason)) => objects.insert(key, (r, reason.into())),
            None => objects.remove(&key),
        };
        let after: Option<(bool, Box<str>)> = ready.map(|(r, reason)| (r, reason.into()));
        if before == after {
            return;
        }
        let ready_gauge = self.resources_ready.get_or_create(&KindLabel {
            kind: kind.to_owned(),
        });
        if let Some((true, _)) = before {
            ready_gauge.dec();
        }
        if let Some((true, _)) = after {
            ready_gauge.inc();
        }
        let condition = |(r, reason): (bool, Box<str>)| ReadyCondition {
            kind: kind.to_owned(),
            ready: if r { "True" } else { "False" }.to_owned(),
            reason: reason.into(),
        };
        if let Some(b) = before {
            self.resources.get_or_create(&condition(b)).dec();
        }
        if let Some(a) = after {
            self.resources.get_or_create(&condition(a)).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_gauges_count_objects_once() {
        let m = Metrics::default();
        m.set_ready("IdentityBackend", "ns/a", Some((true, "Synced")));
        m.set_ready("IdentityBackend", "ns/a", Some((true, "Synced")));
        m.set_ready("IdentityBackend", "ns/b", Some((false, "SecretNotFound")));
        m.api_call("boruta", "ns/boruta", "GET", 429);
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
            "identity_operator_identity_api_unavailable{connection=\"ns/boruta\"} 1",
            "identity_operator_identity_api_backoff_seconds{connection=\"ns/boruta\"} 2.0",
            "identity_operator_identity_api_failed_attempts_total{connection=\"ns/boruta\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        m.connection_recovered("ns/boruta");
        assert!(
            m.encode()
                .contains("identity_operator_identity_api_unavailable{connection=\"ns/boruta\"} 0")
        );
        for line in [
            "identity_operator_resources_ready{kind=\"IdentityBackend\"} 1",
            "identity_operator_resources{kind=\"IdentityBackend\",ready=\"True\",reason=\"Synced\"} 1",
            "identity_operator_resources{kind=\"IdentityBackend\",ready=\"False\",reason=\"SecretNotFound\"} 1",
            "identity_operator_identity_api_rate_limited_total{api=\"boruta\"} 1",
            "identity_operator_identity_api_calls_total{api=\"boruta\",connection=\"ns/boruta\",method=\"GET\",status=\"429\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        m.set_ready("IdentityBackend", "ns/a", None);
        m.set_ready("IdentityBackend", "ns/b", Some((false, "Rejected")));
        let text = m.encode();
        for line in [
            "identity_operator_resources_ready{kind=\"IdentityBackend\"} 0",
            "identity_operator_resources{kind=\"IdentityBackend\",ready=\"True\",reason=\"Synced\"} 0",
            "identity_operator_resources{kind=\"IdentityBackend\",ready=\"False\",reason=\"SecretNotFound\"} 0",
            "identity_operator_resources{kind=\"IdentityBackend\",ready=\"False\",reason=\"Rejected\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn waits_errors_and_leadership_are_counted() {
        let m = Metrics::default();
        m.rate_limit_waited("auth0", "ns/auth0", Duration::from_millis(1500));
        m.rate_limit_waited("auth0", "ns/other", Duration::from_micros(300));
        m.reconcile_error("OrgConnection", "RateLimited");
        m.kind_started("LdapSettings");
        m.write_loop("OrgConnection");
        m.set_leader(true);
        let text = m.encode();
        for line in [
            "identity_operator_identity_api_rate_limit_wait_seconds_total{api=\"auth0\",connection=\"ns/auth0\"} 1.5",
            "identity_operator_reconcile_errors_total{kind=\"OrgConnection\",reason=\"RateLimited\"} 1",
            "identity_operator_write_loops_total{kind=\"OrgConnection\"} 1",
            "identity_operator_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        // A call that did not wait makes no series.
        assert!(!text.contains("ns/other"), "{text}");
        // A kind's write-loop counter exists from the start of its controller.
        assert!(text.contains("identity_operator_write_loops_total{kind=\"LdapSettings\"} 0"));
    }
}
