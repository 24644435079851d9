//! Errors of the webhook receiver, and what Stripe is told.
//!
//! Policy: a bad signature or an unreadable body is 400 (Stripe stops retrying what can
//! never verify). An event for an order this database does not have yet is 409, and any
//! failure before the commit is 5xx, so Stripe retries; 2xx is sent only once the event
//! and its effect are committed. Causes are logged once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flashgate_common::http::Problem;

use crate::signature::SignatureError;

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure while receiving an event.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signature does not verify.
    #[error("signature: {0}")]
    Signature(#[from] SignatureError),
    /// The body is not a Stripe event.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The event names an order that is not (yet) in the database.
    #[error("unknown order")]
    UnknownOrder,
    /// PostgreSQL failed.
    #[error("database")]
    Database(#[from] sqlx::Error),
    /// Redis or other shared infrastructure failed.
    #[error(transparent)]
    Infra(#[from] flashgate_common::Error),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match &self {
            Self::Signature(e) => {
                tracing::warn!(error = %e, "webhook refused");
                Problem::bad_request("invalid_signature", e.to_string())
            }
            Self::Malformed(why) => {
                tracing::warn!(%why, "webhook body is not a stripe event");
                Problem::bad_request("malformed_event", why.clone())
            }
            Self::UnknownOrder => {
                tracing::info!("event for an order not in the database yet; stripe will retry");
                Problem::new(
                    StatusCode::CONFLICT,
                    "payment_intent_unknown",
                    "the order of this PaymentIntent is not known yet; retry",
                )
            }
            other => {
                tracing::error!(error = ?other, "webhook failed before commit; stripe will retry");
                Problem::unavailable("not_recorded", "the event was not recorded; retry", 1)
            }
        };
        problem.into_response()
    }
}
