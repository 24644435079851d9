//! The hold sweep: expires due holds through the ledger (`ledger::expire`, which says
//! when units go back at once and when Stripe must cancel first), then publishes the
//! released orders and their sales' terms (their tickets kept for the sweep by the same
//! commit, so a worker dying before the publish leaves no shopper reading the hold).

use flashgate_common::ledger::{self, unpublished};

use crate::Result;
use crate::context::Context;

/// Expires up to `limit` holds; returns how many it took (released or sent to Stripe).
pub async fn expire_holds(ctx: &Context, limit: i64) -> Result<usize> {
    let mut tx = ctx.pool.begin().await?;
    let expiry = ledger::expire::expire_due(
        &mut tx,
        limit,
        ctx.config.worker.hold_extension_max_secs as f64,
    )
    .await?;
    let owed = unpublished::owe(&mut tx, expiry.released.iter().map(|c| c.order.ticket_id)).await?;
    tx.commit().await?;
    let released = expiry.released.len();
    if released == 0 {
        return Ok(expiry.to_cancel);
    }
    metrics::counter!("flashgate_holds_expired_total").increment(released as u64);
    if let Err(e) = ledger::publish_changes(
        &ctx.pool,
        &ctx.redis,
        "hold expired",
        &expiry.released,
        owed,
    )
    .await
    {
        tracing::warn!(error = ?e, "expiries not published to redis");
    }
    Ok(released + expiry.to_cancel)
}
