//! Which managed resources use which connection, and which of them may still need it to delete
//! something remote (its *holders*, see [`holds_connection`](super::cleanup::holds_connection)).
//!
//! The index is fed by the managed kinds' watches, from the resources themselves: after a
//! restart it is rebuilt from the watch caches, never taken from a previous process's memory.
//! A connection with holders keeps its in-use finalizer (`protection.rs`); it may lose it only
//! once every feed (one per managed kind and scope) has completed its first list, since before
//! that "no holder" may only mean "not listed yet".

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, RwLock};

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::dependents::Target;
use super::key::ObjectKey;

/// How many holders a connection names in its condition and Events.
pub const NAMED: usize = 5;

/// One watch feeding the index: a managed kind in one scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feed(usize);

/// How one resource uses its connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Use {
    pub connection: Target,
    /// It may still need the connection to delete its remote object.
    pub holds: bool,
}

/// The users of a connection changed; `holders` when it gained its first holder or lost its
/// last one (what its in-use finalizer follows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub connection: Target,
    pub holders: bool,
}

/// The holders of one connection: how many, and the first few by kind, namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    pub count: usize,
    pub first: Vec<ObjectKey>,
}

impl Holders {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `IdentityBackend ns/a, OrgConnection ns/b and 3 more`.
    pub fn describe(&self) -> String {
        let named: Vec<String> = self.first.iter().map(ToString::to_string).collect();
        match self.count.saturating_sub(named.len()) {
            0 => named.join(", "),
            more => format!("{} and {more} more", named.join(", ")),
        }
    }
}

pub struct Usage {
    state: RwLock<State>,
    /// Feeds the operator starts; until all of them have listed, the index is not complete.
    expected: usize,
    ready: watch::Sender<bool>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change>>>,
}

#[derive(Default)]
struct State {
    users: HashMap<ObjectKey, (Feed, Use)>,
    holders: HashMap<Target, BTreeSet<ObjectKey>>,
    /// Connection → namespace → resources using it.
    counts: HashMap<Target, BTreeMap<String, usize>>,
    feeds: Vec<FeedState>,
}

#[derive(Default)]
struct FeedState {
    /// The keys seen during a (re-)list under way.
    listing: Option<HashSet<ObjectKey>>,
    listed: bool,
}

impl Default for Usage {
    fn default() -> Self {
        Usage::expecting(0)
    }
}

impl Usage {
    /// An index that is complete once `feeds` feeds have listed (and every feed registered).
    pub fn expecting(feeds: usize) -> Self {
        Usage {
            state: RwLock::default(),
            expected: feeds,
            ready: watch::channel(feeds == 0).0,
            subscribers: Mutex::default(),
        }
    }

    /// Registers one more watch feeding the index.
    pub fn feed(&self) -> Feed {
        let mut state = self.state.write().expect("lock");
        state.feeds.push(FeedState::default());
        self.ready.send_replace(false);
        Feed(state.feeds.len() - 1)
    }

    /// A (re-)list of `feed` begins.
    pub fn listing(&self, feed: Feed) {
        self.state.write().expect("lock").feeds[feed.0].listing = Some(HashSet::new());
    }

    /// `key` was seen by `feed`, using `use_` (`None`: it uses no connection).
    pub fn seen(&self, feed: Feed, key: &ObjectKey, use_: Option<Use>) {
        let changes = {
            let mut state = self.state.write().expect("lock");
            if let Some(listing) = state.feeds[feed.0].listing.as_mut() {
                listing.insert(key.clone());
            }
            state.set(key, use_.map(|u| (feed, u)))
        };
        self.notify(changes);
    }

    /// `key` is gone.
    pub fn gone(&self, key: &ObjectKey) {
        let changes = self.state.write().expect("lock").set(key, None);
        self.notify(changes);
    }

    /// `key` released its finalizer: it holds nothing any more, whatever the watch says next.
    pub fn released(&self, key: &ObjectKey) {
        let changes = {
            let mut state = self.state.write().expect("lock");
            let released = state.users.get(key).map(|(feed, u)| {
                let connection = u.connection.clone();
                (
                    *feed,
                    Use {
                        connection,
                        holds: false,
                    },
                )
            });
            state.set(key, released)
        };
        self.notify(changes);
    }

    /// The (re-)list of `feed` is complete: what it did not see is gone.
    pub fn listed(&self, feed: Feed) {
        let changes = {
            let mut state = self.state.write().expect("lock");
            let listing = state.feeds[feed.0].listing.take().unwrap_or_default();
            state.feeds[feed.0].listed = true;
            let stale: Vec<ObjectKey> = state
                .users
                .iter()
                .filter(|(key, (f, _))| *f == feed && !listing.contains(*key))
                .map(|(key, _)| key.clone())
                .collect();
            let changes = stale.iter().flat_map(|k| state.set(k, None)).collect();
            let complete =
                state.feeds.len() >= self.expected && state.feeds.iter().all(|f| f.listed);
            self.ready
                .send_if_modified(|ready| std::mem::replace(ready, complete) != complete);
            changes
        };
        self.notify(changes);
    }

    /// Whether every feed has listed: only then does "no holder" mean none.
    pub fn is_complete(&self) -> bool {
        *self.ready.borrow()
    }

    /// Flips to true when the index becomes complete.
    pub fn completeness(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    pub fn holders(&self, connection: &Target) -> Holders {
        let state = self.state.read().expect("lock");
        let Some(keys) = state.holders.get(connection) else {
            return Holders::default();
        };
        Holders {
            count: keys.len(),
            first: keys.iter().take(NAMED).cloned().collect(),
        }
    }

    /// Namespace → resources using `connection`.
    pub fn users_by_namespace(&self, connection: &Target) -> BTreeMap<String, usize> {
        let state = self.state.read().expect("lock");
        state.counts.get(connection).cloned().unwrap_or_default()
    }

    /// Every change of a connection's users from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers.lock().expect("lock").push(tx);
        rx
    }

    /// The connections that gained their first holder or lost their last one, from now on.
    pub fn holder_changes(&self) -> impl Stream<Item = Target> + Send + 'static {
        UnboundedReceiverStream::new(self.subscribe())
            .filter_map(|c| futures::future::ready(c.holders.then_some(c.connection)))
    }

    /// One item each time the index becomes complete.
    pub fn completions(&self) -> impl Stream<Item = ()> + Send + 'static {
        let changes = futures::stream::unfold(self.completeness(), |mut rx| async move {
            rx.changed().await.ok()?;
            let complete = *rx.borrow_and_update();
            Some((complete, rx))
        });
        changes.filter_map(|complete| futures::future::ready(complete.then_some(())))
    }

    fn notify(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut subscribers = self.subscribers.lock().expect("lock");
        subscribers.retain(|tx| changes.iter().all(|c| tx.send(c.clone()).is_ok()));
    }
}

impl State {
    /// Replaces what `key` uses; the connections whose users changed.
    fn set(&mut self, key: &ObjectKey, new: Option<(Feed, Use)>) -> Vec<Change> {
        let old = match &new {
            Some(entry) => self.users.insert(key.clone(), entry.clone()),
            None => self.users.remove(key),
        };
        let (old, new) = (old.map(|(_, u)| u), new.map(|(_, u)| u));
        if old == new {
            return Vec::new();
        }
        let mut changes = Vec::new();
        if let Some(old) = old {
            changes.push(self.count(&old.connection, &key.namespace, false));
            if old.holds {
                changes.extend(self.hold(&old.connection, key, false));
            }
        }
        if let Some(new) = new {
            changes.push(self.count(&new.connection, &key.namespace, true));
            if new.holds {
                changes.extend(self.hold(&new.connection, key, true));
            }
        }
        changes
    }

    fn count(&mut self, connection: &Target, namespace: &str, add: bool) -> Change {
        let counts = self.counts.entry(connection.clone()).or_default();
        let n = counts.entry(namespace.to_owned()).or_default();
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
        if *n == 0 {
            counts.remove(namespace);
        }
        if counts.is_empty() {
            self.counts.remove(connection);
        }
        Change {
            connection: connection.clone(),
            holders: false,
        }
    }

    fn hold(&mut self, connection: &Target, key: &ObjectKey, add: bool) -> Option<Change> {
        let holders = self.holders.entry(connection.clone()).or_default();
        let was_empty = holders.is_empty();
        if add {
            holders.insert(key.clone());
        } else {
            holders.remove(key);
        }
        let is_empty = holders.is_empty();
        if is_empty {
            self.holders.remove(connection);
        }
        (was_empty != is_empty).then(|| Change {
            connection: connection.clone(),
            holders: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(name: &str) -> Target {
        Target::Api {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("IdentityBackend", "ns", name)
    }

    fn uses(connection: &str, holds: bool) -> Option<Use> {
        Some(Use {
            connection: api(connection),
            holds,
        })
    }

    fn holder_changes(rx: &mut mpsc::UnboundedReceiver<Change>) -> Vec<Target> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .filter(|c| c.holders)
            .map(|c| c.connection)
            .collect()
    }

    #[test]
    fn holders_follow_the_resources_and_only_their_first_and_last_are_told() {
        let usage = Usage::expecting(1);
        let mut rx = usage.subscribe();
        let feed = usage.feed();
        usage.listing(feed);
        usage.seen(feed, &key("a"), uses("boruta", true));
        usage.seen(feed, &key("b"), uses("boruta", true));
        usage.seen(feed, &key("c"), uses("boruta", false));
        assert!(!usage.is_complete(), "not before the list is done");
        usage.listed(feed);
        assert!(usage.is_complete());
        assert_eq!(holder_changes(&mut rx), vec![api("boruta")]);
        let holders = usage.holders(&api("boruta"));
        assert_eq!((holders.count, holders.first.len()), (2, 2));
        assert_eq!(
            usage.users_by_namespace(&api("boruta")),
            BTreeMap::from([("ns".to_owned(), 3)])
        );
        // a released its finalizer: one holder left, nothing to tell.
        usage.released(&key("a"));
        assert_eq!(usage.holders(&api("boruta")).count, 1);
        assert!(holder_changes(&mut rx).is_empty());
        // b is gone: the last holder.
        usage.gone(&key("b"));
        assert!(usage.holders(&api("boruta")).is_empty());
        assert_eq!(holder_changes(&mut rx), vec![api("boruta")]);
        // c moves to another connection (a recreated resource) and holds it.
        usage.seen(feed, &key("c"), uses("auth0", true));
        assert_eq!(holder_changes(&mut rx), vec![api("auth0")]);
        assert_eq!(
            usage.users_by_namespace(&api("boruta")),
            BTreeMap::from([("ns".to_owned(), 1)])
        );
    }

    #[test]
    fn a_relist_drops_what_it_did_not_see_and_completeness_waits_for_every_feed() {
        let usage = Usage::expecting(2);
        let (one, two) = (usage.feed(), usage.feed());
        usage.listing(one);
        usage.seen(one, &key("a"), uses("boruta", true));
        usage.listed(one);
        assert!(!usage.is_complete(), "the second feed has not listed");
        usage.listing(two);
        usage.listed(two);
        assert!(usage.is_complete());
        // A relist of the first feed that no longer sees a (deleted while the watch was down).
        usage.listing(one);
        usage.seen(one, &key("b"), uses("boruta", true));
        assert_eq!(
            usage.holders(&api("boruta")).count,
            2,
            "a stays until the end"
        );
        usage.listed(one);
        let holders = usage.holders(&api("boruta"));
        assert_eq!(holders.first, vec![key("b")]);
        assert_eq!(holders.describe(), "IdentityBackend ns/b");
    }

    #[test]
    fn holders_are_named_up_to_a_few() {
        let usage = Usage::default();
        let feed = usage.feed();
        for i in 0..8 {
            usage.seen(feed, &key(&format!("r{i}")), uses("boruta", true));
        }
        let described = usage.holders(&api("boruta")).describe();
        assert!(
            described.starts_with("IdentityBackend ns/r0, "),
            "{described}"
        );
        assert!(described.ends_with(" and 3 more"), "{described}");
    }
}
