//! Tickets: issuing them at the door and answering polls.

mod batcher;
mod claim;
mod gate;
mod idempotency;
mod issue;
mod pacing;
mod poll;
mod prequeue;
mod recover;

use flashgate_common::domain::TicketStatus;
use serde::Serialize;
use uuid::Uuid;

pub(crate) use batcher::{Outlet, TicketBatcher};
pub(crate) use issue::{__path_issue, IssueResult, issue};
pub(crate) use pacing::Pacer;
pub(crate) use poll::{__path_poll, poll, ticket_state, verify_token};
pub(crate) use prequeue::run as run_prequeue;

/// The JSON a shopper gets for a ticket (issue and poll share it).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Ticket)]
pub(crate) struct TicketBody {
    /// The ticket token.
    pub ticket: String,
    /// Current status.
    pub status: TicketStatus,
    /// Tickets ahead, counting this one, while queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<i64>,
    /// The order, once reserved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
    /// What the shopper needs to confirm the payment, when they must.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentBody>,
    /// When to poll again; 0 once the status is final.
    pub poll_after_ms: u64,
    /// Expected wait while queued, from the measured service rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_wait_ms: Option<u64>,
    /// Queued past what the stock can serve, on the sale's wait-list (absent: false).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub waitlisted: bool,
    /// While pre-queued: when the sale opens and the places are drawn (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    /// While a unit is held for the ticket (`reserved`, `payment_pending`): when the hold
    /// runs out unless paid (RFC 3339). It moves later when a payment in progress extends it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<String>,
}

/// The PaymentIntent a shopper confirms with Stripe.js.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = Payment)]
pub(crate) struct PaymentBody {
    /// PaymentIntent id.
    pub payment_intent: String,
    /// Its client secret.
    pub client_secret: String,
}
