//! Shared snapshots of list endpoints, so that one list call serves every resource of the same
//! IdentityApi that looks up an object within a short window (a burst of creations, a resync),
//! instead of one call per resource.
//!
//! A snapshot may be up to `max_age` old, which is fine for drift detection; the operator's own
//! writes are overlaid on it, so it never shows an object older than the operator last wrote,
//! and an object it just created is always found (no duplicate by natural key).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ApiError;

type Items = Arc<HashMap<String, Arc<Value>>>;
/// When the operator wrote an object, and what (`None` for a deletion).
type Written = (Instant, Option<Arc<Value>>);

#[derive(Default)]
struct Slot {
    /// Held while fetching: concurrent callers wait for the one call in flight.
    fetching: tokio::sync::Mutex<()>,
    snapshot: Mutex<Option<(Instant, Items)>>,
    /// Our writes since, by id: `None` for a deletion.
    writes: Mutex<HashMap<String, Written>>,
}

pub struct Lists {
    max_age: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// A list as of a recent call, with the operator's later writes applied (looked up in place,
/// not copied for every lookup).
pub struct Listed {
    items: Items,
    slot: Arc<Slot>,
}

impl Listed {
    pub fn get(&self, id: &str) -> Option<Arc<Value>> {
        match self.slot.writes.lock().expect("lock").get(id) {
            Some((_, written)) => written.clone(),
            None => self.items.get(id).cloned(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Arc<Value>> + '_ {
        let writes = self.slot.writes.lock().expect("lock");
        let overlaid: Vec<Arc<Value>> = writes.values().filter_map(|(_, v)| v.clone()).collect();
        let written: std::collections::HashSet<String> = writes.keys().cloned().collect();
        drop(writes);
        let listed = self
            .items
            .iter()
            .filter(move |(id, _)| !written.contains(*id))
            .map(|(_, v)| v.clone());
        overlaid.into_iter().chain(listed)
    }
}

impl Lists {
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            slots: Mutex::default(),
        }
    }

    fn slot(&self, path: &str) -> Arc<Slot> {
        self.slots
            .lock()
            .expect("lock")
            .entry(path.to_owned())
            .or_default()
            .clone()
    }

    /// The list at `path`, from a snapshot younger than `max_age` or from one new call (which
    /// concurrent callers share). `fetch` returns the items by id.
    pub async fn get<F, Fut>(&self, path: &str, fetch: F) -> Result<Listed, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<HashMap<String, Arc<Value>>, ApiError>>,
    {
        let slot = self.slot(path);
        let items = match Self::fresh(&slot, self.max_age) {
            Some(items) => items,
            None => {
                let _fetching = slot.fetching.lock().await;
                match Self::fresh(&slot, self.max_age) {
                    Some(items) => items,
                    None => {
                        let started = Instant::now();
                        let items: Items = Arc::new(fetch().await?);
                        *slot.snapshot.lock().expect("lock") = Some((started, items.clone()));
                        // Writes the new list already shows need no overlay any more.
                        slot.writes
                            .lock()
                            .expect("lock")
                            .retain(|_, (at, _)| *at >= started);
                        Self::expire_later(&slot, started, self.max_age);
                        items
                    }
                }
            }
        };
        Ok(Listed { items, slot })
    }

    /// A snapshot serves lookups for `max_age` only: once older it is dropped (a list of
    /// thousands of objects is most of the operator's memory), with the overlay of writes it
    /// carried, unless a newer list has replaced it or is being fetched.
    fn expire_later(slot: &Arc<Slot>, started: Instant, max_age: Duration) {
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
            if snapshot.as_ref().is_some_and(|(at, _)| *at == started) {
                *snapshot = None;
                // The next list is started after every write made so far.
                slot.writes.lock().expect("lock").clear();
            }
        });
    }

    fn fresh(slot: &Slot, max_age: Duration) -> Option<Items> {
        match slot.snapshot.lock().expect("lock").as_ref() {
            Some((at, items)) if at.elapsed() < max_age => Some(items.clone()),
            _ => None,
        }
    }

    /// Records a create or update (`Some`) or a deletion (`None`) the operator just made.
    pub fn record(&self, path: &str, id: &str, value: Option<Value>) {
        self.slot(path)
            .writes
            .lock()
            .expect("lock")
            .insert(id.to_owned(), (Instant::now(), value.map(Arc::new)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn items(ids: &[&str]) -> HashMap<String, Arc<Value>> {
        ids.iter()
            .map(|id| (id.to_string(), Arc::new(json!({"id": id, "v": 0}))))
            .collect()
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
                    .map(|l| l.iter().count())
            })
        });
        for l in futures::future::join_all(lookups).await {
            assert_eq!(l.unwrap().unwrap(), 2);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        lists.record("api/backends", "c", Some(json!({"id": "c"})));
        lists.record("api/backends", "a", Some(json!({"id": "a", "v": 1})));
        lists.record("api/backends", "b", None);
        let listed = lists
            .get("api/backends", || async {
                unreachable!("the snapshot is fresh")
            })
            .await
            .unwrap();
        assert_eq!(listed.get("a").unwrap()["v"], 1);
        // Writes after the lookup began are seen too.
        lists.record("api/backends", "d", Some(json!({"id": "d"})));
        assert!(listed.get("d").is_some());
        assert!(listed.get("b").is_none());
        assert!(listed.get("c").is_some());
        let mut ids: Vec<String> = listed
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        assert_eq!(ids, ["a", "c", "d"]);
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
        assert_eq!(listed.iter().count(), 2);
    }
}
