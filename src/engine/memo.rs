//! What the operator last wrote to each object, until the watch cache has caught up.
//!
//! A reconcile can start from a cached object older than the operator's own last write (a
//! requeue from a Secret or IdentityApi change right after a status write). Acting on that
//! stale copy would, for example, look up by name a backend whose id the status already holds
//! and record it as adopted, or miss the creation record written just before a create whose
//! answer was lost and record the object it finds as someone else's (left in place when the
//! resource is deleted). The memo hands back the newer state instead: status, finalizers and
//! annotations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use kube::ResourceExt;

use super::Managed;
use super::controller::LAST_APPLIED;
use super::spec::ManagedStatus;

struct Written {
    resource_version: u64,
    status: Option<ManagedStatus>,
    finalizers: Vec<String>,
    annotations: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct Memo(Mutex<HashMap<String, Written>>);

fn version<K: Managed>(obj: &K) -> Option<u64> {
    // resourceVersions are etcd revisions: integers that grow with every write.
    obj.resource_version()?.parse().ok()
}

impl Memo {
    /// Records an object as the API server returned it after one of our writes.
    pub fn remember<K: Managed>(&self, written: &K) {
        let (Some(uid), Some(resource_version)) = (written.uid(), version(written)) else {
            return;
        };
        let entry = Written {
            resource_version,
            status: written.managed_status().cloned(),
            finalizers: written.finalizers().to_vec(),
            annotations: written
                .annotations()
                .iter()
                .filter(|(k, _)| *k != LAST_APPLIED)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        self.0.lock().expect("lock").insert(uid, entry);
    }

    /// `cached` with our newer status and finalizers, when the cache has not seen our last
    /// write yet; `None` when the cache is current (the entry is then dropped).
    pub fn refresh<K: Managed>(&self, cached: &K) -> Option<K> {
        let uid = cached.uid()?;
        let seen = version(cached)?;
        let mut entries = self.0.lock().expect("lock");
        let written = entries.get(&uid)?;
        if seen >= written.resource_version {
            entries.remove(&uid);
            return None;
        }
        let mut fresh = cached.clone();
        fresh.set_managed_status(written.status.clone());
        fresh.meta_mut().finalizers = Some(written.finalizers.clone());
        fresh.meta_mut().annotations = Some(written.annotations.clone());
        fresh.meta_mut().resource_version = Some(written.resource_version.to_string());
        Some(fresh)
    }

    /// The watch cache now holds `cached`: an entry it has caught up with is dropped, so the
    /// memo does not keep a copy of every status until the object's next reconcile.
    pub fn seen<K: Managed>(&self, cached: &K) {
        let (Some(uid), Some(seen)) = (cached.uid(), version(cached)) else {
            return;
        };
        let mut entries = self.0.lock().expect("lock");
        if entries
            .get(&uid)
            .is_some_and(|w| seen >= w.resource_version)
        {
            entries.remove(&uid);
        }
    }

    pub fn forget<K: Managed>(&self, obj: &K) {
        if let Some(uid) = obj.uid() {
            self.0.lock().expect("lock").remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ManagedSpec;
    use crate::engine::spec::CommonSpec;

    /// A managed kind of the tests' own: the engine knows no real kind.
    #[derive(
        kube::CustomResource,
        serde::Serialize,
        serde::Deserialize,
        Clone,
        Debug,
        schemars::JsonSchema,
    )]
    #[kube(group = "test.example", version = "v1", kind = "Probe", namespaced)]
    #[kube(status = "ManagedStatus")]
    struct ProbeSpec {
        #[serde(flatten)]
        common: CommonSpec,
    }

    impl ManagedSpec for ProbeSpec {
        fn common(&self) -> &CommonSpec {
            &self.common
        }
    }

    #[test]
    fn a_stale_cache_gets_our_creation_record_back() {
        // The finalizer and creation record were written just before a create whose answer
        // was lost; the retry starts from a cache that has seen neither.
        let memo = Memo::default();
        let mut written = backend("12", None);
        written.metadata.finalizers = Some(vec![crate::engine::FINALIZER.into()]);
        written.metadata.annotations = Some(BTreeMap::from([(
            crate::engine::CREATES_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
        memo.remember(&written);
        let fresh = memo.refresh(&backend("10", None)).expect("refreshed");
        assert!(crate::engine::finalizer::has_finalizer(&fresh));
        assert!(crate::engine::finalizer::creation_recorded(&fresh));
    }

    fn backend(rv: &str, external_id: Option<&str>) -> Probe {
        let spec: ProbeSpec =
            serde_json::from_value(serde_json::json!({"apiRef": {"name": "a"}})).unwrap();
        let mut b = Probe::new("b", spec);
        b.metadata.uid = Some("u1".into());
        b.metadata.resource_version = Some(rv.into());
        b.status = external_id.map(|id| ManagedStatus {
            external_id: Some(id.into()),
            ..Default::default()
        });
        b
    }

    #[test]
    fn a_stale_cache_gets_our_last_write_back() {
        let memo = Memo::default();
        memo.remember(&backend("12", Some("id-1")));
        let fresh = memo
            .refresh(&backend("10", None))
            .expect("stale cache is refreshed");
        assert_eq!(fresh.status.unwrap().external_id.as_deref(), Some("id-1"));
        memo.remember(&backend("13", Some("id-1")));
        memo.seen(&backend("12", Some("id-1")));
        assert!(memo.refresh(&backend("12", None)).is_some());
        memo.seen(&backend("13", Some("id-1")));
        assert!(memo.refresh(&backend("12", None)).is_none());
        memo.remember(&backend("12", Some("id-1")));
        // Once the cache has caught up the entry is gone.
        assert!(memo.refresh(&backend("12", Some("id-1"))).is_none());
        assert!(memo.refresh(&backend("10", None)).is_none());
    }
}
