//! The door's own pace, for crowds that arrive faster than it can claim and publish
//! tickets.
//!
//! An arrival past the in-memory checks waits on Redis (its claim) and the broker (its
//! publish). When more of those are in flight than `admission.pace_above_pending`, the
//! door is behind: an arrival let in now only lengthens every other arrival's wait, and a
//! `503` with a one-second `Retry-After` brings the whole crowd back a second later, on
//! top of the new arrivals (the 20× spike of `loadtest/run first-second` made three
//! million such requests for 143,000 shoppers). Instead it is told, at once and from
//! memory, when to come back (`429 door_paced`): the arrivals it turns away are given
//! moments one after another, spaced at the rate the door is finishing claims, so they
//! return in the order they came, about as fast as the door can take them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

/// The furthest ahead an arrival is told to come back.
const HORIZON: Duration = Duration::from_secs(60);
/// Claims a second assumed before the door has measured any.
const UNMEASURED_RATE: f64 = 1000.0;
/// The shortest window the finishing rate is counted over.
const WINDOW: Duration = Duration::from_millis(100);
/// A window longer than this was mostly idle: its rate is not the door's.
const STALE: Duration = Duration::from_secs(1);

/// The arrivals waiting on Redis or the broker: bounded, and paced past a lower bound.
#[derive(Debug)]
pub struct Pacer {
    /// Places for pending arrivals (`admission.max_pending_arrivals`).
    places: Semaphore,
    most: usize,
    above: usize,
    finished: AtomicU64,
    pace: Mutex<Pace>,
}

/// A place among the pending arrivals; counted finished when let go.
#[derive(Debug)]
pub struct Pending<'a> {
    _place: SemaphorePermit<'a>,
    pacer: &'a Pacer,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.pacer.finished();
    }
}

/// Why an arrival got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turned {
    /// Past the pacing bound: come back after this long.
    Paced(Duration),
    /// Every place taken.
    Full,
}

#[derive(Debug)]
struct Pace {
    /// The latest moment handed out.
    last_slot: Instant,
    /// When the current window began, and the claims finished then.
    window: (Instant, u64),
    /// Claims finished a second over the last full window (0: not measured yet).
    rate: f64,
}

impl Pacer {
    /// Holds `most` pending arrivals at once and paces them once `above` are pending
    /// (0: never).
    pub fn new(most: usize, above: usize) -> Self {
        let now = Instant::now();
        Self {
            places: Semaphore::new(most),
            most,
            above,
            finished: AtomicU64::new(0),
            pace: Mutex::new(Pace {
                last_slot: now,
                window: (now, 0),
                rate: 0.0,
            }),
        }
    }

    /// A place among the pending arrivals, or why not.
    pub fn enter(&self) -> Result<Pending<'_>, Turned> {
        let pending = self.most.saturating_sub(self.places.available_permits());
        if let Some(wait) = self.check_at(pending, Instant::now()) {
            return Err(Turned::Paced(wait));
        }
        let place = self.places.try_acquire().map_err(|_| Turned::Full)?;
        Ok(Pending {
            _place: place,
            pacer: self,
        })
    }

    /// Arrivals whose claim and publish are over so far (the door's pressure probe
    /// watches it move while a crowd arrives).
    pub fn finished_count(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Counts an arrival whose claim and publish are over (issued or not).
    fn finished(&self) {
        self.finished_at(Instant::now());
    }

    fn finished_at(&self, now: Instant) {
        let total = self.finished.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut pace) = self.pace.try_lock() else {
            return;
        };
        let (started, at_start) = pace.window;
        let elapsed = now.saturating_duration_since(started);
        if elapsed >= WINDOW {
            if elapsed <= STALE {
                pace.rate = total.saturating_sub(at_start) as f64 / elapsed.as_secs_f64();
            }
            pace.window = (now, total);
        }
    }

    /// `None`: go on. `Some(wait)`: with `in_flight` arrivals already waiting on Redis or
    /// the broker, this one should come back after `wait` (never more than a minute).
    fn check_at(&self, in_flight: usize, now: Instant) -> Option<Duration> {
        if self.above == 0 || in_flight < self.above {
            return None;
        }
        let mut pace = self.pace.lock().ok()?;
        let rate = if pace.rate > 0.0 {
            pace.rate
        } else {
            UNMEASURED_RATE
        };
        let slot =
            (pace.last_slot.max(now) + Duration::from_secs_f64(1.0 / rate)).min(now + HORIZON);
        pace.last_slot = slot;
        Some(slot - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_bound_every_arrival_goes_on() {
        let pacer = Pacer::new(4096, 8);
        let now = Instant::now();
        assert!((0..8).all(|in_flight| pacer.check_at(in_flight, now).is_none()));
        assert!(
            Pacer::new(4096, 0).check_at(4096, Instant::now()).is_none(),
            "0 turns it off"
        );
    }

    #[test]
    fn arrivals_turned_away_are_given_moments_in_their_order_at_the_finishing_rate() {
        let pacer = Pacer::new(4096, 1);
        let start = pacer.pace.lock().unwrap().window.0;
        // 500 claims finish in 250 ms: 2,000 a second.
        for i in 1..=500u64 {
            pacer.finished_at(start + Duration::from_micros(500 * i));
        }
        let now = start + Duration::from_millis(250);
        let waits: Vec<Duration> = (0..1000).map(|_| pacer.check_at(3, now).unwrap()).collect();
        assert!(waits.windows(2).all(|w| w[0] < w[1]), "in order");
        // The window closed at the 200th claim (100 ms), the next one at the 400th.
        let near = |d: Duration, micros: f64| (d.as_secs_f64() * 1e6 - micros).abs() < 2.0;
        assert!(near(waits[0], 500.0), "{:?}", waits[0]);
        assert!(near(waits[999], 500_000.0), "{:?}", waits[999]);
    }

    #[test]
    fn a_window_that_was_mostly_idle_does_not_set_the_rate() {
        let pacer = Pacer::new(4096, 1);
        let start = pacer.pace.lock().unwrap().window.0;
        pacer.finished_at(start + Duration::from_secs(30));
        let wait = pacer.check_at(1, start + Duration::from_secs(30)).unwrap();
        assert_eq!(
            wait,
            Duration::from_millis(1),
            "1,000 a second until measured"
        );
    }

    #[test]
    fn nobody_is_told_to_come_back_more_than_a_minute_on() {
        let pacer = Pacer::new(4096, 1);
        let now = Instant::now();
        let last = (0..100_000)
            .map(|_| pacer.check_at(5, now).unwrap())
            .max()
            .unwrap();
        assert!(last <= HORIZON, "{last:?}");
        assert_eq!(
            last, HORIZON,
            "a hundred seconds of arrivals at 1,000 a second"
        );
    }
}
