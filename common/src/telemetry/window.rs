//! Latency over the last few seconds, for the operators' console: a ring of one-second
//! slots, each a histogram of log-spaced buckets (25% wide, from 0.1 ms to past a minute)
//! counted with relaxed atomics, so recording costs a few additions and never locks.
//! Prometheus has the full histograms; this answers "what is p99 right now" inside the
//! process without a Prometheus server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Slots in the ring, one per second: the window is `SLOTS - 1` whole seconds and the
/// current one.
const SLOTS: usize = 11;
/// Buckets per slot.
const BUCKETS: usize = 96;
/// The upper bound of the first bucket, in microseconds.
const FIRST_US: f64 = 100.0;
/// Each bucket's bound is this much above the one before.
const GROWTH: f64 = 1.25;

/// p50 and p99 of what was recorded in the window, and how many calls and errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Recent {
    /// Calls recorded in the window.
    pub calls: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median, in milliseconds (the upper bound of its bucket; `null` without calls).
    pub p50_ms: Option<f64>,
    /// 99th percentile, in milliseconds (likewise).
    pub p99_ms: Option<f64>,
}

struct Slot {
    /// The second (since the epoch) this slot counts, or 0 while unused.
    second: AtomicU64,
    errors: AtomicU64,
    counts: [AtomicU64; BUCKETS],
}

/// Latencies of the last ten seconds (see the module's documentation).
pub struct LatencyWindow {
    slots: [Slot; SLOTS],
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyWindow {
    /// An empty window.
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)] // each array element is its own
        const SLOT: Slot = Slot {
            second: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            counts: [const { AtomicU64::new(0) }; BUCKETS],
        };
        Self {
            slots: [SLOT; SLOTS],
        }
    }

    /// Records one call that took `took` (and whether it failed).
    pub fn record(&self, took: Duration, failed: bool) {
        self.record_at(now_second(), took, failed);
    }

    fn record_at(&self, second: u64, took: Duration, failed: bool) {
        let slot = &self.slots[(second % SLOTS as u64) as usize];
        let seen = slot.second.load(Ordering::Relaxed);
        // The first call of a new second clears what the slot counted ten seconds ago.
        // Two calls racing here may lose a count or two: a console figure, not a ledger.
        if seen != second
            && slot
                .second
                .compare_exchange(seen, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            slot.errors.store(0, Ordering::Relaxed);
            slot.counts
                .iter()
                .for_each(|c| c.store(0, Ordering::Relaxed));
        }
        slot.counts[bucket(took)].fetch_add(1, Ordering::Relaxed);
        if failed {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What the window holds now.
    pub fn recent(&self) -> Recent {
        self.recent_at(now_second())
    }

    fn recent_at(&self, second: u64) -> Recent {
        let mut counts = [0u64; BUCKETS];
        let mut errors = 0;
        for slot in &self.slots {
            let at = slot.second.load(Ordering::Relaxed);
            if at == 0 || at > second || second - at >= SLOTS as u64 - 1 {
                continue;
            }
            errors += slot.errors.load(Ordering::Relaxed);
            for (total, count) in counts.iter_mut().zip(&slot.counts) {
                *total += count.load(Ordering::Relaxed);
            }
        }
        let calls: u64 = counts.iter().sum();
        Recent {
            calls,
            errors: errors.min(calls),
            p50_ms: quantile(&counts, calls, 0.50),
            p99_ms: quantile(&counts, calls, 0.99),
        }
    }
}

fn now_second() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}

fn bound_us(bucket: usize) -> f64 {
    FIRST_US * GROWTH.powi(bucket as i32)
}

fn bucket(took: Duration) -> usize {
    let us = took.as_secs_f64() * 1e6;
    if us <= FIRST_US {
        return 0;
    }
    let index = ((us / FIRST_US).ln() / GROWTH.ln()).ceil() as usize;
    index.min(BUCKETS - 1)
}

/// The upper bound, in milliseconds, of the bucket holding the `q` quantile.
fn quantile(counts: &[u64; BUCKETS], calls: u64, q: f64) -> Option<f64> {
    if calls == 0 {
        return None;
    }
    let rank = ((calls as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some((bound_us(i) / 10.0).round() / 100.0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000;

    #[test]
    fn quantiles_are_the_bucket_bounds_above_the_values() {
        let window = LatencyWindow::new();
        for ms in 1..=100u64 {
            window.record_at(T, Duration::from_millis(ms), ms > 95);
        }
        let recent = window.recent_at(T);
        assert_eq!((recent.calls, recent.errors), (100, 5));
        let (p50, p99) = (recent.p50_ms.unwrap(), recent.p99_ms.unwrap());
        assert!((50.0..=50.0 * GROWTH).contains(&p50), "{p50}");
        assert!((99.0..=99.0 * GROWTH).contains(&p99), "{p99}");
    }

    #[test]
    fn seconds_older_than_the_window_are_forgotten() {
        let window = LatencyWindow::new();
        window.record_at(T, Duration::from_secs(2), true);
        window.record_at(T + 5, Duration::from_millis(3), false);
        assert_eq!(window.recent_at(T + 9).calls, 2);
        let later = window.recent_at(T + 10);
        assert_eq!((later.calls, later.errors), (1, 0));
        assert!(later.p99_ms.unwrap() < 4.0);
        // The slot of T is reused for T + 11 and starts from nothing.
        window.record_at(T + 11, Duration::from_millis(1), false);
        assert_eq!(window.recent_at(T + 11).calls, 2);
        assert_eq!(window.recent_at(T + 30), Recent::default());
    }

    #[test]
    fn extremes_land_in_the_first_and_last_buckets() {
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(Duration::from_micros(100)), 0);
        assert_eq!(bucket(Duration::from_micros(101)), 1);
        assert_eq!(bucket(Duration::from_secs(1 << 40)), BUCKETS - 1);
        assert!(
            bound_us(BUCKETS - 1) > 60e6,
            "the last bucket starts past a minute"
        );
    }
}
