//! A sale's vital signs over the last minute, for the operators' console: how long
//! shoppers waited in the queue and for a final answer (p50, p99), how payments went;
//! and the workers' Stripe latency, which each worker writes here every few seconds
//! (one row per worker process) so that any door can show it.

use serde::Serialize;
use sqlx::PgPool;

use crate::domain::SaleId;
use crate::telemetry::window::Recent;

/// How far back the sale's figures look.
pub const WINDOW_SECS: f64 = 60.0;

/// A worker's Stripe figures older than this are left out (the worker is gone).
const STRIPE_FRESH_SECS: f64 = 15.0;

/// A sale's figures over the last [`WINDOW_SECS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SaleVitals {
    /// Seconds the figures cover.
    pub window_secs: f64,
    /// Tickets decided in the window.
    pub decided: i64,
    /// Issue to decision (reserved, sold out or wait-listed), of tickets decided in the
    /// window: p50 and p99, in milliseconds (`null` when none).
    pub queue_p50_ms: Option<f64>,
    /// See `queue_p50_ms`.
    pub queue_p99_ms: Option<f64>,
    /// Issue to a final answer (paid, payment failed, hold expired, sold out), of
    /// tickets answered in the window: p50 and p99, in milliseconds.
    pub final_p50_ms: Option<f64>,
    /// See `final_p50_ms`.
    pub final_p99_ms: Option<f64>,
    /// Orders paid in the window.
    pub paid: i64,
    /// Orders whose payment failed in the window.
    pub failed: i64,
    /// Holds that ran out unpaid in the window.
    pub expired: i64,
    /// `paid / (paid + failed)` (`null` when neither).
    pub payment_success_rate: Option<f64>,
}

/// The sale's vitals (zeros and `null`s for a sale with nothing in the window).
pub async fn sale_vitals(db: &PgPool, sale: &SaleId) -> sqlx::Result<SaleVitals> {
    let row = sqlx::query!(
        r#"WITH decided AS (
               SELECT t.decision, t.decided_at - t.issued_at AS waited
               FROM tickets t JOIN sales s ON s.id = t.sale_id
               -- The tickets decided last: by sequence (the index), then by time.
               WHERE t.sale_id = $1 AND t.seq > s.decided - 20000
                 AND t.decided_at > now() - make_interval(secs => $2)),
           ended AS (
               SELECT o.status, COALESCE(o.paid_at, o.updated_at) - t.issued_at AS took
               FROM orders o JOIN tickets t ON t.id = o.ticket_id
               WHERE o.sale_id = $1 AND o.status IN ('paid', 'failed', 'expired')
                 AND COALESCE(o.paid_at, o.updated_at) > now() - make_interval(secs => $2)
               UNION ALL
               SELECT decision, waited FROM decided WHERE decision = 'sold_out')
           SELECT
               (SELECT count(*) FROM decided) AS "decided!",
               (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP
                    (ORDER BY extract(epoch FROM waited)) FROM decided) AS "queue: Vec<f64>",
               (SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP
                    (ORDER BY extract(epoch FROM took)) FROM ended) AS "final: Vec<f64>",
               (SELECT count(*) FROM ended WHERE status = 'paid') AS "paid!",
               (SELECT count(*) FROM ended WHERE status = 'failed') AS "failed!",
               (SELECT count(*) FROM ended WHERE status = 'expired') AS "expired!""#,
        sale.as_str(),
        WINDOW_SECS
    )
    .fetch_one(db)
    .await?;
    let ms = |q: &Option<Vec<f64>>, i: usize| {
        q.as_ref()
            .and_then(|v| v.get(i).copied())
            .map(|s| (s * 1e4).round() / 10.0)
    };
    let paying = row.paid + row.failed;
    Ok(SaleVitals {
        window_secs: WINDOW_SECS,
        decided: row.decided,
        queue_p50_ms: ms(&row.queue, 0),
        queue_p99_ms: ms(&row.queue, 1),
        final_p50_ms: ms(&row.r#final, 0),
        final_p99_ms: ms(&row.r#final, 1),
        paid: row.paid,
        failed: row.failed,
        expired: row.expired,
        payment_success_rate: (paying > 0)
            .then(|| (row.paid as f64 / paying as f64 * 1000.0).round() / 1000.0),
    })
}

/// Writes a worker's Stripe figures of the last seconds (the retention run forgets
/// workers silent for an hour).
pub async fn record_stripe(db: &PgPool, worker: &str, recent: &Recent) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO stripe_latency (worker, at, calls, errors, p50_ms, p99_ms)
         VALUES ($1, now(), $2, $3, $4, $5)
         ON CONFLICT (worker) DO UPDATE SET at = now(), calls = $2, errors = $3,
             p50_ms = $4, p99_ms = $5",
        worker,
        i64::try_from(recent.calls).unwrap_or(i64::MAX),
        i64::try_from(recent.errors).unwrap_or(i64::MAX),
        recent.p50_ms,
        recent.p99_ms
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The workers' Stripe figures together: calls and errors summed, p50 the mean of the
/// workers' weighted by calls, p99 the worst worker's (a bound, not a merge).
pub async fn stripe(db: &PgPool) -> sqlx::Result<Recent> {
    let row = sqlx::query!(
        r#"SELECT COALESCE(sum(calls), 0)::BIGINT AS "calls!",
                  COALESCE(sum(errors), 0)::BIGINT AS "errors!",
                  sum(p50_ms * calls) / NULLIF(sum(calls) FILTER (WHERE p50_ms IS NOT NULL), 0) AS p50_ms,
                  max(p99_ms) AS p99_ms
           FROM stripe_latency WHERE at > now() - make_interval(secs => $1)"#,
        STRIPE_FRESH_SECS
    )
    .fetch_one(db)
    .await?;
    Ok(Recent {
        calls: u64::try_from(row.calls).unwrap_or(0),
        errors: u64::try_from(row.errors).unwrap_or(0),
        p50_ms: row.p50_ms.map(|v| (v * 100.0).round() / 100.0),
        p99_ms: row.p99_ms,
    })
}
