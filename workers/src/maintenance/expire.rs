//! Expiring holds: orders still unpaid at `hold_expires_at`, in skip-locked batches (so
//! several workers share the sweep and never wait on an order a webhook is settling).
//! An order no PaymentIntent was ever asked for gives its units back at once. One whose
//! PaymentIntent may exist keeps them and is marked `cancel_pending`: the side-effect step
//! cancels it at Stripe first, and only a canceled PaymentIntent releases the units (a
//! succeeded one sells them), so a payment that raced the expiry is never left without a
//! unit.

use std::collections::BTreeMap;

use flashgate_common::domain::{OrderStatus, SaleId, SaleTerms};
use flashgate_common::ledger::{self, Change, OrderRef};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::context::Context;

/// An order whose hold just expired.
struct Expired {
    id: Uuid,
    ticket_id: Uuid,
    sale_id: SaleId,
    quantity: i32,
    payment_intent_id: Option<String>,
}

/// Expires up to `limit` holds; returns how many it took (released or sent to Stripe).
pub async fn expire_holds(ctx: &Context, limit: i64) -> Result<usize> {
    let mut tx = ctx.pool.begin().await?;
    let (expired, resolving) = take_expired(&mut tx, limit).await?;
    if expired.is_empty() {
        tx.commit().await?;
        return Ok(resolving);
    }
    let terms = release(&mut tx, &expired).await?;
    let ids: Vec<Uuid> = expired.iter().map(|o| o.id).collect();
    ledger::record_events(&mut tx, &ids, "order.expired.v1").await?;
    tx.commit().await?;
    let changes: Vec<Change> = expired
        .into_iter()
        .map(|order| Change {
            terms: terms.get(&order.sale_id).copied().flatten(),
            order: OrderRef {
                id: order.id,
                ticket_id: order.ticket_id,
                sale_id: order.sale_id,
                quantity: order.quantity,
                status: OrderStatus::Expired,
                payment_intent_id: order.payment_intent_id,
            },
        })
        .collect();
    metrics::counter!("holds_expired_total").increment(changes.len() as u64);
    if let Err(e) = ledger::publish_changes(&ctx.redis, &changes).await {
        tracing::warn!(error = ?e, "expiries not published to redis");
    }
    Ok(changes.len() + resolving)
}

/// Takes due holds (skipping orders another transaction holds): those without a
/// PaymentIntent request are marked expired and returned; the others are marked for a
/// cancel at Stripe and only counted.
async fn take_expired(tx: &mut PgConnection, limit: i64) -> Result<(Vec<Expired>, usize)> {
    let rows = sqlx::query!(
        r#"UPDATE orders
           SET status = CASE WHEN pi_requested_at IS NULL THEN 'expired' ELSE status END,
               cancel_pending = pi_requested_at IS NOT NULL, updated_at = now()
           WHERE id IN (SELECT id FROM orders
                        WHERE status IN ('reserved', 'payment_pending') AND NOT cancel_pending
                          AND hold_expires_at < now()
                        ORDER BY hold_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, ticket_id, sale_id, quantity, payment_intent_id, status"#,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    let (expired, resolving): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|r| r.status == "expired");
    let expired = expired
        .into_iter()
        .map(|r| {
            Ok(Expired {
                id: r.id,
                ticket_id: r.ticket_id,
                sale_id: SaleId::parse(r.sale_id)
                    .map_err(|e| crate::Error::Poison(e.to_string()))?,
                quantity: r.quantity,
                payment_intent_id: r.payment_intent_id,
            })
        })
        .collect::<Result<_>>()?;
    Ok((expired, resolving.len()))
}

/// Gives the expired units back, sale by sale in id order (so two sweepers lock the
/// sale rows in the same order); returns each sale's new terms.
async fn release(
    tx: &mut PgConnection,
    expired: &[Expired],
) -> Result<BTreeMap<SaleId, Option<SaleTerms>>> {
    let mut units: BTreeMap<&SaleId, i32> = BTreeMap::new();
    for order in expired {
        *units.entry(&order.sale_id).or_default() += order.quantity;
    }
    let mut terms = BTreeMap::new();
    for (sale, units) in units {
        terms.insert(sale.clone(), ledger::move_units(tx, sale, -units, 0).await?);
    }
    Ok(terms)
}
