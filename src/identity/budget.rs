//! Pacing to a vendor's announced rate limit (Auth0's `x-ratelimit-limit`, `-remaining` and
//! `-reset`), across every call of one IdentityApi, so that no call is sent beyond the limit.
//!
//! The server counts calls in windows that end at `x-ratelimit-reset` (UNIX seconds). The
//! client counts the calls it starts in the current window itself: an answer's `remaining`
//! says nothing about the calls still in flight, so trusting it alone lets every concurrent
//! reconcile spend a call on a 429. Until the first answer says whether the API announces a
//! limit at all, one call at a time goes out (the probe); an API that answers without the
//! headers is not paced.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Calls started this close to the end of a window may reach the server in the next one: they
/// count against both.
const GUARD: f64 = 0.1;
/// A new window is entered this long after its start by the local clock, so that a server
/// clock slightly behind ours still counts the calls in the new window.
const SETTLE: f64 = 0.01;

/// What one call may do now.
#[derive(Debug, PartialEq)]
pub enum Take {
    Go,
    /// Wait until then (the window's reset), or until an answer changes the picture.
    Until(Instant),
    /// Wait for the answer of the call in flight.
    Answer,
}

#[derive(Debug, Default)]
enum State {
    /// No answer yet: only the probe may be in flight.
    #[default]
    Unknown,
    /// The API answers without rate-limit headers.
    Silent,
    Limited(Window),
}

#[derive(Debug)]
struct Window {
    limit: u64,
    /// End of the window, UNIX seconds.
    reset: f64,
    /// Length of a window (the distance between two resets seen; 1 s until then).
    length: f64,
    /// Calls this client started in the window.
    started: u64,
    /// The most calls the server said it had counted in the window.
    counted: u64,
    /// Calls started within GUARD of the end: they count against the next window too.
    carry: u64,
}

impl Window {
    fn roll(&mut self, now: f64) {
        while now >= self.reset + SETTLE {
            self.reset += self.length;
            self.started = std::mem::take(&mut self.carry);
            self.counted = 0;
        }
    }
}

#[derive(Debug, Default)]
pub struct Budget {
    state: State,
    probe_out: bool,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn instant_at(unix: f64, now_unix: f64, now: Instant) -> Instant {
    now + Duration::from_secs_f64((unix - now_unix).max(0.0))
}

impl Budget {
    /// Takes one call from the budget, or says what to wait for. `now_unix` is `now` on the
    /// wall clock the server's reset times are given in.
    pub fn take(&mut self, now: Instant, now_unix: f64) -> Take {
        match &mut self.state {
            State::Silent => Take::Go,
            State::Unknown if self.probe_out => Take::Answer,
            State::Unknown => {
                self.probe_out = true;
                Take::Go
            }
            State::Limited(w) => {
                w.roll(now_unix);
                if w.started.max(w.counted) >= w.limit {
                    return Take::Until(instant_at(w.reset + SETTLE, now_unix, now));
                }
                w.started += 1;
                if w.reset - now_unix < GUARD {
                    w.carry += 1;
                }
                Take::Go
            }
        }
    }

    /// Takes one call from the budget for a login, which a call may need after it took its
    /// own share: while nothing is known it goes at once (it is not the probe).
    pub fn take_login(&mut self, now: Instant, now_unix: f64) -> Take {
        match self.state {
            State::Unknown => Take::Go,
            _ => self.take(now, now_unix),
        }
    }

    /// Learns from one answer: `limit` (`x-ratelimit-limit`), `remaining` and `reset` (UNIX
    /// seconds) when the answer carried them. `announces` tells whether the answer is one
    /// that would carry them (an API call's answer; not a login or a transport error).
    pub fn answered(&mut self, headers: Option<(Option<u64>, u64, u64)>, announces: bool) {
        self.probe_out = false;
        let Some((limit, remaining, reset)) = headers else {
            if announces && matches!(self.state, State::Unknown) {
                self.state = State::Silent;
            }
            return;
        };
        let reset = reset as f64;
        let limit = limit.unwrap_or(remaining + 1).max(1);
        let counted = limit.saturating_sub(remaining);
        match &mut self.state {
            State::Limited(w) if (reset - w.reset).abs() < 0.5 => {
                w.limit = limit;
                w.counted = w.counted.max(counted);
            }
            // A late answer from a window that is over.
            State::Limited(w) if reset < w.reset => {}
            // The server is in a later window than the local clock says.
            State::Limited(w) => {
                let gap = reset - w.reset;
                if gap <= 60.0 {
                    w.length = gap.min(w.length.max(1.0));
                }
                // The calls counted so far may not be among those this client knows it
                // started in the new window: count both.
                w.limit = limit;
                w.reset = reset;
                w.started = counted + std::mem::take(&mut w.carry);
                w.counted = counted;
            }
            // The first announcement: the calls now in flight were not counted by the
            // budget, but the server counted them (or will, in this window): assume so.
            _ => {
                self.state = State::Limited(Window {
                    limit,
                    reset,
                    length: 1.0,
                    started: counted,
                    counted,
                    carry: 0,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_probe_until_the_api_says_whether_it_limits() {
        let now = Instant::now();
        let mut b = Budget::default();
        assert_eq!(b.take(now, 100.0), Take::Go);
        assert_eq!(b.take(now, 100.0), Take::Answer);
        // The probe needs a login: it goes.
        assert_eq!(b.take_login(now, 100.0), Take::Go);
        // The probe failed without an answer: the next call is the probe.
        b.answered(None, false);
        assert_eq!(b.take(now, 100.0), Take::Go);
        assert_eq!(b.take(now, 100.0), Take::Answer);
        // An API call answered without headers: the API is not paced.
        b.answered(None, true);
        for _ in 0..100 {
            assert_eq!(b.take(now, 100.0), Take::Go);
        }
    }

    #[test]
    fn never_more_than_the_limit_per_window() {
        let now = Instant::now();
        let mut b = Budget::default();
        assert_eq!(b.take(now, 100.2), Take::Go);
        // The probe's answer: the login and the probe were counted; 8 left until 101.
        b.answered(Some((Some(10), 8, 101)), true);
        for _ in 0..8 {
            assert_eq!(b.take(now, 100.3), Take::Go);
        }
        let Take::Until(at) = b.take(now, 100.3) else {
            panic!("window used up")
        };
        assert!(at >= now + Duration::from_millis(700), "{at:?}");
        // Answers of this window give nothing back, even when they say more is left.
        b.answered(Some((Some(10), 5, 101)), true);
        assert!(matches!(b.take(now, 100.4), Take::Until(_)));
        // The next window: ten more.
        for _ in 0..10 {
            assert_eq!(b.take(now, 101.02), Take::Go);
        }
        assert!(matches!(b.take(now, 101.02), Take::Until(_)));
        // A late answer of the window before changes nothing.
        b.answered(Some((Some(10), 0, 101)), true);
        assert!(matches!(b.take(now, 101.5), Take::Until(_)));
    }

    #[test]
    fn calls_at_the_end_of_a_window_count_in_the_next_too() {
        let now = Instant::now();
        let mut b = Budget::default();
        assert_eq!(b.take(now, 100.0), Take::Go);
        b.answered(Some((Some(4), 3, 101)), true);
        assert_eq!(b.take(now, 100.95), Take::Go);
        assert_eq!(b.take(now, 100.95), Take::Go);
        // In the next window two of the four may already be spent.
        assert_eq!(b.take(now, 101.02), Take::Go);
        assert_eq!(b.take(now, 101.02), Take::Go);
        assert!(matches!(b.take(now, 101.02), Take::Until(_)));
    }

    #[test]
    fn the_server_in_a_later_window_resets_the_count() {
        let now = Instant::now();
        let mut b = Budget::default();
        assert_eq!(b.take(now, 100.0), Take::Go);
        b.answered(Some((Some(3), 0, 101)), true);
        assert!(matches!(b.take(now, 100.99), Take::Until(_)));
        // The server says a new window (to 102) has begun and counted 1 call.
        b.answered(Some((Some(3), 2, 102)), true);
        assert_eq!(b.take(now, 100.995), Take::Go);
        assert_eq!(b.take(now, 100.995), Take::Go);
        assert!(matches!(b.take(now, 100.995), Take::Until(_)));
    }
}
