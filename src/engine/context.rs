//! The state every reconcile shares: clients, caches, indexes, per-object backoff and write
//! streaks, and the operator-wide settings.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use rand::Rng;

use super::cache::Cache;
use super::connector::Connector;
use super::dependents::Dependents;
use super::events::Events;
use super::key::ObjectKey;
use super::memo::Memo;
use super::reader::Reader;
use super::secrets::SecretVersions;
use super::usage::Usage;
use super::{MANAGER, Managed};
use crate::metrics::Metrics;

/// Writes made in a row from one state of spec, Secrets and remote object.
struct Unconverged {
    attempt: String,
    writes: u32,
}

/// Operator-wide settings of the engine.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Drift check interval: the managed kinds' sweep (`controller::sweep`) checks each
    /// resource once per interval; IdentityApis requeue after it, jittered ±10 %.
    pub resync: Duration,
    /// How long a deletion may wait for a missing IdentityApi or credentials before the
    /// operator gives up on the remote object and releases the finalizer (Orphan).
    pub deletion_grace: Duration,
    /// Identity of this replica in Events.
    pub instance: String,
}

/// Shared state of all controllers.
pub struct Context {
    pub kube: Client,
    pub events: Events,
    /// The connections resources name with `spec.apiRef`.
    pub connector: Arc<dyn Connector>,
    /// Where the Secrets and ConfigMaps resources refer to are read.
    pub reader: Arc<dyn Reader>,
    pub secrets: Arc<SecretVersions>,
    pub dependents: Dependents,
    /// Which resources may still need which connection (shared by every scope).
    pub usage: Arc<Usage>,
    pub memo: Memo,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    failures: Mutex<HashMap<ObjectKey, u32>>,
    unconverged: Mutex<HashMap<ObjectKey, Unconverged>>,
    caches: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl Context {
    pub fn new(
        kube: Client,
        connector: Arc<dyn Connector>,
        reader: Arc<dyn Reader>,
        secrets: Arc<SecretVersions>,
        metrics: Arc<Metrics>,
        settings: Settings,
    ) -> Self {
        Self {
            events: Events::new(
                kube.clone(),
                MANAGER,
                &settings.instance,
                metrics.events_dropped.clone(),
            ),
            kube,
            connector,
            reader,
            secrets,
            dependents: Default::default(),
            usage: Default::default(),
            memo: Default::default(),
            metrics,
            settings,
            failures: Mutex::default(),
            unconverged: Mutex::default(),
            caches: Mutex::default(),
        }
    }

    /// Shares `usage` with the other scopes of the operator (a ClusterIdentityApi has users in
    /// all of them).
    pub fn with_usage(mut self, usage: Arc<Usage>) -> Self {
        self.usage = usage;
        self
    }

    /// Makes the watch cache of kind `K` available to reconciles of other objects.
    pub fn register_cache<K: Managed>(&self, cache: Arc<Cache<K>>) {
        self.caches
            .lock()
            .expect("lock")
            .insert(TypeId::of::<K>(), Box::new(cache));
    }

    pub fn cache<K: Managed>(&self) -> Option<Arc<Cache<K>>> {
        self.caches
            .lock()
            .expect("lock")
            .get(&TypeId::of::<K>())
            .and_then(|s| s.downcast_ref::<Arc<Cache<K>>>())
            .cloned()
    }

    /// Per-object exponential backoff: 1 s, 2 s, 4 s … up to 5 min, with ±20 % jitter.
    pub fn next_backoff(&self, key: &ObjectKey) -> Duration {
        let mut failures = self.failures.lock().expect("lock");
        let n = failures.entry(key.clone()).or_insert(0);
        let base = Duration::from_secs(1).saturating_mul(1u32 << (*n).min(9));
        *n += 1;
        jitter(base.min(Duration::from_secs(300)), 0.2)
    }

    pub fn reset_backoff(&self, key: &ObjectKey) {
        self.failures.lock().expect("lock").remove(key);
    }

    /// Writes already made in a row from exactly `attempt` (spec, Secrets and remote state)
    /// that left the remote object unchanged.
    pub fn unconverged_writes(&self, key: &ObjectKey, attempt: &str) -> u32 {
        let streaks = self.unconverged.lock().expect("lock");
        streaks
            .get(key)
            .filter(|s| s.attempt == attempt)
            .map_or(0, |s| s.writes)
    }

    /// Counts a write made from `attempt`: one more in the streak when the previous write was
    /// made from the same state (it changed nothing), else the first of a new one.
    pub fn count_write(&self, key: &ObjectKey, attempt: String) {
        let mut streaks = self.unconverged.lock().expect("lock");
        let streak = streaks.entry(key.clone()).or_insert_with(|| Unconverged {
            attempt: String::new(),
            writes: 0,
        });
        if streak.attempt == attempt {
            streak.writes += 1;
        } else {
            *streak = Unconverged { attempt, writes: 1 };
        }
    }

    /// The remote object matched: whatever was written before did its work.
    pub fn converged(&self, key: &ObjectKey) {
        self.unconverged.lock().expect("lock").remove(key);
    }

    /// The next drift check.
    pub fn resync(&self) -> Duration {
        jitter(self.settings.resync, 0.1)
    }
}

pub fn jitter(d: Duration, fraction: f64) -> Duration {
    let f = rand::rng().random_range((1.0 - fraction)..=(1.0 + fraction));
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100), 0.1);
            assert!(d >= Duration::from_secs(90) && d <= Duration::from_secs(110));
        }
    }
}
