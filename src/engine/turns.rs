//! Fair turns on a connection that several namespaces share (a ClusterIdentityApi).
//!
//! Such a connection has one client: one concurrency cap, one rate budget. The controller of a
//! kind hands its workers to resources in the order they were queued, and the client serves
//! calls in the order they came, so without turns 1,000 resources applied in one namespace
//! would make 5 applied just after them in another wait for all 1,000. A reconcile on a shared
//! connection therefore takes a turn first: each namespace has at most
//! `2 × cap / namespaces running` reconciles running on it at once (at least one), `cap` being
//! the connection's concurrency cap (twice: a reconcile spends part of its turn writing to
//! Kubernetes, not calling). A namespace alone has `2 × cap`, what the default 64 workers of
//! a kind would run anyway; a second namespace halves it, and its resources wait behind at most
//! that many calls, not behind every resource queued before them. A reconcile beyond its
//! namespace's share makes no call: it is put off, and frees its worker at once, so the next
//! resource in the queue, perhaps another namespace's, gets it. It keeps its place in its
//! namespace's queue: when a turn ends, the first put-off resource of the namespace with the
//! fewest running is requeued at once; the time it is put off for (the resources put off before
//! it, over its share, times the connection's usual turn) only matters if that wake is lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::context::jitter;
use super::dependents::{Requeue, Target};
use super::key::ObjectKey;

/// The shortest and longest a reconcile is put off.
const SOONEST: Duration = Duration::from_millis(250);
const LATEST: Duration = Duration::from_secs(30);
/// A put-off resource not seen again for this long is gone (deleted meanwhile).
const FORGOTTEN: Duration = Duration::from_secs(120);

/// The turns of every shared connection, shared by every scope of the operator.
#[derive(Default)]
pub struct Turns {
    connections: Mutex<HashMap<Target, Shared>>,
}

struct Shared {
    /// Namespace → reconciles running on the connection (only namespaces with some).
    running: HashMap<String, u32>,
    /// Namespace → its put-off resources, in the order they were first put off.
    waiting: HashMap<String, Queue>,
    /// How long a turn usually lasts (moving average).
    usual: Duration,
    next_ticket: u64,
    pruned: Instant,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            running: HashMap::new(),
            waiting: HashMap::new(),
            usual: Duration::from_millis(500),
            next_ticket: 0,
            pruned: Instant::now(),
        }
    }
}

type Waiter = (&'static str, String);

/// A namespace's put-off resources: each keeps its place (its ticket) when put off again.
#[derive(Default)]
struct Queue {
    /// (kind, name) → its ticket, and when it was last put off.
    tickets: HashMap<Waiter, (u64, Instant)>,
    /// The put-off ones not woken yet, by ticket, with what requeues them.
    order: BTreeMap<u64, (Waiter, Vec<Requeue>)>,
}

impl Queue {
    /// How many are ahead of `waiter` (put off for the first time now if it was not waiting).
    fn place(&mut self, waiter: Waiter, wake: Vec<Requeue>, next_ticket: &mut u64) -> usize {
        let (ticket, at) = self.tickets.entry(waiter.clone()).or_insert_with(|| {
            *next_ticket += 1;
            (*next_ticket, Instant::now())
        });
        *at = Instant::now();
        let ticket = *ticket;
        self.order.insert(ticket, (waiter, wake));
        // Those taken out of order since leave gaps: an estimate on the long side.
        let head = self.order.keys().next().copied().unwrap_or(ticket);
        (ticket - head) as usize
    }

    fn leave(&mut self, waiter: &Waiter) {
        if let Some((ticket, _)) = self.tickets.remove(waiter) {
            self.order.remove(&ticket);
        }
    }

    /// Requeues the first put-off resource not woken yet, if any.
    fn wake_first(&mut self, namespace: &str) {
        let Some((_, ((_, name), wake))) = self.order.pop_first() else {
            return;
        };
        for tx in wake {
            let _ = tx.send((namespace.to_owned(), name.clone()));
        }
    }

    fn prune(&mut self) {
        let order = &mut self.order;
        self.tickets.retain(|_, (ticket, at)| {
            let keep = at.elapsed() < FORGOTTEN;
            if !keep {
                order.remove(ticket);
            }
            keep
        });
    }
}

/// What a reconcile on a shared connection may do now.
pub enum Turn {
    /// Go on; the turn ends when this is dropped.
    Go(Held),
    /// Its namespace has its share running: try again after this long.
    Later(Duration),
}

/// A turn being taken.
pub struct Held {
    turns: Arc<Turns>,
    connection: Target,
    namespace: String,
    since: Instant,
}

impl Turns {
    /// A turn on `connection`, whose concurrency cap is `cap`, for the reconcile of `key`;
    /// `wake` gives what requeues it when it is put off (woken when a turn ends).
    pub fn take(
        self: &Arc<Self>,
        connection: &Target,
        key: &ObjectKey,
        cap: u32,
        wake: impl FnOnce() -> Vec<Requeue>,
    ) -> Turn {
        let mut connections = self.connections.lock().expect("lock");
        let shared = connections.entry(connection.clone()).or_default();
        shared.prune();
        let ns = key.namespace.to_string();
        let mine = shared.running.get(&ns).copied().unwrap_or(0);
        let running = shared.running.len() + usize::from(mine == 0);
        let share = (2 * cap as usize / running).max(1);
        let waiter = (key.kind, key.name.to_string());
        if mine as usize >= share {
            let queue = shared.waiting.entry(ns.clone()).or_default();
            let ahead = queue.place(waiter, wake(), &mut shared.next_ticket);
            let rounds = (ahead + 1) as f64 / share as f64;
            let wait = shared.usual.mul_f64(rounds).clamp(SOONEST, LATEST);
            return Turn::Later(jitter(wait, 0.2));
        }
        if let Some(queue) = shared.waiting.get_mut(&ns) {
            queue.leave(&waiter);
            if queue.tickets.is_empty() {
                shared.waiting.remove(&ns);
            }
        }
        *shared.running.entry(ns.clone()).or_default() += 1;
        Turn::Go(Held {
            turns: self.clone(),
            connection: connection.clone(),
            namespace: ns,
            since: Instant::now(),
        })
    }

    /// Reconciles of `namespace` running on `connection` now.
    #[cfg(test)]
    fn running(&self, connection: &Target, namespace: &str) -> u32 {
        let connections = self.connections.lock().expect("lock");
        connections
            .get(connection)
            .and_then(|s| s.running.get(namespace).copied())
            .unwrap_or(0)
    }
}

impl Shared {
    fn prune(&mut self) {
        if self.pruned.elapsed() < FORGOTTEN / 4 {
            return;
        }
        self.pruned = Instant::now();
        for queue in self.waiting.values_mut() {
            queue.prune();
        }
        self.waiting.retain(|_, queue| !queue.tickets.is_empty());
    }

    /// A turn ended: the first put-off resource of the namespace with the fewest running is
    /// requeued at once (it would otherwise come back only at its estimated time).
    fn wake_next(&mut self) {
        let running = &self.running;
        let next = self
            .waiting
            .iter_mut()
            .filter(|(_, queue)| !queue.order.is_empty())
            .min_by_key(|(ns, _)| running.get(*ns).copied().unwrap_or(0));
        if let Some((ns, queue)) = next {
            queue.wake_first(ns);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut connections = self.turns.connections.lock().expect("lock");
        let Some(shared) = connections.get_mut(&self.connection) else {
            return;
        };
        if let Some(n) = shared.running.get_mut(&self.namespace) {
            *n -= 1;
            if *n == 0 {
                shared.running.remove(&self.namespace);
            }
        }
        shared.usual = shared.usual.mul_f64(0.8) + self.since.elapsed().mul_f64(0.2);
        shared.wake_next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey {
            kind: "OrgConnection",
            namespace: ns.into(),
            name: name.into(),
        }
    }

    fn api() -> Target {
        Target::ClusterApi {
            name: "shared".into(),
        }
    }

    fn take(turns: &Arc<Turns>, ns: &str, i: usize, cap: u32) -> Turn {
        turns.take(&api(), &key(ns, &format!("r{i}")), cap, Vec::new)
    }

    #[test]
    fn namespaces_share_the_cap_and_one_beyond_its_share_waits() {
        let turns = Arc::new(Turns::default());
        // Alone, a namespace may run twice the cap.
        let mut big: Vec<Held> = (0..4)
            .map(|i| match take(&turns, "big", i, 2) {
                Turn::Go(held) => held,
                Turn::Later(_) => panic!("r{i} is within the share"),
            })
            .collect();
        assert_eq!(turns.running(&api(), "big"), 4);
        let Turn::Later(wait) = take(&turns, "big", 4, 2) else {
            panic!("beyond the share");
        };
        assert!((SOONEST.mul_f64(0.8)..=LATEST.mul_f64(1.2)).contains(&wait));
        // Another namespace gets a turn at once, however many of big's wait.
        let small = take(&turns, "small", 0, 2);
        assert!(matches!(small, Turn::Go(_)));
        // Two namespaces run: big's share is 2, and it has 4 running.
        big.truncate(2);
        assert!(matches!(take(&turns, "big", 4, 2), Turn::Later(_)));
        big.truncate(1);
        let Turn::Go(held) = take(&turns, "big", 4, 2) else {
            panic!("within the share again");
        };
        drop((big, held, small));
        assert_eq!(turns.running(&api(), "big"), 0);
        assert_eq!(turns.running(&api(), "small"), 0);
    }

    #[test]
    fn an_ended_turn_wakes_the_first_put_off_of_the_least_served_namespace() {
        let turns = Arc::new(Turns::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let wake = || vec![tx.clone()];
        let put_off = |ns: &str, i: usize| {
            let turn = turns.take(&api(), &key(ns, &format!("r{i}")), 1, wake);
            assert!(matches!(turn, Turn::Later(_)), "{ns}/r{i} is put off");
        };
        let big = [take(&turns, "big", 0, 1), take(&turns, "big", 1, 1)];
        put_off("big", 2);
        put_off("big", 3);
        let small = take(&turns, "small", 0, 1);
        put_off("small", 1);
        let names = |v: &[&str]| -> Vec<(String, String)> {
            v.iter()
                .map(|s| {
                    let (ns, name) = s.split_once('/').unwrap();
                    (ns.to_owned(), name.to_owned())
                })
                .collect()
        };
        let mut woken =
            || -> Vec<(String, String)> { std::iter::from_fn(|| rx.try_recv().ok()).collect() };
        // Small's turn ends: small has none running, big two; small's put-off goes first.
        drop(small);
        assert_eq!(woken(), names(&["small/r1"]));
        // Then big's, in their order.
        let [first, second] = big;
        drop(first);
        assert_eq!(woken(), names(&["big/r2"]));
        drop(second);
        assert_eq!(woken(), names(&["big/r3"]));
    }

    #[test]
    fn the_later_in_a_namespace_queue_wait_longer() {
        let turns = Arc::new(Turns::default());
        let _busy = [take(&turns, "big", 0, 1), take(&turns, "big", 1, 1)];
        let waits: Vec<Duration> = (2..40)
            .map(|i| match take(&turns, "big", i, 1) {
                Turn::Later(d) => d,
                Turn::Go(_) => panic!("the share is taken"),
            })
            .collect();
        assert!(waits[37] > waits[0] * 3, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= LATEST.mul_f64(1.2)));
        // The first put off, put off again, keeps its place at the head.
        let Turn::Later(again) = take(&turns, "big", 2, 1) else {
            panic!("the share is taken");
        };
        assert!(again < waits[37] / 3, "{again:?} vs {:?}", waits[37]);
    }
}
