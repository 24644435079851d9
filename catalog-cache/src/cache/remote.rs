//! Redis as the shared cache: cache-aside entries with a jittered TTL, carrying what
//! XFetch needs (how long the value took to compute, when it expires) so hot keys are
//! refreshed early, probabilistically, by one reader, instead of expiring under load.

use std::time::Duration;

use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A cached value with its XFetch bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Entry<T> {
    /// The value (`None` caches "does not exist").
    pub value: T,
    /// Milliseconds the value took to compute (XFetch's delta).
    pub delta_ms: u64,
    /// Unix milliseconds after which the value is stale.
    pub expires_at_ms: i64,
}

impl<T> Entry<T> {
    /// A fresh entry living `ttl` (jittered ±10%, so keys filled together do not expire together).
    pub(crate) fn new(value: T, delta: Duration, ttl: Duration) -> Self {
        let jitter = rand::random_range(0.9..1.1);
        let ttl_ms = (ttl.as_millis() as f64 * jitter) as i64;
        Self {
            value,
            delta_ms: delta.as_millis() as u64,
            expires_at_ms: Utc::now().timestamp_millis() + ttl_ms,
        }
    }

    /// XFetch (Vattani et al.): refresh now with a probability that grows as expiry nears
    /// and with how costly the value is to compute.
    pub(crate) fn should_refresh(&self, beta: f64) -> bool {
        let now = Utc::now().timestamp_millis() as f64;
        let draw: f64 = rand::random_range(f64::EPSILON..1.0);
        now - (self.delta_ms.max(1) as f64) * beta * draw.ln() >= self.expires_at_ms as f64
    }

    /// Milliseconds left before expiry.
    pub(crate) fn ttl_left_ms(&self) -> i64 {
        self.expires_at_ms - Utc::now().timestamp_millis()
    }
}

/// Decodes an entry; a value that does not decode (an old format) is a miss.
pub(crate) fn decode<T: DeserializeOwned>(raw: Option<String>) -> Option<Entry<T>> {
    raw.and_then(|r| serde_json::from_str(&r).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfetch_refreshes_expired_entries_and_rarely_fresh_ones() {
        let expired = Entry {
            value: 1,
            delta_ms: 10,
            expires_at_ms: 0,
        };
        assert!(expired.should_refresh(1.0));
        let fresh = Entry::new(1, Duration::from_millis(1), Duration::from_secs(3600));
        let early = (0..1000).filter(|_| fresh.should_refresh(1.0)).count();
        assert_eq!(early, 0);
    }
}
