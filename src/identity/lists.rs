//! Shared snapshots of list endpoints, so that one list call serves every resource of the same
//! IdentityApi that looks up an object within a short window (a burst of creations, a resync),
//! instead of one call per resource.
//!
//! A snapshot may be up to `max_age` old when a lookup asks, which is fine for drift detection;
//! the operator's own writes are overlaid on it, so it never shows an object older than the
//! operator last wrote, and an object it just created is always found (no duplicate by natural
//! key). A create whose answer was lost is not in the overlay: [`Lists::expire`] then makes the
//! next lookup list again, so it cannot be served by a snapshot older than the create.
//!
//! A list of thousands of objects was most of the operator's memory (as `serde_json::Value`
//! trees about 4 KB per Boruta backend, typed about 1.3 KB, as JSON text 600 bytes). Each item
//! is now kept as compact JSON (no nulls, no secrets) packed against the list's first item
//! (`crate::pack`), decoded again when a resource looks it up, and indexed by hashes of its id
//! and natural key in two sorted arrays: a lookup by name is a binary search, not a scan, and
//! the index costs 16 bytes per item and index.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use super::ApiError;
use crate::pack::{Packed, Packer};

tokio::task_local! {
    /// Set while a lookup may wait for a list (a drift check of the sweep): it never reads its
    /// object alone, and it does not keep a change's lookup from doing so.
    pub static CHECKING: ();
}

fn checking() -> bool {
    CHECKING.try_with(|_| ()).is_ok()
}

/// An object a list endpoint returns.
pub trait Item: serde::de::DeserializeOwned + Clone + Send + Sync + 'static {
    /// Top-level fields never kept (secrets an API returns in plain text).
    const FORGET: &'static [&'static str] = &[];
    /// Takes out of a listed object (nulls already gone) what must not be kept: the
    /// [`FORGET`](Item::FORGET) fields, and whatever secret an item type keeps deeper down.
    fn forget(object: &mut serde_json::Map<String, Value>) {
        object.retain(|k, _| !Self::FORGET.contains(&k.as_str()));
    }
    /// The vendor's id; items without one are not kept.
    fn id(&self) -> Option<&str>;
    /// The natural key a resource without an id is found by (its name).
    fn key(&self) -> Option<&str>;
}

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

struct Entry {
    id: Box<str>,
    key: Option<u64>,
    json: Packed,
}

/// The items of a list answer, decoded one at a time from it (a JSON array) and each kept as
/// compact JSON, packed against the first (`crate::pack`).
pub struct Items<T> {
    entries: Vec<Entry>,
    packer: Packer,
    item: PhantomData<fn() -> T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            packer: Packer::default(),
            item: PhantomData,
        }
    }
}

impl<T: Item> Items<T> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every item, decoded.
    pub fn to_vec(&self) -> Vec<T> {
        self.entries
            .iter()
            .filter_map(|e| self.packer.decode(&e.json).ok())
            .collect()
    }

    /// Appends the items of another page (packed again, against this page's dictionary).
    pub fn append(&mut self, other: Items<T>) {
        for Entry { id, key, json } in other.entries {
            if let Ok(text) = other.packer.unpack(&json) {
                let json = self.packer.pack(&text, true);
                self.entries.push(Entry { id, key, json });
            }
        }
    }

    /// Keeps `value` (one element of the list) if it reads as a `T` with an id.
    fn push(&mut self, mut value: Value) -> Result<(), serde_json::Error> {
        if let Value::Object(map) = &mut value {
            map.retain(|_, v| !v.is_null());
            T::forget(map);
        }
        let item = T::deserialize(&value)?;
        if let Some(id) = item.id() {
            self.entries.push(Entry {
                id: id.into(),
                key: item.key().map(hash),
                json: self.packer.pack(value.to_string().as_bytes(), true),
            });
        }
        Ok(())
    }
}

impl<'de, T: Item> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements<T>(PhantomData<fn() -> T>);
        impl<'de, T: Item> Visitor<'de> for Elements<T> {
            type Value = Items<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of objects")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<T>, A::Error> {
                let mut items = Items::default();
                while let Some(value) = seq.next_element::<Value>()? {
                    items.push(value).map_err(serde::de::Error::custom)?;
                }
                Ok(items)
            }
        }
        deserializer.deserialize_seq(Elements(PhantomData))
    }
}

/// One list call's items, with their indexes.
struct Snapshot<T> {
    started: Instant,
    entries: Vec<Entry>,
    packer: Packer,
    /// (hash of the id, index into `entries`), sorted.
    ids: Vec<(u64, u32)>,
    /// (hash of the natural key, index into `entries`), sorted.
    keys: Vec<(u64, u32)>,
    item: PhantomData<fn() -> T>,
}

/// The indexes in `index` (sorted) whose hash is `h`.
fn matching(index: &[(u64, u32)], h: u64) -> impl Iterator<Item = usize> + '_ {
    let start = index.partition_point(|(x, _)| *x < h);
    index[start..]
        .iter()
        .take_while(move |(x, _)| *x == h)
        .map(|(_, i)| *i as usize)
}

impl<T: Item> Snapshot<T> {
    fn new(started: Instant, items: Items<T>) -> Self {
        let Items {
            entries, packer, ..
        } = items;
        let mut ids: Vec<(u64, u32)> = (0..entries.len() as u32)
            .map(|i| (hash(&entries[i as usize].id), i))
            .collect();
        ids.sort_unstable();
        let mut keys: Vec<(u64, u32)> = (0..entries.len() as u32)
            .filter_map(|i| entries[i as usize].key.map(|k| (k, i)))
            .collect();
        keys.sort_unstable();
        Self {
            started,
            entries,
            packer,
            ids,
            keys,
            item: PhantomData,
        }
    }

    fn decode(&self, i: usize) -> Option<T> {
        self.packer.decode(&self.entries[i].json).ok()
    }

    fn get(&self, id: &str) -> Option<T> {
        matching(&self.ids, hash(id))
            .find(|i| &*self.entries[*i].id == id)
            .and_then(|i| self.decode(i))
    }
}

/// When the operator wrote an object, and what (`None` for a deletion).
type Written<T> = (Instant, Option<T>);

struct Slot<T> {
    /// Held while fetching: concurrent callers wait for the one call in flight.
    fetching: tokio::sync::Mutex<()>,
    snapshot: Mutex<Option<Arc<Snapshot<T>>>>,
    /// Our writes since, by id: `None` for a deletion.
    writes: Mutex<HashMap<String, Written<T>>>,
    /// Lookups under way, of the list or of one object (see [`Lists::alone`]).
    lookups: Arc<AtomicUsize>,
}

/// A lookup under way, counted until dropped.
pub struct Lookup(Arc<AtomicUsize>);

impl Drop for Lookup {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            fetching: tokio::sync::Mutex::default(),
            snapshot: Mutex::default(),
            writes: Mutex::default(),
            lookups: Arc::default(),
        }
    }
}

pub struct Lists {
    max_age: Duration,
    /// `Slot<T>` by path, each of the item type its endpoint returns.
    slots: Mutex<HashMap<String, Arc<dyn Any + Send + Sync>>>,
    /// Snapshots started before this serve no lookup (see [`Lists::expire`]).
    not_before: Mutex<Option<Instant>>,
}

/// A list as of a recent call, with the operator's later writes applied (looked up in place,
/// not copied for every lookup).
pub struct Listed<T> {
    snapshot: Arc<Snapshot<T>>,
    slot: Arc<Slot<T>>,
}

impl<T: Item> Listed<T> {
    pub fn get(&self, id: &str) -> Option<T> {
        match self.slot.writes.lock().expect("lock").get(id) {
            Some((_, written)) => written.clone(),
            None => self.snapshot.get(id),
        }
    }

    /// Every item whose natural key is `key`.
    pub fn named(&self, key: &str) -> Vec<T> {
        let writes = self.slot.writes.lock().expect("lock");
        let listed = matching(&self.snapshot.keys, hash(key))
            .filter(|i| !writes.contains_key(&*self.snapshot.entries[*i].id))
            .filter_map(|i| self.snapshot.decode(i));
        let written = writes.values().filter_map(|(_, written)| written.clone());
        listed
            .chain(written)
            .filter(|item| item.key() == Some(key))
            .collect()
    }
}

impl Lists {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            slots: Mutex::default(),
            not_before: Mutex::default(),
        }
    }

    /// After a write whose outcome is unknown (a create whose answer was lost, cut short or
    /// refused as a duplicate), no list fetched so far may answer a lookup: the next one lists
    /// again (one call, shared as usual by the lookups waiting for it).
    pub fn expire(&self) {
        *self.not_before.lock().expect("lock") = Some(Instant::now());
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
    /// concurrent callers share). `fetch` returns the items.
    pub async fn get<T, F, Fut>(&self, path: &str, fetch: F) -> Result<Listed<T>, ApiError>
    where
        T: Item,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Items<T>, ApiError>>,
    {
        let slot = self.slot::<T>(path);
        let _lookup = (!checking()).then(|| {
            slot.lookups.fetch_add(1, Ordering::SeqCst);
            Lookup(slot.lookups.clone())
        });
        let asked = Instant::now();
        let snapshot = match self.fresh(&slot, asked) {
            Some(snapshot) => snapshot,
            None => {
                let _fetching = slot.fetching.lock().await;
                match self.fresh(&slot, asked) {
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

    /// Whether a lookup of one object of the list at `path`, by its id, should read that object
    /// alone: when no snapshot is fresh and no other lookup of the list is under way, drift
    /// checks aside. A lone change among thousands of resources (a spec edit, a Secret
    /// rotation) then costs one read of one object, not a list of them all, even during a round
    /// of drift checks; lookups that come together (a burst, a round) still share one list.
    /// The lookup counts as under way until the `Lookup` is dropped.
    pub fn alone<T: Item>(&self, path: &str) -> Option<Lookup> {
        let slot = self.slot::<T>(path);
        if checking() || self.fresh(&slot, Instant::now()).is_some() {
            return None;
        }
        let lookups = &slot.lookups;
        lookups
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .ok()?;
        Some(Lookup(lookups.clone()))
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

    /// The snapshot, if it was younger than `max_age` when the lookup `asked`. Measured from
    /// the ask, not from now: a list that takes longer to read than `max_age` (10,000 objects
    /// on a busy machine) still serves every lookup that waited for it, instead of each of
    /// them listing again in turn.
    fn fresh<T>(&self, slot: &Slot<T>, asked: Instant) -> Option<Arc<Snapshot<T>>> {
        let not_before = *self.not_before.lock().expect("lock");
        slot.snapshot
            .lock()
            .expect("lock")
            .as_ref()
            .filter(|s| asked.saturating_duration_since(s.started) < self.max_age)
            .filter(|s| not_before.is_none_or(|at| s.started >= at))
            .cloned()
    }

    /// Records a create or update (`Some`) or a deletion (`None`) the operator just made.
    pub fn record<T: Item>(&self, path: &str, id: &str, item: Option<T>) {
        self.slot::<T>(path)
            .writes
            .lock()
            .expect("lock")
            .insert(id.to_owned(), (Instant::now(), item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, PartialEq, Clone, serde::Deserialize)]
    struct Obj {
        id: String,
        name: String,
        #[serde(default)]
        v: u32,
        #[serde(default)]
        password: Option<String>,
    }

    impl Item for Obj {
        const FORGET: &'static [&'static str] = &["password"];
        fn id(&self) -> Option<&str> {
            Some(&self.id)
        }
        fn key(&self) -> Option<&str> {
            Some(&self.name)
        }
    }

    fn obj(id: &str, name: &str, v: u32) -> Obj {
        Obj {
            id: id.into(),
            name: name.into(),
            v,
            password: None,
        }
    }

    fn items(json: serde_json::Value) -> Items<Obj> {
        serde_json::from_value(json).unwrap()
    }

    fn named(ids: &[&str]) -> Items<Obj> {
        items(
            ids.iter()
                .map(|id| serde_json::json!({"id": id, "name": id}))
                .collect(),
        )
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
                        Ok(named(&["a", "b"]))
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

    /// A lookup by id alone reads its one object; one that comes while another lookup is
    /// under way, or while a snapshot is fresh, uses the list.
    #[tokio::test]
    async fn a_lone_lookup_reads_one_object_and_lookups_together_share_the_list() {
        let lists = Lists::new(Duration::from_secs(60));
        let alone = lists
            .alone::<Obj>("p")
            .expect("no snapshot, no other lookup");
        assert!(
            lists.alone::<Obj>("p").is_none(),
            "a second lookup meanwhile lists"
        );
        drop(alone);
        let first = lists.alone::<Obj>("p");
        assert!(first.is_some(), "the lone lookup is over");
        // A list under way (and the snapshot it leaves) serves the next lookups.
        let listed = lists
            .get("p", || async { Ok(named(&["a"])) })
            .await
            .unwrap();
        drop(first);
        assert!(listed.get("a").is_some());
        assert!(lists.alone::<Obj>("p").is_none(), "the snapshot is fresh");
        assert!(
            lists.alone::<Obj>("other").is_some(),
            "each list has its own"
        );

        // Drift checks share lists, and a change reads alone even while they list.
        let lists = Arc::new(Lists::new(Duration::from_secs(60)));
        let started = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let check = {
            let (lists, started, release) = (lists.clone(), started.clone(), release.clone());
            tokio::spawn(CHECKING.scope((), async move {
                assert!(
                    lists.alone::<Obj>("p").is_none(),
                    "a check never reads alone"
                );
                lists
                    .get("p", || async move {
                        started.notify_one();
                        release.notified().await;
                        Ok(named(&["a"]))
                    })
                    .await
                    .map(|_| ())
            }))
        };
        started.notified().await;
        assert!(
            lists.alone::<Obj>("p").is_some(),
            "a change while a check lists"
        );
        release.notify_one();
        check.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn items_are_kept_without_nulls_or_secrets_and_found_by_name() {
        let lists = Lists::new(Duration::from_secs(60));
        let listed = lists
            .get("p", || async {
                Ok(items(serde_json::json!([
                    {"id": "1", "name": "x", "v": 7, "password": "hunter2", "extra": null},
                    {"id": "2", "name": "x"},
                    {"id": "3", "name": "y"},
                ])))
            })
            .await
            .unwrap();
        assert_eq!(listed.snapshot.entries.len(), 3);
        let snapshot = &listed.snapshot;
        assert_eq!(
            snapshot.packer.unpack(&snapshot.entries[0].json).unwrap(),
            br#"{"id":"1","name":"x","v":7}"#
        );
        assert_eq!(listed.get("1"), Some(obj("1", "x", 7)));
        let mut ids: Vec<_> = listed.named("x").into_iter().map(|o| o.id).collect();
        ids.sort();
        assert_eq!(ids, ["1", "2"]);
        assert!(listed.named("z").is_empty());
        assert!(listed.get("4").is_none());
    }

    #[test]
    fn an_element_that_is_not_an_item_fails_the_list() {
        let err = serde_json::from_value::<Items<Obj>>(serde_json::json!([{"id": 1}]));
        assert!(err.is_err());
    }

    #[tokio::test]
    async fn after_a_lost_answer_no_earlier_list_serves_a_lookup() {
        let lists = Lists::new(Duration::from_secs(60));
        lists
            .get("p", || async { Ok(named(&["a"])) })
            .await
            .unwrap();
        lists.expire();
        let listed = lists
            .get("p", || async {
                Ok(named(&["a", "made-by-the-lost-create"]))
            })
            .await
            .unwrap();
        assert!(listed.get("made-by-the-lost-create").is_some());
        // The new list serves the next lookups again.
        let again = lists
            .get::<Obj, _, _>("p", || async { unreachable!("the new list is fresh") })
            .await
            .unwrap();
        assert!(again.get("a").is_some());
    }

    #[tokio::test]
    async fn a_list_slower_than_max_age_still_serves_the_lookups_that_waited_for_it() {
        // A list of 10,000 objects can take longer to read than a snapshot may be old; the
        // lookups waiting for it must each take it, not list again one after another.
        let lists = Arc::new(Lists::new(Duration::from_millis(10)));
        let calls = Arc::new(AtomicUsize::new(0));
        let lookups = (0..20).map(|_| {
            let (lists, calls) = (lists.clone(), calls.clone());
            tokio::spawn(async move {
                lists
                    .get("p", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok(named(&["a"]))
                    })
                    .await
                    .map(|l| l.get("a").is_some())
            })
        });
        for l in futures::future::join_all(lookups).await {
            assert!(l.unwrap().unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_old_snapshot_is_fetched_again() {
        let lists = Lists::new(Duration::from_millis(10));
        lists
            .get("p", || async { Ok(named(&["a"])) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let listed = lists
            .get("p", || async { Ok(named(&["a", "b"])) })
            .await
            .unwrap();
        assert!(listed.get("b").is_some());
    }
}
