//! Reconciliation: every order with a PaymentIntent whose last word Stripe has not yet
//! given us (`intent_final`), whatever the order's status (`payment_pending`, but also
//! `failed` or `expired`, whose PaymentIntent may still have been paid), is settled from
//! what Stripe says of it now, once it has been quiet for a bound (a webhook that never
//! arrived). One PaymentIntent that cannot be read is counted and looked at again after
//! another bound; it never stops the run.

use std::time::Duration;

use flashgate_common::ledger::{self, Applied};
use serde::Serialize;
use uuid::Uuid;

use crate::Result;
use crate::context::Context;
use crate::resolve;

/// What a reconciliation run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Orders looked at.
    pub checked: usize,
    /// Orders that moved (paid, failed, expired, or due a refund).
    pub applied: usize,
    /// Orders whose PaymentIntent is still in progress at Stripe.
    pub pending: usize,
    /// Orders whose PaymentIntent could not be read or applied (tried again later).
    pub failed: usize,
}

/// Reconciles up to `limit` orders untouched for longer than `older_than`.
pub async fn reconcile(ctx: &Context, older_than: Duration, limit: i64) -> Result<Report> {
    let secs = older_than.as_secs_f64();
    let open = sqlx::query!(
        r#"SELECT id, payment_intent_id AS "payment_intent_id!" FROM orders
           WHERE payment_intent_id IS NOT NULL AND NOT intent_final
             AND updated_at < now() - make_interval(secs => $1)
           ORDER BY updated_at LIMIT $2"#,
        secs,
        limit
    )
    .fetch_all(&ctx.pool)
    .await?;
    let mut report = Report::default();
    for order in open {
        report.checked += 1;
        match reconcile_one(ctx, order.id, &order.payment_intent_id).await {
            Ok(true) => report.applied += 1,
            Ok(false) => report.pending += 1,
            Err(e) => {
                report.failed += 1;
                tracing::warn!(error = ?e, order = %order.id, intent = %order.payment_intent_id,
                    "order not reconciled; looked at again after the bound");
            }
        }
        // Whatever happened, the next run looks at the others first.
        ledger::payment::reconciled(&ctx.pool, order.id).await?;
    }
    Ok(report)
}

#[tracing::instrument(name = "reconcile", skip(ctx))]
async fn reconcile_one(ctx: &Context, order: Uuid, intent: &str) -> Result<bool> {
    let outcome = resolve::outcome(&resolve::retrieve(ctx, intent).await?);
    let applied = resolve::apply(ctx, "reconciled", order, intent, &outcome).await?;
    let moved = matches!(applied, Applied::Changed(_) | Applied::RefundNeeded(_));
    if moved {
        metrics::counter!("flashgate_orders_reconciled_total").increment(1);
        tracing::info!(%order, %intent, ?outcome, "order reconciled from stripe");
    }
    Ok(moved)
}
