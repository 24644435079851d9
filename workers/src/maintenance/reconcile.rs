//! Reconciliation: orders left `payment_pending` past a bound (a webhook that never
//! arrived) are settled from what Stripe says of their PaymentIntent now.

use std::time::Duration;

use flashgate_common::ledger::{self, Applied, IntentOutcome};
use flashgate_common::stripe::with_retries;
use serde::Serialize;
use stripe_core::payment_intent::RetrievePaymentIntent;
use uuid::Uuid;

use crate::context::Context;
use crate::{Error, Result};

/// What a reconciliation run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Orders looked at.
    pub checked: usize,
    /// Orders that moved (paid, failed, or due a refund).
    pub applied: usize,
    /// Orders still pending at Stripe.
    pub pending: usize,
}

/// Reconciles up to `limit` orders pending for longer than `older_than`.
pub async fn reconcile(ctx: &Context, older_than: Duration, limit: i64) -> Result<Report> {
    let secs = older_than.as_secs_f64();
    let stuck = sqlx::query!(
        r#"SELECT id, payment_intent_id AS "payment_intent_id!" FROM orders
           WHERE status = 'payment_pending' AND payment_intent_id IS NOT NULL
             AND updated_at < now() - make_interval(secs => $1)
           ORDER BY updated_at LIMIT $2"#,
        secs,
        limit
    )
    .fetch_all(&ctx.pool)
    .await?;
    let mut report = Report::default();
    for order in stuck {
        report.checked += 1;
        match reconcile_one(ctx, order.id, &order.payment_intent_id).await? {
            true => report.applied += 1,
            false => report.pending += 1,
        }
    }
    Ok(report)
}

async fn reconcile_one(ctx: &Context, order: Uuid, intent: &str) -> Result<bool> {
    let request = RetrievePaymentIntent::new(intent);
    let retrieved = with_retries(Duration::from_secs(10), || request.send(&ctx.stripe))
        .await
        .map_err(Error::Stripe)?;
    let code = retrieved
        .last_payment_error
        .as_ref()
        .and_then(|e| e.code.as_ref().map(|c| c.as_str().to_owned()));
    let outcome = IntentOutcome::from_status(retrieved.status.as_str(), code.as_deref());
    let mut tx = ctx.pool.begin().await?;
    let applied = ledger::apply_intent(&mut tx, order, intent, &outcome).await?;
    if matches!(applied, Applied::Unchanged(_)) {
        // Look again only after another full bound.
        sqlx::query!("UPDATE orders SET updated_at = now() WHERE id = $1", order)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let change = match applied {
        Applied::Changed(change) | Applied::RefundNeeded(change) => change,
        _ => return Ok(false),
    };
    metrics::counter!("orders_reconciled_total").increment(1);
    tracing::info!(%order, %intent, ?outcome, "order reconciled from stripe");
    if let Err(e) = ledger::publish_changes(&ctx.redis, &[change]).await {
        tracing::warn!(error = ?e, %order, "reconciled order not published to redis");
    }
    Ok(true)
}
