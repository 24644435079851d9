//! Fault switches: what goes wrong on purpose, per run (config) or per test (runtime).
//!
//! Shares are probabilities rolled per request; the `*_next` counters make the next N
//! API POSTs fail deterministically and count down, so tests need no luck.

use serde::{Deserialize, Serialize};

/// The faults to inject; `Faults::default()` injects none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Milliseconds added to every API answer.
    pub latency_ms: u64,
    /// Share (0.0–1.0) of API requests answered 429 `rate_limit_error` before any effect.
    pub rate_limit_share: f64,
    /// Share (0.0–1.0) of API requests answered 500 `api_error` before any effect.
    pub server_error_share: f64,
    /// Share (0.0–1.0) of executed POSTs whose effect commits but whose answer is lost.
    pub drop_response_share: f64,
    /// The next N API POSTs are answered 429 before any effect.
    pub rate_limit_next: u32,
    /// The next N API POSTs are answered 500 before any effect.
    pub server_error_next: u32,
    /// The next N executed API POSTs commit, then answer 500 with `Stripe-Should-Retry: true`.
    pub drop_response_next: u32,
    /// Milliseconds each webhook delivery is held before its first attempt.
    pub webhook_delay_ms: u64,
    /// Deliver every event twice.
    pub webhook_duplicate: bool,
    /// Deliver events newest-first within each window of `webhook_reorder_window_ms`.
    pub webhook_reorder: bool,
    /// Width of the reordering window, in milliseconds.
    pub webhook_reorder_window_ms: u64,
    /// Never deliver events (they stay pending), to exercise reconciliation.
    pub webhook_drop: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            rate_limit_share: 0.0,
            server_error_share: 0.0,
            drop_response_share: 0.0,
            rate_limit_next: 0,
            server_error_next: 0,
            drop_response_next: 0,
            webhook_delay_ms: 0,
            webhook_duplicate: false,
            webhook_reorder: false,
            webhook_reorder_window_ms: 200,
            webhook_drop: false,
        }
    }
}

/// A fault that answers an API request before it has any effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestFault {
    /// 429 `rate_limit_error`.
    RateLimit,
    /// 500 `api_error`.
    ServerError,
}

impl Faults {
    /// Explains why these faults are unusable, if they are.
    pub(crate) fn problem(&self) -> Option<String> {
        let shares = [
            ("rate_limit_share", self.rate_limit_share),
            ("server_error_share", self.server_error_share),
            ("drop_response_share", self.drop_response_share),
        ];
        shares
            .iter()
            .find(|(_, share)| !(0.0..=1.0).contains(share))
            .map(|(name, share)| format!("{name} must be between 0.0 and 1.0, got {share}"))
    }

    /// Decides whether this API request fails before any effect, counting down counters.
    pub(crate) fn take_request_fault(&mut self, is_post: bool) -> Option<RequestFault> {
        if is_post && count_down(&mut self.rate_limit_next) {
            return Some(RequestFault::RateLimit);
        }
        if is_post && count_down(&mut self.server_error_next) {
            return Some(RequestFault::ServerError);
        }
        if roll(self.rate_limit_share) {
            return Some(RequestFault::RateLimit);
        }
        roll(self.server_error_share).then_some(RequestFault::ServerError)
    }

    /// Decides whether the answer to an executed POST is lost, counting down the counter.
    pub(crate) fn take_drop_response(&mut self) -> bool {
        count_down(&mut self.drop_response_next) || roll(self.drop_response_share)
    }
}

fn count_down(counter: &mut u32) -> bool {
    let hit = *counter > 0;
    *counter = counter.saturating_sub(1);
    hit
}

/// True with probability `share`; out-of-range shares are clamped rather than trusted.
fn roll(share: f64) -> bool {
    share > 0.0 && (share >= 1.0 || rand::random_bool(share))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_fail_exactly_the_next_n_posts() {
        let mut faults = Faults {
            rate_limit_next: 2,
            ..Faults::default()
        };
        assert_eq!(faults.take_request_fault(false), None);
        assert_eq!(
            faults.take_request_fault(true),
            Some(RequestFault::RateLimit)
        );
        assert_eq!(
            faults.take_request_fault(true),
            Some(RequestFault::RateLimit)
        );
        assert_eq!(faults.take_request_fault(true), None);
    }

    #[test]
    fn shares_outside_zero_to_one_are_reported_and_never_panic() {
        let faults = Faults {
            server_error_share: 1.5,
            ..Faults::default()
        };
        assert!(faults.problem().is_some());
        assert!(roll(1.5));
        assert!(!roll(f64::NAN));
        assert!(!roll(-1.0));
    }

    #[test]
    fn partial_json_keeps_the_other_defaults() {
        let faults: Faults = serde_json::from_str(r#"{"webhook_reorder": true}"#).unwrap();
        assert!(faults.webhook_reorder);
        assert_eq!(faults.webhook_reorder_window_ms, 200);
    }
}
