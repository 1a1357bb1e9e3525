//! The watch cache of a managed kind, and the filter of its watch events: each object is kept
//! as its compact JSON (less what `controller::slim` drops), compressed, under its namespace
//! and name, with one hash of what makes a change worth a reconcile (`significant`). A
//! reconcile decodes the one object it works on (microseconds); `check_singleton` the few
//! settings objects of a namespace.
//!
//! The objects of a kind are alike: the same keys, the same finalizer, annotations, condition
//! types and messages, often the same values. Packed (`crate::pack`) against the JSON of the
//! first object with a status the cache sees, an IdentityBackend of 1.1 KB takes about 110
//! bytes: what is left is mostly its name, uids and timestamps. An object stored before the
//! cache had a dictionary is compressed alone until its next change.
//!
//! It takes the place of kube-runtime's reflector store and trigger filter, which kept, beside
//! each object, its `ObjectMeta` (about 400 bytes of mostly empty fields, plus the name,
//! namespace and uid), a key copying those three again, and a second map keyed the same way
//! for the filter's hashes: about 900 bytes an object before its JSON. Here an object costs
//! its packed JSON, its name and 40 bytes, and a namespace's name is kept once.
//!
//! A list (the first, or after a watch could not resume) updates the entries in place, and
//! drops at its end what it did not show again; there is no second map while it runs, and a
//! reconcile started by a listed object always finds it.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::RwLock;

use kube::ResourceExt;
use kube::runtime::watcher;
use tokio::sync::watch;

use super::Managed;
use super::controller::significant_change;
use super::queue::Key;
use crate::pack::{Packed, Packer};

pub struct Cache<K> {
    inner: RwLock<Inner>,
    /// Whether a first list has ended.
    listed: watch::Sender<bool>,
    kind: PhantomData<fn() -> K>,
}

#[derive(Default)]
struct Inner {
    /// namespace → name → object.
    objects: HashMap<String, HashMap<String, Entry>>,
    /// Counts the lists: what the latest did not show again is gone when it ends.
    listing: u32,
    /// Its dictionary is the JSON of the first object with a status the cache saw.
    packer: Packer,
}

struct Entry {
    significant: u64,
    listing: u32,
    json: Packed,
}

impl<K: Managed> Default for Cache<K> {
    fn default() -> Self {
        Cache {
            inner: RwLock::default(),
            listed: watch::Sender::new(false),
            kind: PhantomData,
        }
    }
}

impl<K: Managed> Cache<K> {
    /// A cache listed once, with `objects` (plans and exports, which read but do not watch).
    pub fn of(objects: impl IntoIterator<Item = K>) -> Self {
        let cache = Self::default();
        cache.apply(&watcher::Event::Init);
        for obj in objects {
            cache.apply(&watcher::Event::InitApply(obj));
        }
        cache.apply(&watcher::Event::InitDone);
        cache
    }

    /// Takes in a watch event; the key of the object when it is new or changed significantly:
    /// its spec (generation), pause or deletion, or it is another object under the same name
    /// (uid). The operator's own status and finalizer writes are not significant.
    pub fn apply(&self, event: &watcher::Event<K>) -> Option<Key> {
        match event {
            watcher::Event::Init => {
                let mut inner = self.inner.write().expect("lock");
                inner.listing = inner.listing.wrapping_add(1);
            }
            watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                let significant = significant(obj);
                // Serializing a value that was just deserialized cannot fail; an empty body
                // would only make `decode` fail, and that reconcile with it.
                let json = serde_json::to_vec(obj).unwrap_or_default();
                let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
                let mut inner = self.inner.write().expect("lock");
                let listing = inner.listing;
                let json = inner.packer.pack(&json, obj.managed_status().is_some());
                let entry = Entry {
                    significant,
                    listing,
                    json,
                };
                let before = inner
                    .objects
                    .entry(namespace.clone())
                    .or_default()
                    .insert(name.clone(), entry);
                if before.is_none_or(|b| b.significant != significant) {
                    return Some((namespace, name));
                }
            }
            watcher::Event::Delete(obj) => {
                let namespace = obj.namespace().unwrap_or_default();
                let mut inner = self.inner.write().expect("lock");
                if let Some(names) = inner.objects.get_mut(&namespace) {
                    names.remove(&obj.name_any());
                    if names.is_empty() {
                        inner.objects.remove(&namespace);
                    }
                }
            }
            watcher::Event::InitDone => {
                let mut inner = self.inner.write().expect("lock");
                let listing = inner.listing;
                inner.objects.retain(|_, names| {
                    names.retain(|_, e| e.listing == listing);
                    !names.is_empty()
                });
                drop(inner);
                self.listed.send_replace(true);
            }
        }
        None
    }

    /// Resolves once a first list has ended.
    pub async fn until_listed(&self) {
        let mut listed = self.listed.subscribe();
        // The sender lives as long as `self`.
        let _ = listed.wait_for(|listed| *listed).await;
    }

    /// The object as the watch last showed it; `Err` when its JSON does not decode (it was
    /// encoded from a typed object, so this does not happen in practice).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Result<K, serde_json::Error>> {
        // Unpacked under the lock, decoded after it: the watch waits for readers.
        let json = {
            let inner = self.inner.read().expect("lock");
            let entry = inner.objects.get(namespace)?.get(name)?;
            inner.packer.unpack(&entry.json)
        };
        Some(json.and_then(|json| serde_json::from_slice(&json)))
    }

    /// The keys of every object.
    pub fn keys(&self) -> Vec<Key> {
        let inner = self.inner.read().expect("lock");
        inner
            .objects
            .iter()
            .flat_map(|(ns, names)| names.keys().map(|name| (ns.clone(), name.clone())))
            .collect()
    }

    /// The objects of one namespace, skipping any that do not decode (none should).
    pub fn in_namespace(&self, namespace: &str) -> Vec<K> {
        let inner = self.inner.read().expect("lock");
        inner.objects.get(namespace).map_or_else(Vec::new, |names| {
            names
                .values()
                .filter_map(|e| inner.packer.decode(&e.json).ok())
                .collect()
        })
    }
}

/// What makes a change worth a reconcile: [`significant_change`] and the uid, which tells an
/// object deleted and made again under the same name (at generation 1 again) from the old one.
fn significant<K: Managed>(obj: &K) -> u64 {
    let mut h = DefaultHasher::new();
    significant_change(obj).hash(&mut h);
    obj.meta().uid.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::identity_backend::IdentityBackend;
    use serde_json::json;
    use watcher::Event::*;

    fn backend(
        name: &str,
        uid: &str,
        generation: i64,
        status: serde_json::Value,
    ) -> IdentityBackend {
        serde_json::from_value(json!({
            "apiVersion": "identity.operator.dev/v1alpha1",
            "kind": "IdentityBackend",
            "metadata": {
                "name": name, "namespace": "ns", "uid": uid, "resourceVersion": "7",
                "generation": generation, "finalizers": ["f"], "labels": {"team": "a"},
            },
            "spec": {"apiRef": {"name": "boruta"}, "name": "B", "type": "Ldap"},
            "status": status,
        }))
        .expect("a valid IdentityBackend")
    }

    fn key(name: &str) -> Option<Key> {
        Some(("ns".into(), name.into()))
    }

    #[test]
    fn keeps_the_object_whole() {
        let obj = backend("b", "u-1", 3, json!({"externalId": "x-1"}));
        let cache = Cache::of([obj.clone()]);
        let got = cache.get("ns", "b").expect("cached").expect("decodes");
        assert_eq!(
            serde_json::to_value(got).unwrap(),
            serde_json::to_value(&obj).unwrap()
        );
        assert!(cache.get("ns", "other").is_none() && cache.get("other", "b").is_none());
        assert_eq!(cache.in_namespace("ns").len(), 1);
        assert!(cache.in_namespace("other").is_empty());
    }

    #[test]
    fn only_a_new_object_or_a_significant_change_is_due() {
        let cache = Cache::default();
        let b = |uid, generation, status| backend("b", uid, generation, status);
        assert_eq!(cache.apply(&Apply(b("u-1", 1, json!({})))), key("b"));
        // The operator's own status write.
        assert_eq!(
            cache.apply(&Apply(b("u-1", 1, json!({"externalId": "x"})))),
            None
        );
        let written = cache.get("ns", "b").unwrap().unwrap();
        assert_eq!(written.status.unwrap().external_id.as_deref(), Some("x"));
        assert_eq!(cache.apply(&Apply(b("u-1", 2, json!({})))), key("b"));
        // Deleted and made again under the same name.
        assert_eq!(cache.apply(&Apply(b("u-2", 2, json!({})))), key("b"));
        let mut deleting = b("u-2", 2, json!({}));
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        assert_eq!(cache.apply(&Apply(deleting.clone())), key("b"));
        assert_eq!(cache.apply(&Delete(deleting)), None);
        assert!(cache.get("ns", "b").is_none() && cache.keys().is_empty());
    }

    #[test]
    fn a_list_keeps_what_it_shows_and_drops_the_rest_at_its_end() {
        let cache = Cache::default();
        let b = |name| backend(name, name, 1, json!({}));
        assert_eq!(cache.apply(&Init), None);
        assert_eq!(cache.apply(&InitApply(b("a"))), key("a"));
        assert_eq!(cache.apply(&InitApply(b("b"))), key("b"));
        assert!(!*cache.listed.borrow());
        cache.apply(&InitDone);
        assert!(*cache.listed.borrow());
        // A re-list after the watch could not resume: "a" unchanged, "b" gone meanwhile, "c"
        // new. "c" is there at once; "b" until the list ends.
        cache.apply(&Init);
        assert_eq!(cache.apply(&InitApply(b("a"))), None);
        assert_eq!(cache.apply(&InitApply(b("c"))), key("c"));
        assert!(cache.get("ns", "b").is_some() && cache.get("ns", "c").is_some());
        cache.apply(&InitDone);
        let mut keys = cache.keys();
        keys.sort();
        assert_eq!(keys, vec![key("a").unwrap(), key("c").unwrap()]);
    }

    /// As the operator leaves an IdentityBackend it created: finalizer, annotation, status.
    fn reconciled(i: u32) -> IdentityBackend {
        let uid = format!("{i:08x}-b148-4035-95bc-c32ff7f7ae41");
        let at = format!("2026-12-02T16:{:02}:{:02}Z", i / 60 % 60, i % 60);
        serde_json::from_value(json!({
            "apiVersion": "identity.operator.dev/v1alpha1",
            "kind": "IdentityBackend",
            "metadata": {
                "annotations": {"identity.operator.dev/creates-remote": "true"},
                "creationTimestamp": at, "finalizers": ["identity.operator.dev/cleanup"],
                "generation": 1, "name": format!("backend-{i}"), "namespace": "ns",
                "resourceVersion": format!("{}", 20000 + i), "uid": uid,
            },
            "spec": {"apiRef": {"name": "boruta"}, "name": format!("Backend {i}"),
                     "passwordHashingAlg": "argon2", "smtpPort": 2525},
            "status": {
                "appliedFields": ["passwordHashingAlg", "smtpPort"],
                "conditions": [
                    {"lastTransitionTime": at, "message": "remote object matches the spec",
                     "observedGeneration": 1, "reason": "Synced", "status": "True", "type": "Ready"},
                    {"lastTransitionTime": at, "message": "last reconcile succeeded",
                     "observedGeneration": 1, "reason": "ReconcileSuccess", "status": "True",
                     "type": "Synced"},
                ],
                "created": true, "externalId": uid, "lastSyncTime": at, "observedGeneration": 1,
                "remote": {"isDefault": "false", "name": format!("Backend {i}"), "type": "Internal"},
            },
        }))
        .expect("a valid IdentityBackend")
    }

    fn packed_len(cache: &Cache<IdentityBackend>, name: &str) -> usize {
        cache.inner.read().unwrap().objects["ns"][name].json.len()
    }

    #[test]
    fn objects_are_kept_compressed_against_the_first_reconciled_one() {
        let cache = Cache::default();
        // Before any object has a status there is no dictionary: compressed alone.
        let fresh = backend("fresh", "u-0", 1, json!(null));
        cache.apply(&Apply(fresh.clone()));
        for i in 1..=3 {
            cache.apply(&Apply(reconciled(i)));
        }
        let json_len = serde_json::to_vec(&reconciled(3)).unwrap().len();
        let packed = packed_len(&cache, "backend-3");
        assert!(json_len > 1000, "{json_len}");
        assert!(packed * 5 < json_len, "{packed} of {json_len} bytes");
        for (name, obj) in [
            ("fresh", fresh),
            ("backend-1", reconciled(1)),
            ("backend-3", reconciled(3)),
        ] {
            let got = cache.get("ns", name).unwrap().unwrap();
            assert_eq!(
                serde_json::to_value(got).unwrap(),
                serde_json::to_value(obj).unwrap()
            );
        }
    }

    #[tokio::test]
    async fn until_listed_waits_for_the_first_list() {
        let cache = std::sync::Arc::new(Cache::<IdentityBackend>::default());
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.until_listed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        cache.apply(&Init);
        cache.apply(&InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("listed")
            .unwrap();
    }
}
