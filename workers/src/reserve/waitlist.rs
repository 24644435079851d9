//! The wait-list. When units come back (a hold expired, a card was declined), they go to
//! the sale's wait-listed tickets first, in sequence order, in one transaction under the
//! sale's row lock. When nothing can come back any more (no unit available, none held),
//! the wait-list is closed: its tickets end sold out, [`CLOSE_BATCH`] a transaction,
//! each kept for the sweep by its transaction until Redis took its status.

use flashgate_common::domain::{SaleId, SaleTerms, TicketStatus};
use flashgate_common::ledger::reserve::{self, Candidate, LockedSale, Plan};
use flashgate_common::ledger::unpublished::{self, Owed};
use flashgate_common::live::tickets::StatusUpdate;
use sqlx::PgConnection;
use uuid::Uuid;

use super::decide::{Batch, Decided, TicketOutcome};
use super::emit;
use crate::context::Context;
use crate::{Error, Result};

/// Most tickets promoted per sale and sweep.
const PROMOTE_BATCH: i64 = 500;

/// Most wait-listed tickets closed in one transaction. Closing the door benchmark's
/// 370,000 in one statement took the worker from 68.7 to 297.5 MiB
/// (`door-20261205-200723`); in chunks of this size, 78.1 MiB (`door-20261205-201326`).
pub const CLOSE_BATCH: i64 = 5_000;

/// Most transactions closing one sale's wait-list per sweep, so a long list leaves the
/// sweep's other steps their turn: 50,000 tickets a sweep, the rest at the next.
const CLOSE_BATCHES: usize = 10;

/// Promotes or closes the wait-list of every sale where one of the two is due.
///
/// Runs every sweep, so it starts from the sales (a handful) and probes the wait-list
/// index once for each sale where something is due: starting from the wait-listed tickets
/// instead read every one of them each sweep (36 ms for a wait-list of 300,000, against
/// 0.3 ms). The probe is a scalar subquery with `LIMIT 1`, not `EXISTS`, because the
/// planner may turn an `EXISTS` into a merge or hash semi-join that reads the whole
/// wait-list, sales that are not due included: 29 ms for a wait-list of 190,000 when
/// planned that way, and its choice rests on statistics that can be stale (or, with
/// autovacuum off, never taken). A scalar subquery is never turned into a join.
pub async fn serve(ctx: &Context) -> Result<usize> {
    let due = sqlx::query_scalar!(
        r#"SELECT s.id FROM sales s
           WHERE (s.stock - s.reserved - s.sold > 0 OR s.reserved = 0)
             AND (SELECT true FROM tickets t
                  WHERE t.sale_id = s.id AND t.decision = 'waitlisted' LIMIT 1)
           ORDER BY s.id"#
    )
    .fetch_all(&ctx.pool)
    .await?;
    let mut moved = 0;
    for sale in due {
        let sale = SaleId::parse(sale).map_err(|e| Error::Poison(e.to_string()))?;
        moved += serve_sale(ctx, &sale).await?;
    }
    Ok(moved)
}

async fn serve_sale(ctx: &Context, id: &SaleId) -> Result<usize> {
    let mut moved = 0;
    for _ in 0..CLOSE_BATCHES {
        let (served, more) = serve_once(ctx, id).await?;
        moved += served;
        if !more {
            break;
        }
    }
    Ok(moved)
}

/// One transaction on the sale's wait-list: closes a chunk of it when nothing can come
/// back, else promotes to the units free. Returns the tickets moved and whether a chunk
/// of the list is still to close.
async fn serve_once(ctx: &Context, id: &SaleId) -> Result<(usize, bool)> {
    let mut tx = ctx.pool.begin().await?;
    let mut sales = reserve::lock_sales(&mut tx, std::slice::from_ref(id)).await?;
    let Some(sale) = sales.get_mut(id) else {
        return Ok((0, false));
    };
    if sale.available <= 0 {
        let (closed, terms) = reserve::close_waitlist(&mut tx, id, sale, CLOSE_BATCH).await?;
        // Nothing would close these tickets again: if this worker dies before Redis hears
        // of it, the sweep publishes their `sold_out` from the ledger.
        let owed = unpublished::owe(&mut tx, closed.iter().map(|(ticket, _)| *ticket)).await?;
        tx.commit().await?;
        let now = chrono::Utc::now();
        flashgate_common::telemetry::record_final_answers(
            "sold_out",
            closed.iter().map(|(_, issued)| (*issued, now)),
        );
        let closed: Vec<Uuid> = closed.into_iter().map(|(ticket, _)| ticket).collect();
        publish_closed(ctx, id, &closed, terms, owed).await;
        return Ok((closed.len(), closed.len() as i64 == CLOSE_BATCH));
    }
    let mut plan = Plan::default();
    let tickets = promote(&mut tx, &mut plan, id, sale).await?;
    let terms = plan.write(&mut tx).await?;
    tx.commit().await?;
    let promoted = tickets.len();
    let terms = terms.get(id).copied().unwrap_or(sale.sale.terms);
    let batch = Batch {
        sales: vec![Decided {
            sale: id.clone(),
            terms,
            tickets,
        }],
        unknown: Vec::new(),
    };
    super::trail(&[], &batch);
    emit::emit(ctx, &batch).await?;
    Ok((promoted, false))
}

/// Grants the units `sale` has free to its wait-listed tickets, first in line first, in
/// `plan` (the caller writes it under the sale's row lock). The reservation batch calls
/// it before granting its fresh tickets, so a unit that came back goes to those who
/// waited, not to whoever arrived next.
pub(super) async fn promote(
    tx: &mut PgConnection,
    plan: &mut Plan,
    id: &SaleId,
    sale: &mut LockedSale,
) -> Result<Vec<TicketOutcome>> {
    // The sale row (locked) counts its wait-list: no query when nobody waits.
    if !sale.sale.waitlist || sale.available <= 0 || sale.sale.terms.waitlisted <= 0 {
        return Ok(Vec::new());
    }
    let waiting = waiting(tx, id).await?;
    let granted = plan.grant(id, sale, &waiting);
    let promoted: Vec<(Uuid, Uuid)> = waiting
        .iter()
        .zip(granted)
        .filter_map(|(c, o)| Some((c.ticket_id, o?)))
        .collect();
    plan.promote(id, promoted.iter().map(|(ticket, _)| *ticket));
    metrics::counter!("flashgate_waitlist_promoted_total").increment(promoted.len() as u64);
    Ok(promoted
        .into_iter()
        .map(|(ticket, order)| {
            TicketOutcome::granted(ticket, Some(order), TicketStatus::Waitlisted)
        })
        .collect())
}

/// The sale's wait-listed tickets, first in line first.
async fn waiting(tx: &mut PgConnection, id: &SaleId) -> Result<Vec<Candidate>> {
    let rows = sqlx::query!(
        r#"SELECT id, customer_id, quantity, payment_method, seq, issued_at FROM tickets
           WHERE sale_id = $1 AND decision = 'waitlisted' ORDER BY seq LIMIT $2"#,
        id.as_str(),
        PROMOTE_BATCH
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Candidate {
            ticket_id: r.id,
            customer_id: r.customer_id,
            quantity: r.quantity,
            payment_method: r.payment_method,
            seq: r.seq,
            issued_at: r.issued_at,
        })
        .collect())
}

async fn publish_closed(
    ctx: &Context,
    sale: &SaleId,
    closed: &[Uuid],
    terms: Option<SaleTerms>,
    owed: Owed,
) {
    for ticket in closed {
        flashgate_common::trail::decided(*ticket, sale, TicketStatus::SoldOut, None, None);
    }
    if let Some(terms) = terms
        && let Err(e) = ctx.redis.write_terms(sale, &terms).await
    {
        tracing::warn!(error = ?e, %sale, "closed wait-list's terms not published to redis");
    }
    let updates: Vec<StatusUpdate> = closed
        .iter()
        .map(|t| StatusUpdate::new(sale.clone(), *t, TicketStatus::SoldOut))
        .collect();
    if let Err(e) = unpublished::write_or_keep(&ctx.pool, &ctx.redis, &updates, owed).await {
        tracing::warn!(error = ?e, %sale, "closed wait-list not published to redis");
    }
}
