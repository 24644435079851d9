//! Retention: the append-only tables would otherwise grow forever. Applied Stripe events
//! are kept long enough to recognise any redelivery (Stripe retries for up to 3 days; the
//! config refuses less than 4), order events only once relayed and past their window, the
//! admission audit for its own window, a gone worker's Stripe figures after an hour. Deletes run in bounded batches along BRIN indexes
//! on the insertion time, so a run never holds long locks or scans a whole table.

use crate::Result;
use crate::context::Context;

/// Rows deleted per statement.
const BATCH: i64 = 5000;
/// Statements per table and run, so one run stays short; the next run goes on.
const ROUNDS: usize = 20;

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Applied Stripe events.
    pub stripe_events: u64,
    /// Relayed order events.
    pub order_events: u64,
    /// Audit entries.
    pub audit: u64,
    /// Stripe figures of workers silent for an hour (gone).
    pub stripe_latency: u64,
}

/// Deletes what is past its retention.
pub async fn apply(ctx: &Context) -> Result<Deleted> {
    let config = &ctx.config.worker;
    let (pool, days) = (&ctx.pool, |d: u32| i32::try_from(d).unwrap_or(i32::MAX));
    let stripe_events = in_batches(|| {
        sqlx::query!(
            r#"DELETE FROM stripe_events WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM stripe_events
                   WHERE received_at < now() - make_interval(days => $1) LIMIT $2))"#,
            days(config.stripe_events_retention_days),
            BATCH
        )
        .execute(pool)
    })
    .await?;
    let order_events = in_batches(|| {
        sqlx::query!(
            r#"DELETE FROM order_events WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM order_events
                   WHERE created_at < now() - make_interval(days => $1)
                     AND published_at IS NOT NULL LIMIT $2))"#,
            days(config.order_events_retention_days),
            BATCH
        )
        .execute(pool)
    })
    .await?;
    let audit = in_batches(|| {
        sqlx::query!(
            r#"DELETE FROM admission_audit WHERE ctid = ANY(ARRAY(
                   SELECT ctid FROM admission_audit
                   WHERE at < now() - make_interval(days => $1) LIMIT $2))"#,
            days(config.audit_retention_days),
            BATCH
        )
        .execute(pool)
    })
    .await?;
    let stripe_latency =
        sqlx::query!("DELETE FROM stripe_latency WHERE at < now() - interval '1 hour'")
            .execute(pool)
            .await?
            .rows_affected();
    Ok(Deleted {
        stripe_events,
        order_events,
        audit,
        stripe_latency,
    })
}

/// Runs `delete` (one batch) until a batch comes back short or `ROUNDS` ran.
async fn in_batches<F, Fut>(mut delete: F) -> Result<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<sqlx::postgres::PgQueryResult>>,
{
    let mut deleted = 0;
    for _ in 0..ROUNDS {
        let n = delete().await?.rows_affected();
        deleted += n;
        if n < BATCH as u64 {
            break;
        }
    }
    Ok(deleted)
}
