//! Units held for shoppers who left: a shopper paying in the waiting room is present
//! while their page keeps asking for the ticket (the door records when, on the ticket's
//! Redis hash). A hold whose page stopped asking for `worker.presence_timeout_secs` ends
//! now, and the hold sweep gives its unit to the next shopper (the wait-list first),
//! cancelling at Stripe first and extending it instead if a payment is in progress after
//! all. A hold never seen (an API client that does not poll, or a Redis that lost its
//! data) keeps its whole time: absence of a record is not absence of the shopper.

use std::sync::Mutex;

use chrono::Utc;
use flashgate_common::ledger::payment::{ShopperHold, end_holds_now, shopper_holds};
use uuid::Uuid;

use crate::Result;
use crate::context::Context;

/// Holds looked at per pass; the next pass goes on from where this one stopped.
const PER_PASS: i64 = 1000;

/// Where the walk through the holds stands (per process; any start is correct).
static CURSOR: Mutex<Uuid> = Mutex::new(Uuid::nil());

/// Ends the holds of shoppers whose page went away; returns how many.
pub(super) async fn release_absent(ctx: &Context) -> Result<u64> {
    let timeout = ctx.config.worker.presence_timeout_secs;
    if timeout == 0 {
        return Ok(0);
    }
    let after = *CURSOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let holds = shopper_holds(&ctx.pool, after, PER_PASS).await?;
    let next = if (holds.len() as i64) < PER_PASS {
        Uuid::nil()
    } else {
        holds.last().map_or(Uuid::nil(), |h| h.id)
    };
    *CURSOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
    let keys: Vec<_> = holds
        .iter()
        .map(|h| (h.sale_id.clone(), h.ticket_id))
        .collect();
    let seen = ctx.redis.last_seen(&keys).await?;
    let cutoff = Utc::now() - chrono::Duration::seconds(timeout as i64);
    let gone: Vec<&ShopperHold> = holds
        .iter()
        .zip(seen)
        .filter(|(_, seen)| seen.is_some_and(|at| at < cutoff))
        .map(|(hold, _)| hold)
        .collect();
    if gone.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = gone.iter().map(|h| h.id).collect();
    let ended = end_holds_now(&ctx.pool, &ids).await?;
    for hold in gone {
        tracing::info!(order = %hold.id, ticket = %hold.ticket_id, sale = %hold.sale_id,
            "hold ended early: the shopper's page went away");
    }
    metrics::counter!("flashgate_holds_released_absent_total").increment(ended);
    Ok(ended)
}
