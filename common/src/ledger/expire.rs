//! Expiring holds: orders still unpaid at `hold_expires_at`, in skip-locked batches (so
//! several workers share the sweep and never wait on an order a webhook is settling).
//! An order no PaymentIntent was ever asked for gives its units back at once (one with a
//! saved card waiting for the workers to pay it is not due yet: the backlog is ours). One whose
//! PaymentIntent may exist keeps them and is marked `cancel_pending`: the side-effect step
//! cancels it at Stripe first, and only a canceled PaymentIntent releases the units
//! (`apply_intent`; a succeeded one sells them), so a payment that raced the expiry is
//! never left without a unit.

use std::collections::BTreeMap;

use sqlx::PgConnection;

use super::{Change, OrderRef, move_units, record_events};
use crate::domain::{OrderStatus, SaleId, SaleTerms};

/// What one expiry batch did.
#[derive(Debug, Default)]
pub struct Expiry {
    /// Orders expired, their units given back.
    pub released: Vec<Change>,
    /// Orders whose PaymentIntent must be canceled at Stripe before their units go back.
    pub to_cancel: usize,
}

/// Expires up to `limit` due holds in the caller's transaction. An order with a saved
/// card whose payment the workers have not taken up yet is not due until `wait_secs`
/// past its hold (see [`super::payment::claim_payment`]).
pub async fn expire_due(tx: &mut PgConnection, limit: i64, wait_secs: f64) -> sqlx::Result<Expiry> {
    let (expired, to_cancel) = take_expired(tx, limit, wait_secs).await?;
    if expired.is_empty() {
        return Ok(Expiry {
            to_cancel,
            ..Expiry::default()
        });
    }
    let terms = release(tx, &expired).await?;
    let ids: Vec<_> = expired.iter().map(|o| o.id).collect();
    record_events(tx, &ids, "order.expired.v1").await?;
    let released = expired
        .into_iter()
        .map(|order| Change {
            terms: terms.get(&order.sale_id).copied().flatten(),
            order,
        })
        .collect();
    Ok(Expiry {
        released,
        to_cancel,
    })
}

/// Takes due holds (skipping orders another transaction holds): those without a
/// PaymentIntent request are marked expired and returned; the others are marked for a
/// cancel at Stripe and only counted.
async fn take_expired(
    tx: &mut PgConnection,
    limit: i64,
    wait_secs: f64,
) -> sqlx::Result<(Vec<OrderRef>, usize)> {
    let rows = sqlx::query!(
        r#"UPDATE orders
           SET status = CASE WHEN pi_requested_at IS NULL THEN 'expired' ELSE status END,
               cancel_pending = pi_requested_at IS NOT NULL, updated_at = now()
           WHERE id IN (SELECT id FROM orders
                        WHERE status IN ('reserved', 'payment_pending') AND NOT cancel_pending
                          AND hold_expires_at < now()
                          AND NOT (status = 'reserved' AND pi_requested_at IS NULL
                                   AND payment_method IS NOT NULL
                                   AND hold_expires_at > now() - make_interval(secs => $2))
                        ORDER BY hold_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, ticket_id, sale_id AS "sale_id: SaleId", quantity, payment_intent_id, status"#,
        limit,
        wait_secs
    )
    .fetch_all(&mut *tx)
    .await?;
    let (expired, resolving): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|r| r.status == "expired");
    let expired = expired
        .into_iter()
        .map(|r| {
            Ok(OrderRef {
                id: r.id,
                ticket_id: r.ticket_id,
                sale_id: r.sale_id,
                quantity: r.quantity,
                status: OrderStatus::Expired,
                payment_intent_id: r.payment_intent_id,
            })
        })
        .collect::<sqlx::Result<_>>()?;
    Ok((expired, resolving.len()))
}

/// Gives the expired units back, sale by sale in id order (so two sweepers lock the
/// sale rows in the same order); returns each sale's new terms.
async fn release(
    tx: &mut PgConnection,
    expired: &[OrderRef],
) -> sqlx::Result<BTreeMap<SaleId, Option<SaleTerms>>> {
    let mut units: BTreeMap<&SaleId, i32> = BTreeMap::new();
    for order in expired {
        *units.entry(&order.sale_id).or_default() += order.quantity;
    }
    let mut terms = BTreeMap::new();
    for (sale, units) in units {
        terms.insert(sale.clone(), move_units(tx, sale, -units, 0).await?);
    }
    Ok(terms)
}
