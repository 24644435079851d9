//! A stateful emulator of Stripe's API v1 for development, tests and demos offline.
//!
//! It speaks Stripe's wire format (form-encoded requests as async-stripe sends them,
//! JSON answers that parse with async-stripe's types) for PaymentIntents, refunds and
//! events; charges Stripe's documented test cards (`pm_card_visa`,
//! `pm_card_chargeDeclined`, …); applies Stripe's idempotency rules; delivers
//! webhooks signed exactly as Stripe signs them, with retries; and injects faults on
//! demand (latency, 429s, 500s, lost answers, late, duplicated, reordered or dropped
//! webhooks).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use flashgate_stripe_sim::{Sim, SimConfig, WebhookEndpoint};
//! let sim = Sim::new(SimConfig::default());
//! sim.add_webhook_endpoint(WebhookEndpoint::new("http://127.0.0.1:8082/v1/stripe/webhook", "whsec_test"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:12111").await?;
//! sim.serve(listener, tokio_util::sync::CancellationToken::new()).await
//! # }
//! ```
//!
//! # Endpoints
//!
//! Stripe's (`Authorization: Bearer sk_test_…`): `POST /v1/payment_intents`,
//! `GET /v1/payment_intents/{id}`, `POST /v1/payment_intents/{id}/confirm` (also with a
//! `pk_test_…` key plus `client_secret`, as Stripe.js calls it), `…/{id}/cancel`,
//! `GET /v1/payment_intents/search`, `POST /v1/refunds`, `GET /v1/refunds/{id}`,
//! `GET /v1/events`, `GET /v1/events/{id}`.
//!
//! Control (no auth, JSON): `POST /_sim/webhook_endpoints` `{"url","secret"}`,
//! `GET`/`POST /_sim/faults` (read / replace [`Faults`]),
//! `GET /_sim/payment_intents?metadata_key=…&metadata_value=…`,
//! `POST /_sim/events/{id}/resend`, `GET /_sim/events/{id}/attempts`, `GET /_sim/stats`.
//!
//! Configuration is [`SimConfig`]; deserialised, its durations are milliseconds under
//! `*_ms` names.
//!
//! Error policy: every failure a client can cause is answered as Stripe answers it
//! (see [`Error`]); nothing a client sends can panic the emulator.

pub mod config;
pub mod error;
pub mod faults;

mod http;
mod idempotency;
mod ids;
mod model;
mod params;
mod search;
mod sim;
mod store;
mod webhook;

pub use config::{DEFAULT_API_VERSION, SimConfig, WebhookEndpoint};
pub use error::{Error, Result};
pub use faults::Faults;
pub use sim::Sim;
