//! The ledger: every move of units between a sale's terms happens here, inside the
//! caller's transaction, together with the order's transition and its outbox event, so
//! I1 (`available + reserved + sold = stock`) holds at every commit and transitions only
//! move forward. Callers publish the returned terms and status to Redis after commit.

mod intents;
mod publish;
mod transitions;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{OrderStatus, SaleId, SaleTerms};
pub use intents::{Applied, IntentOutcome, apply_intent};
pub use publish::publish_changes;
pub use transitions::{mark_refunded, release, settle};

/// An order as the ledger sees it, after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    /// The order.
    pub id: Uuid,
    /// Its ticket.
    pub ticket_id: Uuid,
    /// Its sale.
    pub sale_id: SaleId,
    /// Units.
    pub quantity: i32,
    /// Status after the change.
    pub status: OrderStatus,
    /// Its PaymentIntent, if known.
    pub payment_intent_id: Option<String>,
}

/// What a state change did: the order afterwards and the sale's new terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The order after the change.
    pub order: OrderRef,
    /// The sale's terms after the change, when units moved.
    pub terms: Option<SaleTerms>,
}

/// The outcome of a successful payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The order is now paid (its held units, or a free unit taken back, are sold).
    Paid(Change),
    /// Paid after release with no unit free: the order awaits a refund.
    RefundNeeded(Change),
    /// Nothing to do: already paid, refunded or being refunded.
    AlreadySettled(OrderRef),
    /// The order is bound to another PaymentIntent; nothing was changed.
    ForeignIntent(OrderRef),
}

/// Why an order gave its units back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The payment failed; `cancel_intent` asks for the PaymentIntent to be canceled too.
    Failed {
        /// Cancel the PaymentIntent at Stripe (it could still succeed otherwise).
        cancel_intent: bool,
    },
    /// The hold timed out, and its PaymentIntent (if one was ever asked for) is known
    /// canceled at Stripe: nothing can charge the order any more.
    Expired,
}

/// Locks and reads an order.
pub async fn lock_order(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<OrderRef>> {
    let row = sqlx::query!(
        r#"SELECT id, ticket_id, sale_id, quantity, status, payment_intent_id
           FROM orders WHERE id = $1 FOR UPDATE"#,
        order_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.and_then(|r| {
        Some(OrderRef {
            id: r.id,
            ticket_id: r.ticket_id,
            sale_id: SaleId::parse(r.sale_id).ok()?,
            quantity: r.quantity,
            status: OrderStatus::parse(&r.status)?,
            payment_intent_id: r.payment_intent_id,
        })
    }))
}

/// Moves units between the terms; `None` when that would leave `available` negative.
pub async fn move_units(
    tx: &mut PgConnection,
    sale: &SaleId,
    reserved_delta: i32,
    sold_delta: i32,
) -> sqlx::Result<Option<SaleTerms>> {
    let row = sqlx::query!(
        r#"UPDATE sales
           SET reserved = reserved + $2, sold = sold + $3, version = version + 1, updated_at = now()
           WHERE id = $1 AND stock - (reserved + $2) - (sold + $3) >= 0
           RETURNING version, stock, reserved, sold, decided, waitlisted"#,
        sale.as_str(),
        reserved_delta,
        sold_delta
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|r| crate::sale_terms!(r)))
}

/// Records order events in the outbox, in the same transaction as the change.
pub async fn record_events(
    tx: &mut PgConnection,
    order_ids: &[Uuid],
    kind: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO order_events (order_id, kind, payload)
           SELECT o.id, $2, jsonb_build_object(
               'type', $2::text, 'order_id', o.id, 'ticket_id', o.ticket_id,
               'sale_id', o.sale_id, 'customer_id', o.customer_id, 'quantity', o.quantity,
               'amount', o.amount, 'currency', o.currency,
               'payment_intent_id', o.payment_intent_id, 'at', now())
           FROM orders o WHERE o.id = ANY($1)"#,
        order_ids,
        kind
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
