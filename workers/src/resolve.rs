//! What Stripe says of a PaymentIntent, applied to its order through the ledger and then
//! shown to the shopper. The payment chain (a create that answered), the hold sweep (a
//! cancel that answered or was refused) and reconciliation (a retrieve) all end here, so
//! every path that learns a PaymentIntent's state acts on it the same way.

use std::time::Duration;

use flashgate_common::ledger::{self, Applied, IntentOutcome, unpublished};
use stripe_core::PaymentIntent;
use stripe_core::payment_intent::RetrievePaymentIntent;
use uuid::Uuid;

use crate::context::Context;
use crate::stripe_api::with_retries;
use crate::{Error, Result};

/// Retry budget of one retrieve.
const RETRIEVE_BUDGET: Duration = Duration::from_secs(10);

/// What a PaymentIntent's state means for its order.
pub(crate) fn outcome(intent: &PaymentIntent) -> IntentOutcome {
    let code = intent
        .last_payment_error
        .as_ref()
        .and_then(|e| e.code.as_ref().map(|c| c.as_str().to_owned()));
    IntentOutcome::from_status(intent.status.as_str(), code.as_deref())
}

/// Reads a PaymentIntent from Stripe now.
pub(crate) async fn retrieve(ctx: &Context, intent: &str) -> Result<PaymentIntent> {
    let request = RetrievePaymentIntent::new(intent);
    with_retries(RETRIEVE_BUDGET, || request.send(&ctx.stripe))
        .await
        .map_err(Error::Stripe)
}

/// Applies `outcome` of `intent` to `order` in one transaction, then publishes the change
/// to Redis. The transaction keeps the ticket for the sweep until Redis took it: nothing
/// else would publish it again (a redelivered payment task finds its order moved on, and
/// Stripe's event for a change already applied changes nothing, so publishes nothing), so
/// a worker dying in between, or a failed write, would leave the shopper reading the
/// status before it.
pub(crate) async fn apply(
    ctx: &Context,
    step: &'static str,
    order: Uuid,
    intent: &str,
    outcome: &IntentOutcome,
) -> Result<Applied> {
    let mut tx = ctx.pool.begin().await?;
    let applied = ledger::apply_intent(&mut tx, order, intent, outcome).await?;
    let changed = match &applied {
        Applied::Changed(change) | Applied::RefundNeeded(change) => Some(change),
        _ => None,
    };
    let owed = unpublished::owe(&mut tx, changed.map(|c| c.order.ticket_id)).await?;
    tx.commit().await?;
    if let Some(change) = changed
        && let Err(e) = ledger::publish_changes(
            &ctx.pool,
            &ctx.redis,
            step,
            std::slice::from_ref(change),
            owed,
        )
        .await
    {
        tracing::warn!(error = ?e, %order, "order change not published to redis");
    }
    Ok(applied)
}
