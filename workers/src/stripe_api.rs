//! The Stripe client (async-stripe) against a configurable base URL, and how its errors
//! are classified: what to retry with the same idempotency key, what ends an order. Only
//! the workers call Stripe; the webhook receiver only verifies what Stripe sends.

use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::StripeError;

use flashgate_common::config::StripeConfig;
use flashgate_common::telemetry::window::LatencyWindow;
use flashgate_common::{Error, Result};

pub(crate) use stripe::Client;

/// Builds a client for `api_key` at `config.base_url` (the real API or the emulator).
pub(crate) fn client(config: &StripeConfig, api_key: &SecretString) -> Result<Client> {
    stripe::ClientBuilder::new(api_key.expose_secret())
        .url(config.base_url.as_str())
        .timeout(Duration::from_millis(config.timeout_ms))
        .build()
        .map_err(|e| Error::Stripe(e.to_string()))
}

/// What a failed Stripe call means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The card was declined (or similar): final for this payment attempt.
    Card {
        /// Stripe's error code (`card_declined`, …).
        code: String,
        /// The PaymentIntent the error carries, if any.
        payment_intent: Option<String>,
    },
    /// The same key is being processed by another request: retry later, same key.
    KeyInUse,
    /// Rate limited, a server error, a timeout or a lost answer: retry, same key.
    Transient(String),
    /// The request itself is wrong (bad parameters, reused key with other parameters,
    /// unexpected state): retrying cannot help.
    Permanent {
        /// Stripe's error code or type.
        code: String,
        /// Stripe's message.
        message: String,
    },
}

impl Failure {
    /// Classifies an async-stripe error.
    pub fn classify(error: &StripeError) -> Self {
        use stripe::ApiErrorsType;
        let StripeError::Stripe(api, status) = error else {
            return Self::Transient(error.to_string());
        };
        let code = api
            .code
            .as_ref()
            .map_or_else(|| api.type_.as_str().to_owned(), |c| c.as_str().to_owned());
        match (&api.type_, *status) {
            (_, 409) if code == "idempotency_key_in_use" => Self::KeyInUse,
            (_, 429 | 500..=599) => Self::Transient(format!("{status} {code}")),
            (ApiErrorsType::CardError, _) => Self::Card {
                code,
                payment_intent: api.payment_intent.as_ref().map(|pi| pi.id.to_string()),
            },
            _ => Self::Permanent {
                code,
                message: api.message.clone().unwrap_or_default(),
            },
        }
    }

    /// Whether a later retry with the same idempotency key may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::KeyInUse | Self::Transient(_))
    }
}

/// Every Stripe call of this process (each attempt) over the last seconds: the
/// maintenance loop writes it where the operators' console reads it.
pub(crate) static RECENT: LatencyWindow = LatencyWindow::new();

/// Calls `call` until it succeeds, fails for good, or `budget` is spent. Each attempt
/// must carry the same idempotency key, so a retry after a lost answer finds the first
/// result instead of repeating the effect. Backoff doubles from 100 ms, with jitter.
pub(crate) async fn with_retries<T, F, Fut>(
    budget: Duration,
    mut call: F,
) -> std::result::Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, StripeError>>,
{
    let deadline = tokio::time::Instant::now() + budget;
    let mut delay = Duration::from_millis(100);
    loop {
        let started = std::time::Instant::now();
        let failure = match call().await {
            Ok(value) => {
                RECENT.record(started.elapsed(), false);
                return Ok(value);
            }
            Err(error) => Failure::classify(&error),
        };
        // A declined card is Stripe answering; a server error or a lost answer is not.
        RECENT.record(started.elapsed(), !matches!(failure, Failure::Card { .. }));
        let jittered =
            delay + Duration::from_millis(rand::random_range(0..=delay.as_millis() as u64 / 2));
        if !failure.is_retryable() || tokio::time::Instant::now() + jittered > deadline {
            return Err(failure);
        }
        metrics::counter!("flashgate_stripe_retries_total").increment(1);
        tokio::time::sleep(jittered).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
