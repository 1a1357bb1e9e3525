//! The work queue of one managed kind: every reconcile of the kind starts here, in the order it
//! came due, at most `concurrency` at a time. It has the shape of client-go's workqueue: a key
//! is queued once however often it comes due, never runs twice at once, and runs again after
//! its run if it came due meanwhile.
//!
//! Why not kube-runtime's controller runner: once at its limit it keeps what came due in a hash
//! set and starts it in the set's order, so under a load it cannot keep up with the same
//! resources were picked again and again (measured: 285 of 3,000 resources without a first
//! reconcile after 13 minutes). And every request it holds costs about 1.2 KB (a scheduler
//! entry, a delay-queue slot, a waiting future and its tracing span): 12 MB for the 10,000
//! requests of an initial list. A key here costs its two strings and a set entry.
//!
//! Two lanes: changes (a watch event, a Secret rotation, a retry, a wake from another resource)
//! and drift checks (the sweep's rounds, `controller::sweep`). A change goes first; a check
//! starts only when no change waits, and checks hold at most a quarter of the turns, so a
//! change that comes during a round of 10,000 checks finds a turn free.

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::time::{DelayQueue, delay_queue};

/// A resource of the kind: (namespace, name).
pub type Key = (String, String);

/// What a reconcile asks of the queue: to run again after a while, or only when something
/// changes. (kube-runtime's `Action`, whose field cannot be read outside its controller.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action {
    pub requeue_after: Option<Duration>,
}

impl Action {
    pub const fn requeue(after: Duration) -> Self {
        Action {
            requeue_after: Some(after),
        }
    }

    pub const fn await_change() -> Self {
        Action {
            requeue_after: None,
        }
    }
}

/// Why a key is queued. A change outranks a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lane {
    Check,
    Change,
}

pub struct WorkQueue {
    changes: VecDeque<Key>,
    checks: VecDeque<Key>,
    /// The queued keys and their lane. A deque entry whose key is not here under that lane is
    /// stale (the key moved to the change lane, or ran) and is skipped.
    queued: HashMap<Key, Lane>,
    /// The running keys, and whether (in which lane) each came due again meanwhile.
    running: HashMap<Key, Option<Lane>>,
    checks_running: usize,
    max_checks: usize,
    /// Keys to queue later (a retry, a wait): the earliest time per key.
    later: DelayQueue<Key>,
    later_keys: HashMap<Key, delay_queue::Key>,
}

impl WorkQueue {
    pub fn new(max_checks: usize) -> Self {
        WorkQueue {
            changes: VecDeque::new(),
            checks: VecDeque::new(),
            queued: HashMap::new(),
            running: HashMap::new(),
            checks_running: 0,
            max_checks: max_checks.max(1),
            later: DelayQueue::new(),
            later_keys: HashMap::new(),
        }
    }

    /// `key` came due. A running key runs again after its run if this is a change (a check
    /// of a resource being reconciled right now has nothing to add).
    pub fn add(&mut self, key: Key, lane: Lane) {
        if let Some(again) = self.running.get_mut(&key) {
            if lane == Lane::Change {
                *again = Some(Lane::Change);
            }
            return;
        }
        if self.queued.get(&key).is_some_and(|queued| *queued >= lane) {
            return;
        }
        self.queued.insert(key.clone(), lane);
        self.lane(lane).push_back(key);
    }

    /// A new round of drift checks. The checks of the last round that have not started are
    /// forgotten (a resource deleted meanwhile is not in this round).
    pub fn round(&mut self, keys: Vec<Key>) {
        self.checks.clear();
        self.queued.retain(|_, lane| *lane != Lane::Check);
        for key in keys {
            self.add(key, Lane::Check);
        }
    }

    /// `key` comes due after `delay`, unless it already comes due sooner.
    pub fn add_after(&mut self, key: Key, delay: Duration) {
        let when = Instant::now() + delay;
        match self.later_keys.get(&key) {
            Some(slot) if self.later.deadline(slot) <= when => {}
            Some(slot) => self.later.reset_at(slot, when),
            None => {
                let slot = self.later.insert_at(key.clone(), when);
                self.later_keys.insert(key, slot);
            }
        }
    }

    /// The next key whose delay is over; pending while there is none.
    pub async fn later(&mut self) -> Key {
        std::future::poll_fn(|cx| self.poll_later(cx)).await
    }

    fn poll_later(&mut self, cx: &mut Context<'_>) -> Poll<Key> {
        match self.later.poll_expired(cx) {
            Poll::Ready(Some(expired)) => {
                let key = expired.into_inner();
                self.later_keys.remove(&key);
                Poll::Ready(key)
            }
            // Empty: the queue wakes this task when a key is added.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// The next key to run, now marked running: a change, else a check while checks hold
    /// fewer than their share of the turns.
    pub fn take(&mut self) -> Option<(Key, Lane)> {
        let (key, lane) = match self.pop(Lane::Change) {
            Some(key) => (key, Lane::Change),
            None if self.checks_running < self.max_checks => (self.pop(Lane::Check)?, Lane::Check),
            None => return None,
        };
        if lane == Lane::Check {
            self.checks_running += 1;
        }
        // This run decides afresh when the key runs next.
        if let Some(slot) = self.later_keys.remove(&key) {
            self.later.remove(&slot);
        }
        self.running.insert(key.clone(), None);
        Some((key, lane))
    }

    /// The run of `key` ended, asking to run again after `again` (if any).
    pub fn done(&mut self, key: Key, lane: Lane, again: Option<Duration>) {
        let came_due = self.running.remove(&key).flatten();
        if lane == Lane::Check {
            self.checks_running -= 1;
        }
        if let Some(delay) = again {
            self.add_after(key.clone(), delay);
        }
        if let Some(lane) = came_due {
            self.add(key, lane);
        }
    }

    /// Keys queued (not running, not waiting for a delay).
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    fn lane(&mut self, lane: Lane) -> &mut VecDeque<Key> {
        match lane {
            Lane::Change => &mut self.changes,
            Lane::Check => &mut self.checks,
        }
    }

    fn pop(&mut self, lane: Lane) -> Option<Key> {
        while let Some(key) = self.lane(lane).pop_front() {
            if self.queued.get(&key) == Some(&lane) {
                self.queued.remove(&key);
                return Some(key);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        ("ns".to_owned(), name.to_owned())
    }

    fn drain(q: &mut WorkQueue) -> Vec<(String, Lane)> {
        std::iter::from_fn(|| q.take())
            .map(|((_, name), lane)| (name, lane))
            .collect()
    }

    #[test]
    fn keys_run_once_in_the_order_they_came_due() {
        let mut q = WorkQueue::new(4);
        for name in ["a", "b", "a", "c", "b"] {
            q.add(key(name), Lane::Change);
        }
        assert_eq!(q.len(), 3);
        let names: Vec<_> = drain(&mut q).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(q.take().is_none(), "all three are running");
    }

    #[test]
    fn a_change_during_a_run_runs_again_after_it_and_a_check_does_not() {
        let mut q = WorkQueue::new(4);
        q.add(key("a"), Lane::Change);
        let (a, lane) = q.take().expect("a");
        q.add(key("a"), Lane::Check);
        assert!(q.is_empty(), "a running key is not queued a second time");
        q.done(a.clone(), lane, None);
        assert!(q.take().is_none(), "a check during a run adds nothing");

        q.add(key("a"), Lane::Change);
        let (a, lane) = q.take().expect("a");
        q.add(key("a"), Lane::Change);
        assert!(q.take().is_none(), "never twice at once");
        q.done(a, lane, None);
        assert_eq!(drain(&mut q), [("a".to_owned(), Lane::Change)]);
    }

    #[test]
    fn checks_hold_at_most_their_share_and_a_change_overtakes_a_round() {
        let mut q = WorkQueue::new(2);
        q.round((0..100).map(|i| key(&format!("c{i}"))).collect());
        q.add(key("edit"), Lane::Change);
        let started = drain(&mut q);
        assert_eq!(
            started,
            [
                ("edit".to_owned(), Lane::Change),
                ("c0".to_owned(), Lane::Check),
                ("c1".to_owned(), Lane::Check),
            ]
        );
        // A change that comes during the round starts at once; a check that ends frees its
        // slot for the next check.
        q.add(key("later"), Lane::Change);
        assert_eq!(drain(&mut q), [("later".to_owned(), Lane::Change)]);
        q.done(key("c0"), Lane::Check, None);
        assert_eq!(drain(&mut q), [("c2".to_owned(), Lane::Check)]);
    }

    /// With a single turn, a stream of rounds never keeps a change waiting.
    #[test]
    fn a_change_never_waits_behind_checks() {
        let mut q = WorkQueue::new(1);
        for i in 0..3 {
            q.add(key(&format!("new-{i}")), Lane::Change);
        }
        for i in 0..3 {
            q.round((0..10).map(|c| key(&format!("c{c}"))).collect());
            assert_eq!(
                q.take().map(|(k, l)| (k.1, l)),
                Some((format!("new-{i}"), Lane::Change))
            );
            q.done(key(&format!("new-{i}")), Lane::Change, None);
        }
    }

    #[test]
    fn a_change_outranks_a_queued_check_and_a_round_forgets_unstarted_checks() {
        let mut q = WorkQueue::new(1);
        q.round(vec![key("busy"), key("x"), key("gone")]);
        let busy = q.take().expect("the check slot");
        q.add(key("x"), Lane::Change);
        assert_eq!(drain(&mut q), [("x".to_owned(), Lane::Change)]);
        q.done(busy.0, busy.1, None);
        // "gone" was deleted before its check started: the next round does not have it.
        q.round(vec![key("x")]);
        assert_eq!(q.len(), 0, "x is running");
        q.done(key("x"), Lane::Change, None);
        q.round(vec![key("x")]);
        assert_eq!(drain(&mut q), [("x".to_owned(), Lane::Check)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_keeps_the_earliest_time_and_a_run_cancels_it() {
        let mut q = WorkQueue::new(1);
        q.add_after(key("a"), Duration::from_secs(10));
        q.add_after(key("a"), Duration::from_secs(30));
        q.add_after(key("b"), Duration::from_secs(20));
        q.add_after(key("b"), Duration::from_secs(5));
        let started = Instant::now();
        assert_eq!(q.later().await, key("b"));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(q.later().await, key("a"));
        assert_eq!(started.elapsed(), Duration::from_secs(10));

        // A key that runs before its delay is over is not queued again by the delay: the
        // run decides afresh.
        q.add_after(key("c"), Duration::from_secs(1));
        q.add(key("c"), Lane::Change);
        let (c, lane) = q.take().expect("c");
        q.done(c, lane, None);
        let woke = tokio::time::timeout(Duration::from_secs(5), q.later()).await;
        assert!(woke.is_err(), "the delay of c was cancelled: {woke:?}");
    }
}
