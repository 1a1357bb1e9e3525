//! Which resources use which Secret or IdentityApi, so a change to one requeues exactly the
//! resources that reference it (and nothing else).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use tokio::sync::mpsc::UnboundedSender;

use super::key::ObjectKey;

/// Something a resource depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Secret { namespace: String, name: String },
    Api { namespace: String, name: String },
    ClusterApi { name: String },
}

/// Sends (namespace, name) of a resource to requeue to its kind's controller.
pub type Requeue = UnboundedSender<(String, String)>;

/// A resource that depends on targets.
pub type Dependent = ObjectKey;

#[derive(Default)]
pub struct Dependents {
    by_target: RwLock<HashMap<Target, HashSet<Dependent>>>,
    by_dependent: RwLock<HashMap<Dependent, Vec<Target>>>,
    /// Dependents whose last reconcile failed: the ones an IdentityApi that has just become
    /// usable must requeue (the others either succeeded or are still running).
    failing: RwLock<HashSet<Dependent>>,
    /// The resourceVersion of each Secret as the operator last wrote it (the Secret of an
    /// AdminApiApp): the watch event of that write is no change for the resource that made it.
    written: Mutex<HashMap<Target, String>>,
    /// One channel per kind, feeding that kind's work queue (`controller::run_kind`).
    senders: RwLock<HashMap<&'static str, Vec<Requeue>>>,
}

impl Dependents {
    pub fn register(&self, kind: &'static str, tx: Requeue) {
        self.senders
            .write()
            .expect("lock")
            .entry(kind)
            .or_default()
            .push(tx);
    }

    /// What requeues a resource of `kind`.
    pub fn senders(&self, kind: &str) -> Vec<Requeue> {
        let senders = self.senders.read().expect("lock");
        senders.get(kind).cloned().unwrap_or_default()
    }

    /// Replaces what `dependent` depends on.
    pub fn record(&self, dependent: Dependent, targets: Vec<Target>) {
        let mut by_dep = self.by_dependent.write().expect("lock");
        if by_dep.get(&dependent) == Some(&targets) {
            return;
        }
        let mut by_target = self.by_target.write().expect("lock");
        if let Some(old) = by_dep.remove(&dependent) {
            for t in old {
                if let Some(set) = by_target.get_mut(&t) {
                    set.remove(&dependent);
                    if set.is_empty() {
                        by_target.remove(&t);
                    }
                }
            }
        }
        for t in &targets {
            by_target
                .entry(t.clone())
                .or_default()
                .insert(dependent.clone());
        }
        if !targets.is_empty() {
            by_dep.insert(dependent, targets);
        }
    }

    pub fn forget(&self, dependent: Dependent) {
        self.failing.write().expect("lock").remove(&dependent);
        self.record(dependent, Vec::new());
    }

    /// Records whether the last reconcile of `dependent` failed.
    pub fn settled(&self, dependent: &Dependent, failed: bool) {
        let known = self.failing.read().expect("lock").contains(dependent);
        if known != failed {
            let mut failing = self.failing.write().expect("lock");
            if failed {
                failing.insert(dependent.clone());
            } else {
                failing.remove(dependent);
            }
        }
    }

    /// Remembers that the operator itself wrote `target` at `resource_version`.
    pub fn wrote(&self, target: Target, resource_version: String) {
        self.written
            .lock()
            .expect("lock")
            .insert(target, resource_version);
    }

    /// Requeues the dependents of `target` seen at `resource_version`, unless that is the
    /// operator's own last write of it.
    pub fn changed(&self, target: &Target, resource_version: Option<&str>) -> usize {
        let mut written = self.written.lock().expect("lock");
        if let Some(ours) = written.get(target) {
            let ours = ours.as_str() == resource_version.unwrap_or_default();
            written.remove(target);
            if ours {
                return 0;
            }
        }
        drop(written);
        self.trigger(target)
    }

    /// Requeues the resources of `namespace` that depend on a target `which` accepts (the
    /// namespace's labels changed, and with them its access to cluster connections).
    pub fn trigger_in(&self, namespace: &str, which: impl Fn(&Target) -> bool) -> usize {
        let deps: HashSet<Dependent> = {
            let by_target = self.by_target.read().expect("lock");
            let all = by_target
                .iter()
                .filter(|(t, _)| which(t))
                .flat_map(|(_, d)| d);
            all.filter(|d| &*d.namespace == namespace)
                .cloned()
                .collect()
        };
        self.requeue(deps.iter())
    }

    /// Requeues every resource that depends on `target`.
    pub fn trigger(&self, target: &Target) -> usize {
        self.send(target, false)
    }

    /// Requeues the resources that depend on `target` and whose last reconcile failed.
    pub fn trigger_failing(&self, target: &Target) -> usize {
        self.send(target, true)
    }

    fn send(&self, target: &Target, only_failing: bool) -> usize {
        let deps: Vec<Dependent> = match self.by_target.read().expect("lock").get(target) {
            Some(set) if only_failing => {
                let failing = self.failing.read().expect("lock");
                set.intersection(&failing).cloned().collect()
            }
            Some(set) => set.iter().cloned().collect(),
            None => return 0,
        };
        self.requeue(deps.iter())
    }

    fn requeue<'a>(&self, deps: impl Iterator<Item = &'a Dependent>) -> usize {
        let senders = self.senders.read().expect("lock");
        let mut sent = 0;
        for dep in deps {
            for tx in senders.get(dep.kind).into_iter().flatten() {
                let _ = tx.send((dep.namespace.to_string(), dep.name.to_string()));
            }
            sent += 1;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str) -> Target {
        Target::Secret {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn only_dependents_of_the_changed_target_are_requeued() {
        let d = Dependents::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        d.register("IdentityBackend", tx);
        d.record(
            ObjectKey::new("IdentityBackend", "ns", "a"),
            vec![secret("s1")],
        );
        d.record(
            ObjectKey::new("IdentityBackend", "ns", "b"),
            vec![secret("s2")],
        );
        assert_eq!(d.trigger(&secret("s1")), 1);
        assert_eq!(rx.try_recv().unwrap(), ("ns".into(), "a".into()));
        assert!(rx.try_recv().is_err());
        // a moved to s2: s1 no longer requeues it
        d.record(
            ObjectKey::new("IdentityBackend", "ns", "a"),
            vec![secret("s2")],
        );
        assert_eq!(d.trigger(&secret("s1")), 0);
        assert_eq!(d.trigger(&secret("s2")), 2);
        d.forget(ObjectKey::new("IdentityBackend", "ns", "a"));
        assert_eq!(d.trigger(&secret("s2")), 1);
        while rx.try_recv().is_ok() {}
        // Only the failing ones, when asked.
        let b = ObjectKey::new("IdentityBackend", "ns", "b");
        assert_eq!(d.trigger_failing(&secret("s2")), 0);
        d.settled(&b, true);
        assert_eq!(d.trigger_failing(&secret("s2")), 1);
        assert_eq!(rx.try_recv().unwrap(), ("ns".into(), "b".into()));
        d.settled(&b, false);
        assert_eq!(d.trigger_failing(&secret("s2")), 0);
        // Our own write of a Secret is no change; the next one is.
        d.wrote(secret("s2"), "7".into());
        assert_eq!(d.changed(&secret("s2"), Some("7")), 0);
        assert_eq!(d.changed(&secret("s2"), Some("8")), 1);
    }
}
