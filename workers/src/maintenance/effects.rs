//! Stripe side effects the ledger asked for: canceling the PaymentIntents of expired holds
//! (before their units go back) and of failed orders, and refunding payments that came
//! after the units were gone. Each order is leased for
//! a minute while its call runs, so one worker does it and a crashed one is taken over;
//! each call carries a key derived from the order, so a repeated call changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use flashgate_common::domain::TicketStatus;
use flashgate_common::ledger::payment::Effect;
use flashgate_common::ledger::unpublished::{self, Owed};
use flashgate_common::ledger::{self, IntentOutcome, Release};
use flashgate_common::live::tickets::StatusUpdate;
use stripe::StripeRequest;
use stripe_core::PaymentIntentStatus;
use stripe_core::payment_intent::{CancelPaymentIntent, SearchPaymentIntent};
use stripe_core::refund::CreateRefund;
use uuid::Uuid;

use crate::context::{Context, idempotency_key};
use crate::resolve;
use crate::stripe_api::{Failure, with_retries};
use crate::{Error, Result};

/// Stripe's code for an object it does not have.
const MISSING: &str = "resource_missing";

/// Margin past a create's retry budget and timeout for search to see what it made.
const SEARCH_LAG: Duration = Duration::from_secs(60);
/// Retry budget of one side-effect call inside a sweep.
const EFFECT_BUDGET: Duration = Duration::from_secs(10);

/// Side-effect calls in flight at once per sweep. Expired holds keep their units until
/// Stripe answers their cancel, so a wave of holds expiring together (a sale's browser
/// payers) would come back one Stripe round trip at a time if these ran in sequence.
const EFFECTS_AT_ONCE: usize = 16;

/// Runs up to `limit` due side effects; returns how many completed.
pub async fn run_due(ctx: &Context, limit: i64) -> Result<usize> {
    use futures_util::StreamExt;
    let due = ledger::payment::lease_effects(&ctx.pool, limit).await?;
    let outcomes = futures_util::stream::iter(due)
        .map(|order| async move {
            let outcome = if order.refund {
                refund(ctx, &order).await
            } else {
                cancel(ctx, &order).await
            };
            if let Err(e) = &outcome {
                tracing::warn!(error = ?e, order = %order.id, "side effect failed; retried after the lease");
            }
            outcome
        })
        .buffer_unordered(EFFECTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    Ok(outcomes
        .into_iter()
        .filter(|o| matches!(o, Ok(true)))
        .count())
}

async fn refund(ctx: &Context, order: &Effect) -> Result<bool> {
    let Some(intent) = &order.payment_intent_id else {
        return Ok(false);
    };
    let request = CreateRefund::new()
        .payment_intent(intent.as_str())
        .metadata(std::collections::HashMap::from([(
            "flashgate_order".to_owned(),
            order.id.to_string(),
        )]));
    let refunded = with_retries(EFFECT_BUDGET, || {
        request
            .customize()
            .request_strategy(stripe::RequestStrategy::Idempotent(idempotency_key(
                order.id, "refund",
            )))
            .send(&ctx.stripe)
    })
    .await;
    match refunded {
        Ok(_) => {}
        Err(Failure::Permanent { code, .. }) if code == "charge_already_refunded" => {}
        Err(failure) => return Err(Error::Stripe(failure)),
    }
    let mut tx = ctx.pool.begin().await?;
    let marked = ledger::mark_refunded(&mut tx, order.id).await?;
    let owed = unpublished::owe(&mut tx, marked.as_ref().map(|o| o.ticket_id)).await?;
    tx.commit().await?;
    metrics::counter!("flashgate_payments_refunded_total").increment(1);
    let updates: Vec<_> = marked.and_then(|o| o.status_update()).into_iter().collect();
    if let Err(e) = unpublished::write_or_keep(&ctx.pool, &ctx.redis, &updates, owed).await {
        tracing::warn!(error = ?e, order = %order.id, "refund not published to redis");
    }
    Ok(true)
}

/// Cancels the order's PaymentIntent (if one exists) and applies what Stripe answered:
/// canceled releases a held order as expired, succeeded sells it (or takes a unit back,
/// or asks for a refund). An order no PaymentIntent exists for is released as it stands.
async fn cancel(ctx: &Context, order: &Effect) -> Result<bool> {
    let intent = match (&order.payment_intent_id, order.pi_requested_at) {
        (Some(intent), _) => Some(intent.clone()),
        // A create was sent but its answer never stored: find what it made.
        (None, Some(requested_at)) => match search(ctx, order.id).await? {
            Some(found) => Some(found),
            // Not found yet: a create may still be on its way (or search may lag).
            None if create_may_be_running(ctx, requested_at) => return Ok(false),
            None => None,
        },
        (None, None) => None,
    };
    if let Some(intent) = &intent
        && extend_if_paying(ctx, order.id, intent).await?
    {
        return Ok(false);
    }
    let outcome = match &intent {
        Some(intent) => cancel_at_stripe(ctx, order.id, intent).await?,
        None => None,
    };
    let resolved = match (intent, outcome) {
        (Some(intent), Some(outcome)) => {
            resolve::apply(
                ctx,
                "hold expired after stripe",
                order.id,
                &intent,
                &outcome,
            )
            .await?;
            matches!(outcome, IntentOutcome::Succeeded | IntentOutcome::Canceled)
        }
        // Never created, or Stripe has no such PaymentIntent: nothing can charge it.
        _ => {
            release_without_intent(ctx, order.id).await?;
            true
        }
    };
    if resolved {
        ledger::payment::cancel_done(&ctx.pool, order.id).await?;
    }
    Ok(resolved)
}

/// A hold that ran out while its shopper is still paying (a 3-D Secure step, or the
/// payment processing) is extended within the operator's bound rather than canceled
/// under them. Returns whether it was.
async fn extend_if_paying(ctx: &Context, order: Uuid, intent: &str) -> Result<bool> {
    let worker = &ctx.config.worker;
    if worker.hold_extension_max_secs == 0 {
        return Ok(false);
    }
    let paying = match resolve::retrieve(ctx, intent).await {
        Ok(found) => matches!(
            found.status,
            PaymentIntentStatus::RequiresAction | PaymentIntentStatus::Processing
        ),
        // Stripe has no such PaymentIntent: the cancel finds out and releases.
        Err(Error::Stripe(Failure::Permanent { code, .. })) if code == MISSING => false,
        Err(e) => return Err(e),
    };
    if !paying {
        return Ok(false);
    }
    let Some(extended) = ledger::payment::extend_hold(
        &ctx.pool,
        order,
        worker.hold_extension_secs as f64,
        worker.hold_extension_max_secs as f64,
    )
    .await?
    else {
        return Ok(false);
    };
    metrics::counter!("flashgate_holds_extended_total").increment(1);
    tracing::info!(%order, until = %extended.hold_expires_at, "hold extended: payment in progress");
    let update = StatusUpdate {
        sale: extended.sale_id,
        ticket: extended.ticket_id,
        status: TicketStatus::PaymentPending,
        order_id: Some(order),
        payment_intent: extended.payment_intent_id,
        client_secret: extended.client_secret,
        hold_expires_at: Some(extended.hold_expires_at),
    };
    // Nothing owed: the order's next change publishes over a lost extension.
    if let Err(e) =
        unpublished::write_or_keep(&ctx.pool, &ctx.redis, &[update], Owed::default()).await
    {
        tracing::warn!(error = ?e, %order, "hold extension not published to redis");
    }
    Ok(true)
}

/// Asks Stripe to cancel `intent`; returns the PaymentIntent's state afterwards (a cancel
/// refused because it already succeeded or was canceled reads it back), or `None` when
/// Stripe has no such PaymentIntent.
async fn cancel_at_stripe(
    ctx: &Context,
    order: Uuid,
    intent: &str,
) -> Result<Option<IntentOutcome>> {
    let cancelled = with_retries(EFFECT_BUDGET, || {
        CancelPaymentIntent::new(intent)
            .customize()
            .request_strategy(stripe::RequestStrategy::Idempotent(idempotency_key(
                order, "cancel",
            )))
            .send(&ctx.stripe)
    })
    .await;
    match cancelled {
        Ok(canceled) => Ok(Some(resolve::outcome(&canceled))),
        Err(Failure::Permanent { code, .. }) if code == MISSING => Ok(None),
        Err(Failure::Permanent { .. }) => Ok(Some(resolve::outcome(
            &resolve::retrieve(ctx, intent).await?,
        ))),
        Err(failure) => Err(Error::Stripe(failure)),
    }
}

/// An expired hold whose PaymentIntent was never created gives its units back.
async fn release_without_intent(ctx: &Context, order: Uuid) -> Result<()> {
    let mut tx = ctx.pool.begin().await?;
    let change = ledger::release(&mut tx, order, Release::Expired, None).await?;
    let owed = unpublished::owe(&mut tx, change.as_ref().map(|c| c.order.ticket_id)).await?;
    tx.commit().await?;
    if let Some(change) = change
        && let Err(e) =
            ledger::publish_changes(&ctx.pool, &ctx.redis, "hold expired", &[change], owed).await
    {
        tracing::warn!(error = ?e, %order, "expiry not published to redis");
    }
    Ok(())
}

/// Whether a create sent at `requested_at` may still be retried or answered.
fn create_may_be_running(ctx: &Context, requested_at: DateTime<Utc>) -> bool {
    let worker = &ctx.config.worker;
    let bound = Duration::from_millis(worker.stripe_retry_budget_ms + ctx.config.stripe.timeout_ms)
        + SEARCH_LAG;
    Utc::now() - requested_at < chrono::Duration::from_std(bound).unwrap_or_default()
}

async fn search(ctx: &Context, order: Uuid) -> Result<Option<String>> {
    let query = format!("metadata['flashgate_order']:'{order}'");
    let request = SearchPaymentIntent::new(query);
    let found = with_retries(EFFECT_BUDGET, || request.send(&ctx.stripe))
        .await
        .map_err(Error::Stripe)?;
    Ok(found.data.into_iter().next().map(|pi| pi.id.to_string()))
}
