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

/// A list as of a recent call, with the operator's later writes applied.
pub struct Listed {
    items: Items,
    overlay: HashMap<String, Option<Arc<Value>>>,
}

impl Listed {
    pub fn get(&self, id: &str) -> Option<&Value> {
        match self.overlay.get(id) {
            Some(written) => written.as_deref(),
            None => self.items.get(id).map(|v| v.as_ref()),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Value> {
        let overlaid = self.overlay.values().filter_map(|v| v.as_deref());
        let listed = self
            .items
            .iter()
            .filter(|(id, _)| !self.overlay.contains_key(*id))
            .map(|(_, v)| v.as_ref());
        overlaid.chain(listed)
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
                        items
                    }
                }
            }
        };
        let overlay = slot
            .writes
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, (_, v))| (id.clone(), v.clone()))
            .collect();
        Ok(Listed { items, overlay })
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
        assert!(listed.get("b").is_none());
        assert!(listed.get("c").is_some());
        let mut ids: Vec<&str> = listed.iter().map(|v| v["id"].as_str().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, ["a", "c"]);
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
