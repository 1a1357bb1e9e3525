//! One breaker per connection (IdentityApi). When the identity API cannot be reached, or its
//! token endpoint fails (5xx, an unreadable answer), every resource reconciling on its own
//! schedule would try again on its own: with 10 000 resources that was about 29 000 token
//! requests in a few minutes against a dead API, which real token endpoints rate-limit and
//! alert on. Instead the whole connection backs off (2 s doubling to 30 s, ±20 % jitter), calls
//! made meanwhile fail at once with [`ApiError::Unavailable`] (whose `retry_in` requeues the
//! resource for the connection's next attempt), and when that moment comes one call (the
//! probe) tries while the others wait for its outcome. With the API down, a connection makes a
//! handful of attempts per minute whatever the number of resources; when the API returns,
//! everything proceeds within one backoff period.
//!
//! A 5xx answer, a timeout or a proxy's page on an ordinary call concerns that one request (a
//! flaky API fails a call now and then, and it is retried per call and per resource); only
//! [`STRIKES`] of them in a row, with no answer between, say the API is down. A call that tries
//! the connection again after a wait counts at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Notify;

use super::ApiError;
use crate::metrics::Metrics;

/// Calls in a row without an answer (timeouts, 5xx, a proxy's page) that open the breaker.
/// Under a quarter of calls failing at random, eight in a row happen about once in 65 000 calls.
pub const STRIKES: u32 = 8;
/// The first wait after a failure; it doubles with each failed attempt in a row.
const FIRST_WAIT: Duration = Duration::from_secs(2);
/// The longest wait: how late a connection may notice that its API is back.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

pub struct Breaker {
    state: Mutex<State>,
    /// Wakes the calls waiting for a probe's outcome.
    settled: Notify,
    metrics: Arc<Metrics>,
    /// `namespace/name` of the IdentityApi, for the metrics.
    name: String,
}

#[derive(Default)]
struct State {
    /// Failed attempts in a row; 0 while the connection works.
    failures: u32,
    /// Calls without an answer since the last one that had one.
    strikes: u32,
    /// No call before this instant (set while `failures > 0`).
    retry_at: Option<Instant>,
    /// What the last failed attempt met, for the resources' conditions.
    cause: String,
    /// A call is trying the connection again; the others wait for its outcome.
    probing: bool,
    /// Changes with every failure and recovery, so that the calls that saw one outage count
    /// it once.
    epoch: u64,
}

/// Leave to make one call, to be settled with [`Ticket::pass`] or [`Ticket::fail`] (a later
/// verdict about the same call counts only if the connection has not changed since). A probe
/// dropped without a verdict (a cancelled call) lets another call probe.
pub struct Ticket<'a> {
    breaker: &'a Breaker,
    epoch: u64,
    probe: bool,
    settled: AtomicBool,
}

impl Breaker {
    pub fn new(metrics: Arc<Metrics>, name: String) -> Self {
        Self {
            state: Mutex::default(),
            settled: Notify::new(),
            metrics,
            name,
        }
    }

    /// Leave to call the API now, or [`ApiError::Unavailable`] while the connection backs off.
    /// While another call probes the API, waits for its outcome (at most `patience`).
    pub async fn admit(&self, patience: Duration) -> Result<Ticket<'_>, ApiError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the state is read, so a verdict in between is not missed.
            let settled = self.settled.notified();
            {
                let mut state = self.state.lock().expect("breaker lock");
                let now = Instant::now();
                match state.retry_at {
                    None => return Ok(self.ticket(state.epoch, false)),
                    Some(at) if now < at => return Err(state.unavailable(at - now)),
                    Some(_) if !state.probing => {
                        state.probing = true;
                        return Ok(self.ticket(state.epoch, true));
                    }
                    Some(_) => {}
                }
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                let state = self.state.lock().expect("breaker lock");
                return Err(state.unavailable(Duration::from_secs(1)));
            }
        }
    }

    fn ticket(&self, epoch: u64, probe: bool) -> Ticket<'_> {
        Ticket {
            breaker: self,
            epoch,
            probe,
            settled: AtomicBool::new(false),
        }
    }

    /// How long until the next attempt; zero while the connection works.
    pub fn retry_in(&self) -> Duration {
        let state = self.state.lock().expect("breaker lock");
        state.retry_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        })
    }

    /// [`ApiError::Unavailable`] while the connection waits for its next attempt: checked by a
    /// call that queued behind a failing login before it logs in itself.
    pub fn check(&self) -> Result<(), ApiError> {
        let state = self.state.lock().expect("breaker lock");
        match state.retry_at {
            Some(at) if Instant::now() < at => Err(state.unavailable(at - Instant::now())),
            _ => Ok(()),
        }
    }

    fn record(&self, ticket: &Ticket, verdict: Result<(), String>) {
        ticket.settled.store(true, Ordering::SeqCst);
        let mut state = self.state.lock().expect("breaker lock");
        if ticket.probe {
            state.probing = false;
        }
        // A verdict about the connection as it was when the call was admitted: calls admitted
        // before the last change say nothing new.
        state.strikes = 0;
        if ticket.epoch == state.epoch {
            match verdict {
                Ok(()) if state.failures > 0 => {
                    state.failures = 0;
                    state.retry_at = None;
                    state.epoch += 1;
                    self.metrics.connection_recovered(&self.name);
                }
                Ok(()) => {}
                Err(cause) => {
                    state.failures += 1;
                    let wait = wait_after(state.failures);
                    state.retry_at = Some(Instant::now() + wait);
                    state.cause = cause;
                    state.epoch += 1;
                    self.metrics.connection_failed(&self.name, wait);
                }
            }
        }
        drop(state);
        self.settled.notify_waiters();
    }
}

impl State {
    fn unavailable(&self, retry_in: Duration) -> ApiError {
        ApiError::Unavailable {
            retry_in,
            cause: self.cause.clone(),
        }
    }
}

impl Ticket<'_> {
    /// The API answered (whatever it said): the connection works.
    pub fn pass(&self) {
        self.breaker.record(self, Ok(()));
    }

    /// The API could not be reached, or its token endpoint failed with `cause`: the connection
    /// backs off. Returns what the caller should report: the wait, or `cause` itself when a
    /// newer call has found the connection working meanwhile.
    pub fn fail(&self, cause: &ApiError) -> ApiError {
        self.breaker.record(self, Err(cause.to_string()));
        let state = self.breaker.state.lock().expect("breaker lock");
        match state.retry_at {
            Some(at) => state.unavailable(at.saturating_duration_since(Instant::now())),
            None => cause.clone(),
        }
    }

    /// The call got no usable answer (a timeout, a 5xx, a proxy's page): a strike. The
    /// [`STRIKES`]th in a row, or one on a call trying the connection after a wait, makes the
    /// connection back off; then returns what the caller should report.
    pub fn strike(&self, cause: &ApiError) -> Option<ApiError> {
        let down = {
            let mut state = self.breaker.state.lock().expect("breaker lock");
            state.strikes += 1;
            self.probe || state.strikes >= STRIKES
        };
        down.then(|| self.fail(cause))
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled.load(Ordering::SeqCst) {
            self.breaker.state.lock().expect("breaker lock").probing = false;
            self.breaker.settled.notify_waiters();
        }
    }
}

/// 2 s, 4 s, 8 s, 16 s, then 30 s, each ±20 %: attempts spread out, and the connections of
/// many operators (or IdentityApis) never fall into step.
fn wait_after(failures: u32) -> Duration {
    let doubled = FIRST_WAIT.saturating_mul(1 << failures.saturating_sub(1).min(8));
    doubled
        .min(MAX_WAIT)
        .mul_f64(rand::rng().random_range(0.8..=1.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(Arc::new(Metrics::default()), "ns/api".into())
    }

    fn down() -> ApiError {
        ApiError::Unreachable("connection refused".into())
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        for (failures, base) in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (40, 30)] {
            let wait = wait_after(failures).as_secs_f64();
            let base = base as f64;
            assert!(
                wait >= base * 0.8 && wait <= base * 1.2,
                "{failures}: {wait}"
            );
        }
    }

    #[tokio::test]
    async fn a_failure_holds_every_call_until_the_next_attempt() {
        let b = breaker();
        let ticket = b.admit(Duration::from_secs(1)).await.unwrap();
        let reported = ticket.fail(&down());
        let ApiError::Unavailable { retry_in, cause } = &reported else {
            panic!("{reported:?}")
        };
        assert!(*retry_in > Duration::from_millis(1500), "{retry_in:?}");
        assert_eq!(cause, "connection refused");
        // Everyone else fails at once, with the same message (no status rewrite per retry).
        let other = b.admit(Duration::from_secs(1)).await.err().unwrap();
        assert_eq!(other.to_string(), reported.to_string());
        assert!(b.retry_in() > Duration::ZERO);
    }

    #[tokio::test]
    async fn calls_that_saw_the_same_outage_count_it_once() {
        let b = breaker();
        let (t1, t2) = (
            b.admit(Duration::ZERO).await.unwrap(),
            b.admit(Duration::ZERO).await.unwrap(),
        );
        t1.fail(&down());
        t2.fail(&down());
        assert_eq!(b.state.lock().unwrap().failures, 1);
        // An answer to a call admitted before the outage does not close the breaker.
        let t3 = b.ticket(0, false);
        t3.pass();
        assert_eq!(b.state.lock().unwrap().failures, 1);
    }

    /// One call without an answer fewer than opens `b`.
    async fn strikes_short_of_opening(b: &Breaker, err: &ApiError) {
        for _ in 0..STRIKES - 1 {
            assert!(b.admit(Duration::ZERO).await.unwrap().strike(err).is_none());
        }
    }

    #[tokio::test]
    async fn calls_without_an_answer_in_a_row_open_it_one_answer_resets_them() {
        let b = breaker();
        let page = ApiError::Unreadable {
            method: "GET".into(),
            path: "api/backends".into(),
            status: 503,
            detail: "an HTML page".into(),
        };
        strikes_short_of_opening(&b, &page).await;
        b.admit(Duration::ZERO).await.unwrap().pass();
        strikes_short_of_opening(&b, &page).await;
        let down = b.admit(Duration::ZERO).await.unwrap().strike(&page);
        assert!(
            matches!(down, Some(ApiError::Unavailable { .. })),
            "{down:?}"
        );
        assert!(b.admit(Duration::ZERO).await.is_err());
        // After the wait, the one call that tries again counts at once.
        due(&b);
        let probe = b.admit(Duration::ZERO).await.unwrap();
        assert!(probe.strike(&page).is_some());
    }

    /// The state after one failed attempt whose wait is over.
    fn due(b: &Breaker) {
        let mut state = b.state.lock().unwrap();
        state.failures = 1;
        state.retry_at = Some(Instant::now());
        state.cause = "refused".into();
    }

    #[tokio::test]
    async fn one_call_probes_while_the_others_wait_for_its_outcome() {
        let b = Arc::new(breaker());
        due(&b);
        let probe = b.admit(Duration::ZERO).await.unwrap();
        assert!(probe.probe);
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.admit(Duration::from_secs(30)).await.map(|t| t.probe) })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits for the probe");
        probe.pass();
        assert!(!waiter.await.unwrap().unwrap(), "proceeds once it passed");
        assert_eq!(b.retry_in(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_failed_probe_sends_the_waiters_away_and_a_dropped_one_hands_over() {
        let b = Arc::new(breaker());
        due(&b);
        let probe = b.admit(Duration::ZERO).await.unwrap();
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.admit(Duration::from_secs(30)).await.is_err() })
        };
        tokio::task::yield_now().await;
        probe.fail(&down());
        assert!(waiter.await.unwrap(), "fails fast after the probe failed");
        assert_eq!(b.state.lock().unwrap().failures, 2);

        b.state.lock().unwrap().retry_at = Some(Instant::now());
        let probe = b.admit(Duration::ZERO).await.unwrap();
        drop(probe);
        assert!(
            b.admit(Duration::ZERO).await.unwrap().probe,
            "the next call probes"
        );
    }
}
