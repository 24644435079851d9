//! Paying one order, as a chain of recovery points (brandur's atomic phases):
//! 1. claim: the order is `reserved`, its hold alive; `pi_requested_at` is set (once),
//!    which says "a PaymentIntent may exist at Stripe from now on";
//! 2. create the PaymentIntent with a key derived from the order (and confirm it at once
//!    when the ticket carried a payment method), amount and currency from the database;
//!    a retry, by any process, sends the same key and gets the same PaymentIntent; past
//!    Stripe's 24 h key memory the existing PaymentIntent is found by its metadata first;
//! 3. store its id and client secret, moving the order to `payment_pending` — or, when
//!    the create answered how the payment ended (`succeeded` with a saved card), apply
//!    that at once, without waiting for a webhook that may never come — or, on a card
//!    error, release the units and mark the order `failed`.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use flashgate_common::domain::OrderStatus;
use flashgate_common::ledger::payment::PaymentClaim;
use flashgate_common::ledger::{self, Change, IntentOutcome, Release, unpublished};
use flashgate_common::live::tickets::StatusUpdate;
use flashgate_common::trail;
use stripe::StripeRequest;
use stripe_core::PaymentIntent;
use stripe_core::payment_intent::{CreatePaymentIntent, SearchPaymentIntent};
use uuid::Uuid;

use crate::context::{Context, idempotency_key};
use crate::resolve;
use crate::stripe_api::{Failure, with_retries};
use crate::{Error, Result};

/// Stripe keeps idempotency keys for 24 h; past this age the key may be forgotten.
fn key_may_be_forgotten(requested_at: DateTime<Utc>) -> bool {
    Utc::now() - requested_at > Duration::hours(23)
}

/// What happened to one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paid {
    /// A PaymentIntent is stored; the order awaits its outcome.
    Pending,
    /// A PaymentIntent is stored and Stripe already said how it ended; applied.
    Settled,
    /// The card was declined: units released, order failed.
    Declined,
    /// Nothing to do (already past this step, or the hold expired).
    Skipped,
}

/// Runs the chain for `order_id`.
#[tracing::instrument(name = "pay", skip_all, fields(order = %order_id, ticket))]
pub async fn pay(ctx: &Context, order_id: Uuid) -> Result<Paid> {
    let Some(claimed) = ledger::payment::claim_payment(
        &ctx.pool,
        order_id,
        ctx.config.worker.hold_extension_max_secs as f64,
    )
    .await?
    else {
        return Ok(Paid::Skipped);
    };
    tracing::Span::current().record("ticket", tracing::field::display(claimed.ticket_id));
    let existing = if key_may_be_forgotten(claimed.requested_at) {
        find_existing(ctx, order_id).await?
    } else {
        None
    };
    let created = match existing {
        Some(intent) => Ok(intent),
        None => create(ctx, order_id, &claimed).await,
    };
    match created {
        Ok(intent) => {
            let outcome = resolve::outcome(&intent);
            if outcome == IntentOutcome::Pending {
                store(ctx, order_id, &claimed, &intent).await?;
                return Ok(Paid::Pending);
            }
            // Stripe already said how it ended: bind and apply it in one commit, so a
            // failure leaves the order `reserved` and the retry finds the same intent.
            resolve::apply(
                ctx,
                "payment answered",
                order_id,
                intent.id.as_str(),
                &outcome,
            )
            .await?;
            Ok(Paid::Settled)
        }
        Err(Failure::Card {
            code,
            payment_intent,
        }) => decline(ctx, order_id, &code, payment_intent)
            .await
            .map(|_| Paid::Declined),
        Err(failure) => Err(Error::Stripe(failure)),
    }
}

async fn create(
    ctx: &Context,
    order_id: Uuid,
    claimed: &PaymentClaim,
) -> std::result::Result<PaymentIntent, Failure> {
    let currency =
        stripe_types::Currency::from_str(&claimed.currency).map_err(|_| Failure::Permanent {
            code: "currency".into(),
            message: format!("unknown currency {}", claimed.currency),
        })?;
    let metadata = HashMap::from([
        ("flashgate_order".to_owned(), order_id.to_string()),
        ("flashgate_ticket".to_owned(), claimed.ticket_id.to_string()),
        ("flashgate_sale".to_owned(), claimed.sale_id.to_string()),
        ("flashgate_customer".to_owned(), claimed.customer_id.clone()),
    ]);
    let mut request = CreatePaymentIntent::new(claimed.amount, currency)
        .metadata(metadata)
        .description(format!("flashgate sale {}", claimed.sale_id));
    if let Some(method) = &claimed.payment_method {
        request = request.payment_method(method.as_str()).confirm(true);
    }
    let budget = std::time::Duration::from_millis(ctx.config.worker.stripe_retry_budget_ms);
    with_retries(budget, || {
        request
            .customize()
            .request_strategy(stripe::RequestStrategy::Idempotent(idempotency_key(
                order_id, "create",
            )))
            .send(&ctx.stripe)
    })
    .await
}

/// The PaymentIntent an earlier attempt created, found by its metadata.
async fn find_existing(ctx: &Context, order_id: Uuid) -> Result<Option<PaymentIntent>> {
    let query = format!("metadata['flashgate_order']:'{order_id}'");
    let budget = std::time::Duration::from_millis(ctx.config.worker.stripe_retry_budget_ms);
    let request = SearchPaymentIntent::new(query);
    let found = with_retries(budget, || request.send(&ctx.stripe))
        .await
        .map_err(Error::Stripe)?;
    Ok(found.data.into_iter().next())
}

async fn store(
    ctx: &Context,
    order_id: Uuid,
    claimed: &PaymentClaim,
    intent: &PaymentIntent,
) -> Result<()> {
    let (status, hold_expires_at, owed) = ledger::payment::start_payment(
        &ctx.pool,
        order_id,
        intent.id.as_str(),
        intent.client_secret.as_deref(),
    )
    .await?;
    if status != Some(OrderStatus::PaymentPending) {
        return Ok(());
    }
    trail::payment_started(
        claimed.ticket_id,
        order_id,
        &claimed.sale_id,
        intent.id.as_str(),
    );
    let update = StatusUpdate {
        sale: claimed.sale_id.clone(),
        ticket: claimed.ticket_id,
        status: flashgate_common::domain::TicketStatus::PaymentPending,
        order_id: Some(order_id),
        payment_intent: Some(intent.id.to_string()),
        client_secret: intent
            .client_secret
            .clone()
            .filter(|_| claimed.payment_method.is_none()),
        hold_expires_at: Some(hold_expires_at),
    };
    if let Err(e) = unpublished::write_or_keep(&ctx.pool, &ctx.redis, &[update], owed).await {
        tracing::warn!(error = ?e, %order_id, "payment status not published to redis");
    }
    Ok(())
}

async fn decline(ctx: &Context, order_id: Uuid, code: &str, intent: Option<String>) -> Result<()> {
    let mut tx = ctx.pool.begin().await?;
    if let Some(intent) = &intent {
        ledger::attach_intent(&mut tx, order_id, intent).await?;
    }
    let change: Option<Change> = ledger::release(
        &mut tx,
        order_id,
        Release::Failed {
            cancel_intent: true,
        },
        Some(code),
    )
    .await?;
    // A redelivered payment task finds the order failed and publishes nothing.
    let owed = unpublished::owe(&mut tx, change.as_ref().map(|c| c.order.ticket_id)).await?;
    tx.commit().await?;
    metrics::counter!("flashgate_payments_declined_total").increment(1);
    if let Some(change) = change
        && let Err(e) =
            ledger::publish_changes(&ctx.pool, &ctx.redis, "payment declined", &[change], owed)
                .await
    {
        tracing::warn!(error = ?e, %order_id, "decline not published to redis");
    }
    Ok(())
}
