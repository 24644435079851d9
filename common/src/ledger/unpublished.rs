//! Status changes Redis did not take. Polls read Redis first, and a poll only falls back
//! to the ledger when Redis has nothing or is behind the queue; so a `paid` whose write
//! failed (Redis away, failing over, or a connection it had dropped) left the shopper
//! reading the status before it for good. A failed write keeps its tickets in
//! `unpublished_tickets`, and the workers' sweep publishes each one's state from the
//! ledger until Redis takes it.
//!
//! A process can also die between its commit and its Redis write. Where nothing would
//! ever publish the change again (no message redelivered, no Stripe retry: the sweeps'
//! closes and expiries, and the payment steps whose task finds its order moved on), the
//! transaction keeps its tickets itself ([`owe`]), and the write forgets them once Redis
//! took it ([`write_or_keep`], [`crate::ledger::publish_changes`]).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Result;
use crate::domain::{OrderStatus, SaleId, TicketStatus};
use crate::live::Redis;
use crate::live::tickets::StatusUpdate;

/// What the shopper is shown for a ticket the ledger decided: its order's status, else
/// its decision (a reservation whose order is not written yet shows `reserved`).
pub fn ticket_status(decision: &str, order: Option<OrderStatus>) -> TicketStatus {
    match order {
        Some(order) => order.ticket_status().unwrap_or(TicketStatus::Expired),
        None if decision == "sold_out" => TicketStatus::SoldOut,
        None if decision == "waitlisted" => TicketStatus::Waitlisted,
        None => TicketStatus::Reserved,
    }
}

/// Tickets a transaction kept for the sweep before it committed their change ([`owe`]);
/// the default keeps none.
#[derive(Debug, Default)]
#[must_use = "owed tickets are republished by the sweep until settled"]
pub struct Owed {
    tickets: Vec<Uuid>,
    since: Vec<DateTime<Utc>>,
}

impl Owed {
    /// What a statement that kept tickets itself returned.
    pub(super) fn kept(rows: impl IntoIterator<Item = (Uuid, DateTime<Utc>)>) -> Self {
        let (tickets, since) = rows.into_iter().unzip();
        Self { tickets, since }
    }
}

/// Keeps `tickets` for the sweep in `tx`, the transaction that changes their status: if
/// the process dies after the commit and before Redis hears of the change, the sweep
/// publishes it. [`settle`] forgets them once Redis took it.
pub async fn owe(tx: &mut PgConnection, tickets: impl IntoIterator<Item = Uuid>) -> Result<Owed> {
    let mut tickets: Vec<Uuid> = tickets.into_iter().collect();
    // One row may be touched once per statement.
    tickets.sort_unstable();
    tickets.dedup();
    if tickets.is_empty() {
        return Ok(Owed::default());
    }
    let kept = sqlx::query!(
        r#"INSERT INTO unpublished_tickets (ticket_id) SELECT * FROM unnest($1::uuid[])
           ON CONFLICT (ticket_id) DO UPDATE SET since = clock_timestamp()
           RETURNING ticket_id, since"#,
        &tickets
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Owed::kept(kept.into_iter().map(|r| (r.ticket_id, r.since))))
}

/// Forgets the tickets `owed` kept, now that Redis took their statuses (unless a newer
/// change kept them again meanwhile).
pub async fn settle(pool: &PgPool, owed: Owed) -> Result<()> {
    if owed.tickets.is_empty() {
        return Ok(());
    }
    forget(pool, &owed.tickets, &owed.since).await
}

/// Writes `updates` to Redis and settles what their transaction `owed`; if Redis does not
/// take them, keeps their tickets for the sweep ([`republish`]). Fails only when neither
/// Redis nor PostgreSQL took them.
pub async fn write_or_keep(
    pool: &PgPool,
    redis: &Redis,
    updates: &[StatusUpdate],
    owed: Owed,
) -> Result<()> {
    match redis.write_statuses(updates).await {
        Ok(()) => settle(pool, owed).await,
        Err(e) => keep(pool, updates, e).await,
    }
}

/// Keeps the tickets of `updates`, which Redis refused with `error`, for the sweep.
pub(super) async fn keep(
    pool: &PgPool,
    updates: &[StatusUpdate],
    error: crate::Error,
) -> Result<()> {
    let tickets: Vec<Uuid> = updates.iter().map(|u| u.ticket).collect();
    if tickets.is_empty() {
        // Only terms were refused: the doors re-read them from PostgreSQL by themselves.
        tracing::warn!(error = ?error, "sale terms not published to redis");
        return Ok(());
    }
    sqlx::query!(
        r#"INSERT INTO unpublished_tickets (ticket_id) SELECT * FROM unnest($1::uuid[])
           ON CONFLICT (ticket_id) DO UPDATE SET since = clock_timestamp()"#,
        &tickets
    )
    .execute(pool)
    .await?;
    metrics::counter!("flashgate_statuses_kept_total").increment(tickets.len() as u64);
    tracing::warn!(error = ?error, tickets = tickets.len(), "statuses not published to redis; kept for the sweep");
    Ok(())
}

/// Publishes the ledger's state of up to `limit` kept tickets, oldest first, and forgets
/// those Redis took (unless a newer failure kept them again meanwhile); returns how many.
pub async fn republish(pool: &PgPool, redis: &Redis, limit: i64) -> Result<usize> {
    let rows = sqlx::query!(
        r#"SELECT u.ticket_id, u.since, t.sale_id, t.decision,
                  o.id AS "order_id?: Uuid", o.status AS "order_status?",
                  o.payment_intent_id AS "payment_intent_id?", o.client_secret AS "client_secret?",
                  o.payment_method AS "payment_method?", o.hold_expires_at AS "hold_expires_at?"
           FROM unpublished_tickets u
           JOIN tickets t ON t.id = u.ticket_id
           LEFT JOIN orders o ON o.ticket_id = t.id
           ORDER BY u.since LIMIT $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut kept: Vec<(Uuid, DateTime<Utc>)> = Vec::with_capacity(rows.len());
    let mut updates = Vec::with_capacity(rows.len());
    for row in rows {
        kept.push((row.ticket_id, row.since));
        let Ok(sale) = SaleId::parse(row.sale_id) else {
            continue;
        };
        let order = row.order_status.as_deref().and_then(OrderStatus::parse);
        let status = ticket_status(&row.decision, order);
        let shopper_confirms = row.payment_method.is_none();
        updates.push(StatusUpdate {
            sale,
            ticket: row.ticket_id,
            status,
            order_id: row.order_id,
            payment_intent: row.payment_intent_id,
            client_secret: row.client_secret.filter(|_| shopper_confirms),
            hold_expires_at: row.hold_expires_at,
        });
    }
    redis.write_statuses(&updates).await?;
    let (tickets, since): (Vec<Uuid>, Vec<DateTime<Utc>>) = kept.into_iter().unzip();
    forget(pool, &tickets, &since).await?;
    Ok(tickets.len())
}

/// Deletes the kept rows of `tickets` still kept `since` then: one kept again by a newer
/// change stays.
async fn forget(pool: &PgPool, tickets: &[Uuid], since: &[DateTime<Utc>]) -> Result<()> {
    sqlx::query!(
        r#"DELETE FROM unpublished_tickets u
           USING unnest($1::uuid[], $2::timestamptz[]) AS d (ticket_id, since)
           WHERE u.ticket_id = d.ticket_id AND u.since = d.since"#,
        tickets,
        since
    )
    .execute(pool)
    .await?;
    Ok(())
}
