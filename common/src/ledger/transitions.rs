//! The order transitions: release, mark paid, refund.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{Change, OrderRef, Release, Settlement, lock_order, move_units, record_events};
use crate::domain::OrderStatus;

pub(super) async fn set_status(
    tx: &mut PgConnection,
    order: &mut OrderRef,
    status: OrderStatus,
    cancel_intent: bool,
    failure_code: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE orders SET status = $2, failure_code = COALESCE($4, failure_code),
               cancel_pending = $3 AND (payment_intent_id IS NOT NULL OR pi_requested_at IS NOT NULL),
               paid_at = CASE WHEN $2 = 'paid' THEN now() ELSE paid_at END,
               effect_leased_at = NULL, updated_at = now()
           WHERE id = $1"#,
        order.id,
        status.as_str(),
        cancel_intent,
        failure_code
    )
    .execute(&mut *tx)
    .await?;
    order.status = status;
    Ok(())
}

/// Gives an order's held units back. `None` when the order holds none (already final).
pub async fn release(
    tx: &mut PgConnection,
    order_id: Uuid,
    why: Release,
    failure_code: Option<&str>,
) -> sqlx::Result<Option<Change>> {
    let Some(order) = lock_order(tx, order_id).await? else {
        return Ok(None);
    };
    release_locked(tx, order, why, failure_code).await
}

/// [`release`] of an order the caller has locked ([`lock_order`]) in this transaction.
pub(super) async fn release_locked(
    tx: &mut PgConnection,
    mut order: OrderRef,
    why: Release,
    failure_code: Option<&str>,
) -> sqlx::Result<Option<Change>> {
    if !order.status.holds_units() {
        return Ok(None);
    }
    let (status, cancel, kind) = match why {
        Release::Failed { cancel_intent } => {
            (OrderStatus::Failed, cancel_intent, "order.failed.v1")
        }
        Release::Expired => (OrderStatus::Expired, false, "order.expired.v1"),
    };
    set_status(tx, &mut order, status, cancel, failure_code).await?;
    record_events(tx, &[order.id], kind).await?;
    // The sale's row last: every payment outcome of the sale queues on its lock, which is
    // held from here to the commit.
    let terms = move_units(tx, &order.sale_id, -order.quantity, 0).await?;
    Ok(Some(Change { order, terms }))
}

/// Applies a successful payment of `payment_intent_id` to an order the caller has locked
/// ([`lock_order`]) in this transaction: held units become sold; after a release a free
/// unit is taken back, or the order is marked for a refund.
pub async fn mark_paid(
    tx: &mut PgConnection,
    mut order: OrderRef,
    payment_intent_id: &str,
) -> sqlx::Result<Settlement> {
    match order.payment_intent_id.as_deref() {
        Some(bound) if bound != payment_intent_id => {
            return Ok(Settlement::ForeignIntent(order));
        }
        Some(_) => {}
        None => {
            attach_intent(tx, order.id, payment_intent_id).await?;
            order.payment_intent_id = Some(payment_intent_id.to_owned());
        }
    }
    match order.status {
        // Held units become sold. That leaves `available` as it was, so it cannot fail
        // (I1): the order is settled first and the sale's row, whose lock every payment
        // outcome of the sale queues on until the commit, is written last.
        OrderStatus::Reserved | OrderStatus::PaymentPending => {
            set_status(tx, &mut order, OrderStatus::Paid, false, None).await?;
            record_events(tx, &[order.id], "order.paid.v1").await?;
            let terms = move_units(tx, &order.sale_id, -order.quantity, order.quantity)
                .await?
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!(
                        "sale {}: selling held units would leave fewer than no units available (I1 broken)",
                        order.sale_id
                    ))
                })?;
            return Ok(Settlement::Paid(Change {
                order,
                terms: Some(terms),
            }));
        }
        OrderStatus::Failed | OrderStatus::Expired => {}
        OrderStatus::Paid | OrderStatus::RefundPending | OrderStatus::Refunded => {
            return Ok(Settlement::AlreadySettled(order));
        }
    }
    // After a release a free unit is taken back, if there is one.
    let Some(terms) = move_units(tx, &order.sale_id, 0, order.quantity).await? else {
        set_status(
            tx,
            &mut order,
            OrderStatus::RefundPending,
            false,
            Some("no_unit_left"),
        )
        .await?;
        return Ok(Settlement::RefundNeeded(Change { order, terms: None }));
    };
    set_status(tx, &mut order, OrderStatus::Paid, false, None).await?;
    record_events(tx, &[order.id], "order.paid.v1").await?;
    Ok(Settlement::Paid(Change {
        order,
        terms: Some(terms),
    }))
}

/// Binds a PaymentIntent to an order that has none yet (a webhook may come first).
pub async fn attach_intent(
    tx: &mut PgConnection,
    order_id: Uuid,
    intent: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET payment_intent_id = $2 WHERE id = $1 AND payment_intent_id IS NULL",
        order_id,
        intent
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks a refunded order once Stripe confirmed the refund.
pub async fn mark_refunded(
    tx: &mut PgConnection,
    order_id: Uuid,
) -> sqlx::Result<Option<OrderRef>> {
    let Some(mut order) = lock_order(tx, order_id).await? else {
        return Ok(None);
    };
    if order.status != OrderStatus::RefundPending {
        return Ok(None);
    }
    set_status(tx, &mut order, OrderStatus::Refunded, false, None).await?;
    record_events(tx, &[order.id], "order.refunded.v1").await?;
    Ok(Some(order))
}
