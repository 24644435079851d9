//! Expiring holds: orders still unpaid at `hold_expires_at` give their units back, in
//! skip-locked batches (so several workers share the sweep and never wait on an order a
//! webhook is settling). The PaymentIntent is marked for cancellation in the same commit.

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

/// Expires up to `limit` holds; returns how many.
pub async fn expire_holds(ctx: &Context, limit: i64) -> Result<usize> {
    let mut tx = ctx.pool.begin().await?;
    let expired = take_expired(&mut tx, limit).await?;
    if expired.is_empty() {
        return Ok(0);
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
    Ok(changes.len())
}

/// Marks due holds expired (skipping orders another transaction holds).
async fn take_expired(tx: &mut PgConnection, limit: i64) -> Result<Vec<Expired>> {
    let rows = sqlx::query!(
        r#"UPDATE orders SET status = 'expired', updated_at = now(),
               cancel_pending = (payment_intent_id IS NOT NULL OR pi_requested_at IS NOT NULL)
           WHERE id IN (SELECT id FROM orders
                        WHERE status IN ('reserved', 'payment_pending') AND hold_expires_at < now()
                        ORDER BY hold_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, ticket_id, sale_id, quantity, payment_intent_id"#,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    rows.into_iter()
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
        .collect()
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
