//! Shared snapshots of list endpoints, so that one list call serves every resource of the same
//! IdentityApi that looks up an object within a short window (a burst of creations, a resync),
//! instead of one call per resource.
//!
//! A snapshot may be up to `max_age` old, which is fine for drift detection; the operator's own
//! writes are overlaid on it, so it never shows an object older than the operator last wrote,
//! and an object it just created is always found (no duplicate by natural key).
//!
//! Items are kept typed (a list of thousands of objects as `serde_json::Value` trees was most
//! of the operator's memory), indexed by id and by natural key (a lookup by name is one hash
//! probe, not a scan of the list).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ApiError;

/// An object a list endpoint returns.
pub trait Item: Send + Sync + 'static {
    /// The vendor's id; items without one are not kept.
    fn id(&self) -> Option<&str>;
    /// The natural key a resource without an id is found by (its name).
    fn key(&self) -> Option<&str>;
}

/// One list call's items, by id and by the hash of their natural key.
struct Snapshot<T> {
    started: Instant,
    by_id: HashMap<Box<str>, Arc<T>>,
    /// Hash of the natural key → items (compared by key on lookup; no key strings kept twice).
    by_key: HashMap<u64, Vec<Arc<T>>>,
    hasher: RandomState,
}

impl<T: Item> Snapshot<T> {
    fn new(started: Instant, items: Vec<Arc<T>>) -> Self {
        let hasher = RandomState::new();
        let mut by_id = HashMap::with_capacity(items.len());
        let mut by_key: HashMap<u64, Vec<Arc<T>>> = HashMap::with_capacity(items.len());
        for item in items {
            let Some(id) = item.id().map(Box::from) else {
                continue;
            };
            if let Some(key) = item.key() {
                by_key
                    .entry(hasher.hash_one(key))
                    .or_default()
                    .push(item.clone());
            }
            by_id.insert(id, item);
        }
        Self {
            started,
            by_id,
            by_key,
            hasher,
        }
    }
}

/// When the operator wrote an object, and what (`None` for a deletion).
type Written<T> = (Instant, Option<Arc<T>>);

struct Slot<T> {
    /// Held while fetching: concurrent callers wait for the one call in flight.
    fetching: tokio::sync::Mutex<()>,
    snapshot: Mutex<Option<Arc<Snapshot<T>>>>,
    /// Our writes since, by id: `None` for a deletion.
    writes: Mutex<HashMap<String, Written<T>>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            fetching: tokio::sync::Mutex::default(),
            snapshot: Mutex::default(),
            writes: Mutex::default(),
        }
    }
}

pub struct Lists {
    max_age: Duration,
    /// `Slot<T>` by path, each of the item type its endpoint returns.
    slots: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
}

/// A list as of a recent call, with the operator's later writes applied (looked up in place,
/// not copied for every lookup).
pub struct Listed<T> {
    snapshot: Arc<Snapshot<T>>,
    slot: Arc<Slot<T>>,
}

impl<T: Item> Listed<T> {
    pub fn get(&self, id: &str) -> Option<Arc<T>> {
        match self.slot.writes.lock().expect("lock").get(id) {
            Some((_, written)) => written.clone(),
            None => self.snapshot.by_id.get(id).cloned(),
        }
    }

    /// Every item whose natural key is `key`.
    pub fn named(&self, key: &str) -> Vec<Arc<T>> {
        let writes = self.slot.writes.lock().expect("lock");
        let hash = self.snapshot.hasher.hash_one(key);
        let listed = self.snapshot.by_key.get(&hash).into_iter().flatten();
        listed
            .filter(|item| item.key() == Some(key))
            .filter(|item| !item.id().is_some_and(|id| writes.contains_key(id)))
            .cloned()
            .chain(
                writes
                    .values()
                    .filter_map(|(_, written)| written.clone())
                    .filter(|item| item.key() == Some(key)),
            )
            .collect()
    }
}

impl Lists {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            slots: Mutex::default(),
        }
    }

    fn slot<T: Item>(&self, path: &str) -> Arc<Slot<T>> {
        let mut slots = self.slots.lock().expect("lock");
        let slot = slots
            .entry(path.to_owned())
            .or_insert_with(|| Arc::new(Slot::<T>::default()));
        match slot.clone().downcast::<Slot<T>>() {
            Ok(slot) => slot,
            Err(_) => {
                // A path is always listed as the same type; should another type ask for it,
                // it gets its own slot rather than a panic.
                let fresh = Arc::new(Slot::<T>::default());
                *slot = fresh.clone();
                fresh
            }
        }
    }

    /// The list at `path`, from a snapshot younger than `max_age` or from one new call (which
    /// concurrent callers share). `fetch` returns the items, each decoded straight into its
    /// `Arc` (serde's `rc`): a list of thousands is never held twice.
    pub async fn get<T, F, Fut>(&self, path: &str, fetch: F) -> Result<Listed<T>, ApiError>
    where
        T: Item,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Arc<T>>, ApiError>>,
    {
        let slot = self.slot::<T>(path);
        let snapshot = match Self::fresh(&slot, self.max_age) {
            Some(snapshot) => snapshot,
            None => {
                let _fetching = slot.fetching.lock().await;
                match Self::fresh(&slot, self.max_age) {
                    Some(snapshot) => snapshot,
                    None => {
                        let started = Instant::now();
                        // The old snapshot is let go before the new one is read, so that two
                        // lists of thousands of objects are never held at once.
                        slot.snapshot.lock().expect("lock").take();
                        let snapshot = Arc::new(Snapshot::new(started, fetch().await?));
                        *slot.snapshot.lock().expect("lock") = Some(snapshot.clone());
                        // Writes the new list already shows need no overlay any more.
                        slot.writes
                            .lock()
                            .expect("lock")
                            .retain(|_, (at, _)| *at >= started);
                        Self::expire_later(&slot, started, self.max_age);
                        snapshot
                    }
                }
            }
        };
        Ok(Listed { snapshot, slot })
    }

    /// A snapshot serves lookups for `max_age` only: once older it is dropped (a list of
    /// thousands of objects is most of the operator's memory), with the overlay of writes it
    /// carried, unless a newer list has replaced it or is being fetched.
    fn expire_later<T: Item>(slot: &Arc<Slot<T>>, started: Instant, max_age: Duration) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let slot = Arc::downgrade(slot);
        runtime.spawn(async move {
            tokio::time::sleep(max_age).await;
            let Some(slot) = slot.upgrade() else { return };
            let Ok(_fetching) = slot.fetching.try_lock() else {
                return;
            };
            let mut snapshot = slot.snapshot.lock().expect("lock");
            if snapshot.as_ref().is_some_and(|s| s.started == started) {
                *snapshot = None;
                // The next list is started after every write made so far.
                slot.writes.lock().expect("lock").clear();
            }
        });
    }

    fn fresh<T>(slot: &Slot<T>, max_age: Duration) -> Option<Arc<Snapshot<T>>> {
        slot.snapshot
            .lock()
            .expect("lock")
            .as_ref()
            .filter(|s| s.started.elapsed() < max_age)
            .cloned()
    }

    /// Records a create or update (`Some`) or a deletion (`None`) the operator just made.
    pub fn record<T: Item>(&self, path: &str, id: &str, item: Option<T>) {
        self.slot::<T>(path)
            .writes
            .lock()
            .expect("lock")
            .insert(id.to_owned(), (Instant::now(), item.map(Arc::new)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, PartialEq)]
    struct Obj {
        id: &'static str,
        name: &'static str,
        v: u32,
    }

    impl Item for Obj {
        fn id(&self) -> Option<&str> {
            Some(self.id)
        }
        fn key(&self) -> Option<&str> {
            Some(self.name)
        }
    }

    fn obj(id: &'static str, name: &'static str, v: u32) -> Obj {
        Obj { id, name, v }
    }

    fn items(ids: &[&'static str]) -> Vec<Arc<Obj>> {
        ids.iter().map(|id| Arc::new(obj(id, id, 0))).collect()
    }

    #[tokio::test]
    async fn concurrent_lookups_share_one_call_and_see_our_writes() {
        let lists = Arc::new(Lists::new(Duration::from_secs(60)));
        let calls = Arc::new(AtomicUsize::new(0));
        let lookups = (0..20).map(|_| {
            let (lists, calls) = (lists.clone(), calls.clone());
            tokio::spawn(async move {
                lists
                    .get("api/backends", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(items(&["a", "b"]))
                    })
                    .await
                    .map(|l| l.get("a").is_some() && l.get("b").is_some())
            })
        });
        for l in futures::future::join_all(lookups).await {
            assert!(l.unwrap().unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        lists.record("api/backends", "c", Some(obj("c", "c", 0)));
        lists.record("api/backends", "a", Some(obj("a", "renamed", 1)));
        lists.record::<Obj>("api/backends", "b", None);
        let listed = lists
            .get::<Obj, _, _>("api/backends", || async {
                unreachable!("the snapshot is fresh")
            })
            .await
            .unwrap();
        assert_eq!(listed.get("a").unwrap().v, 1);
        // Writes after the lookup began are seen too.
        lists.record("api/backends", "d", Some(obj("d", "d", 0)));
        assert!(listed.get("d").is_some());
        assert!(listed.get("b").is_none());
        assert!(listed.get("c").is_some());
        // By natural key: the listed name of a renamed object no longer finds it; the new one
        // does; a deleted object is found by no name.
        assert!(listed.named("a").is_empty());
        assert_eq!(listed.named("renamed")[0].id, "a");
        assert!(listed.named("b").is_empty());
        assert_eq!(listed.named("d").len(), 1);
    }

    #[tokio::test]
    async fn several_items_of_one_name_are_all_found() {
        let lists = Lists::new(Duration::from_secs(60));
        let listed = lists
            .get("p", || async {
                Ok([obj("1", "x", 0), obj("2", "x", 0), obj("3", "y", 0)]
                    .map(Arc::new)
                    .into())
            })
            .await
            .unwrap();
        let mut ids: Vec<_> = listed.named("x").iter().map(|o| o.id).collect();
        ids.sort();
        assert_eq!(ids, ["1", "2"]);
        assert!(listed.named("z").is_empty());
    }

    #[tokio::test]
    async fn an_old_snapshot_is_fetched_again() {
        let lists = Lists::new(Duration::from_millis(10));
        lists
            .get("p", || async { Ok(items(&["a"])) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let listed = lists
            .get("p", || async { Ok(items(&["a", "b"])) })
            .await
            .unwrap();
        assert!(listed.get("b").is_some());
    }
}
