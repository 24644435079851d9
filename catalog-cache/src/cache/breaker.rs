//! A circuit breaker for Redis: after `threshold` consecutive failures the catalog stops
//! asking Redis for `open_for`, then lets one probe through; a success closes it again.
//! While open, reads go straight to PostgreSQL behind the concurrency limit, so a hung
//! Redis costs each request nothing but the fallback. A probe whose outcome never comes
//! back (its caller went away) does not wedge the breaker: after another `open_for` the
//! next call probes again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls are kept away until `until`.
    Open { until: Instant },
    /// One probe is out; another may go after `until`.
    HalfOpen { until: Instant },
}

/// The breaker.
pub(crate) struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

impl Breaker {
    /// Opens after `threshold` consecutive failures, for `open_for`.
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        metrics::gauge!("flashgate_catalog_redis_breaker_state").set(0.0);
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold,
            open_for,
        }
    }

    fn set(&self, state: &mut State, next: State) {
        *state = next;
        let gauge = match next {
            State::Closed { .. } => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        };
        metrics::gauge!("flashgate_catalog_redis_breaker_state").set(gauge);
    }

    /// Whether Redis may be called now.
    pub(crate) fn allow(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } if Instant::now() >= until => {
                let until = Instant::now() + self.open_for;
                self.set(&mut state, State::HalfOpen { until });
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    /// Records a successful call.
    pub(crate) fn success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state != (State::Closed { failures: 0 }) {
            self.set(&mut state, State::Closed { failures: 0 });
        }
    }

    /// Records a failed call.
    pub(crate) fn failure(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: Instant::now() + self.open_for,
            },
        };
        self.set(&mut state, next);
    }

    /// Whether the breaker is keeping calls away from Redis.
    pub(crate) fn is_open(&self) -> bool {
        matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            State::Open { .. } | State::HalfOpen { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls `allow` until it lets a call through, failing after a deadline.
    fn await_probe(breaker: &Breaker, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !breaker.allow() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_the_pause() {
        let breaker = Breaker::new(3, Duration::from_millis(20));
        breaker.failure();
        breaker.failure();
        assert!(breaker.allow());
        breaker.failure();
        assert!(breaker.is_open());
        assert!(!breaker.allow(), "open: calls are kept away");
        await_probe(&breaker, "the probe goes through once the pause is over");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.success();
        assert!(!breaker.is_open());
        assert!(breaker.allow());
    }

    #[test]
    fn a_probe_that_never_reports_back_does_not_keep_the_breaker_half_open() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        breaker.failure();
        await_probe(&breaker, "no probe after the pause");
        assert!(!breaker.allow(), "one probe at a time");
        await_probe(&breaker, "the lost probe wedged the breaker");
    }
}
