//! A ticket's trail through the logs: one INFO line at each step that moves it, from the
//! door to the webhook, all under the target `flashgate::trail` and each carrying the
//! `ticket` id (and the `order`, `sale`, `request_id` and PaymentIntent where known). So
//! `grep <ticket id>` over every role's log follows one shopper, and
//! `RUST_LOG=info,flashgate::trail=off` silences the trail when the volume matters more.
//!
//! The lines are emitted inside the step's span (`request`, `reserve_batch`, `pay`,
//! `stripe_event`, `sweep`, `reconcile`), whose fields the JSON format adds to each line.
//! Order moves are logged where committed changes are announced
//! (`ledger::publish_changes`), so no mover can forget its line.

use uuid::Uuid;

use crate::domain::{SaleId, TicketStatus};
use crate::ledger::OrderRef;

/// The target every trail line is logged under.
pub const TARGET: &str = "flashgate::trail";

/// The door put `ticket` in a sale's pre-queue (its place is drawn at the opening).
pub fn prequeued(ticket: Uuid, sale: &SaleId, request_id: Option<&str>) {
    tracing::info!(target: TARGET, %ticket, %sale, request_id, "ticket pre-queued");
}

/// The door issued `ticket` (the broker confirmed the message carrying it).
pub fn issued(ticket: Uuid, sale: &SaleId, seq: i64, request_id: Option<&str>) {
    tracing::info!(target: TARGET, %ticket, %sale, seq, request_id, "ticket issued");
}

/// A worker decided `ticket`: reserved (with its order), wait-listed or sold out.
pub fn decided(
    ticket: Uuid,
    sale: &SaleId,
    status: TicketStatus,
    order: Option<Uuid>,
    request_id: Option<&str>,
) {
    tracing::info!(
        target: TARGET,
        %ticket,
        %sale,
        order = order.map(tracing::field::display),
        status = status.as_str(),
        request_id,
        "ticket decided"
    );
}

/// An order moved (`step` says by what: a payment, a webhook, an expiry, a reconciliation).
pub fn order(step: &'static str, order: &OrderRef) {
    tracing::info!(
        target: TARGET,
        ticket = %order.ticket_id,
        order = %order.id,
        sale = %order.sale_id,
        status = order.status.as_str(),
        payment_intent = order.payment_intent_id.as_deref(),
        step,
        "order moved"
    );
}

/// A PaymentIntent was created for `order` and awaits the shopper or Stripe's answer.
pub fn payment_started(ticket: Uuid, order: Uuid, sale: &SaleId, payment_intent: &str) {
    tracing::info!(
        target: TARGET,
        %ticket,
        %order,
        %sale,
        status = "payment_pending",
        payment_intent,
        step = "payment started",
        "order moved"
    );
}
