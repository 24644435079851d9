//! The emulator's configuration: API version, webhook endpoints and retry policy,
//! idempotency window, and the faults to inject from the start.
//!
//! Deserialised with serde (every field optional, defaults below); durations are
//! written in milliseconds under `*_ms` names, e.g. `webhook_retry_base_ms = 500`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Faults;

/// The API version async-stripe 1.0.0-rc.10 is generated for (`stripe_shared::version::VERSION`).
pub const DEFAULT_API_VERSION: &str = "2026-09-30.endive";

/// How the emulator behaves; `SimConfig::default()` is a quiet, fault-free Stripe.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Written into every event's `api_version`.
    pub api_version: String,
    /// Where events are delivered from the start (more can be added at runtime).
    pub webhook_endpoints: Vec<WebhookEndpoint>,
    /// Delay before the first retry of a failed delivery; doubles with each attempt.
    #[serde(rename = "webhook_retry_base_ms", with = "millis")]
    pub webhook_retry_base: Duration,
    /// Longest delay between two delivery attempts.
    #[serde(rename = "webhook_retry_cap_ms", with = "millis")]
    pub webhook_retry_cap: Duration,
    /// Attempts per event and endpoint before the emulator gives up.
    pub webhook_max_attempts: u32,
    /// How long an idempotent result is kept (Stripe: 24 hours).
    #[serde(rename = "idempotency_ttl_ms", with = "millis")]
    pub idempotency_ttl: Duration,
    /// Faults injected from the start; replaceable at runtime.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_API_VERSION.to_owned(),
            webhook_endpoints: Vec::new(),
            webhook_retry_base: Duration::from_millis(500),
            webhook_retry_cap: Duration::from_secs(30),
            webhook_max_attempts: 12,
            idempotency_ttl: Duration::from_secs(24 * 60 * 60),
            faults: Faults::default(),
        }
    }
}

/// A receiver of events: its URL and the secret deliveries are signed with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// Plain `http://` URL the events are POSTed to.
    pub url: String,
    /// Signing secret (`whsec_…`) for the `Stripe-Signature` header.
    pub secret: String,
}

impl WebhookEndpoint {
    /// An endpoint for `url`, signed with `secret`.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
        }
    }
}

// The secret stays out of logs.
impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("url", &self.url)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Serde adapter for `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_in_milliseconds() {
        let json = r#"{"webhook_retry_base_ms": 20, "idempotency_ttl_ms": 1000}"#;
        let config: SimConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.webhook_retry_base, Duration::from_millis(20));
        assert_eq!(config.idempotency_ttl, Duration::from_secs(1));
        assert_eq!(config.webhook_max_attempts, 12);
        assert_eq!(config.api_version, DEFAULT_API_VERSION);
    }

    #[test]
    fn endpoint_debug_hides_the_secret() {
        let endpoint = WebhookEndpoint::new("http://x", "whsec_123");
        assert!(!format!("{endpoint:?}").contains("whsec_123"));
    }
}
