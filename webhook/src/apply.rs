//! Applying a verified event: the event id is recorded and its effect applied in one
//! transaction, so a duplicate (even five at once) is a no-op, and a crash before the
//! commit leaves nothing behind for Stripe's retry to trip over.

use chrono::DateTime;
use flashgate_common::ledger::unpublished::Owed;
use flashgate_common::ledger::{self, Applied, IntentOutcome};
use flashgate_common::live::Redis;
use sqlx::PgPool;
use uuid::Uuid;

use crate::event::{Event, Intent};
use crate::{Error, Result};

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Received {
    /// Applied now (the order may or may not have moved).
    Applied,
    /// Seen before: nothing done.
    Duplicate,
    /// Not an event flashgate acts on (another type, or another system's PaymentIntent).
    Ignored,
}

/// Applies `event`.
#[tracing::instrument(name = "stripe_event", skip_all, fields(event = %event.id, kind = %event.kind, order))]
pub(crate) async fn apply(pool: &PgPool, redis: &Redis, event: &Event) -> Result<Received> {
    let Some(parsed) = event.intent_outcome() else {
        return Ok(Received::Ignored);
    };
    let (intent, outcome) = parsed.map_err(|e| Error::Malformed(e.to_string()))?;
    let Some(order_id) = order_of(pool, &intent).await? else {
        return Ok(Received::Ignored);
    };
    let mut tx = pool.begin().await?;
    let created = DateTime::from_timestamp(event.created, 0).unwrap_or_default();
    let fresh = sqlx::query_scalar!(
        r#"INSERT INTO stripe_events (id, type, created, payment_intent_id, outcome)
           VALUES ($1, $2, $3, $4, 'received') ON CONFLICT (id) DO NOTHING RETURNING id"#,
        event.id,
        event.kind,
        created,
        intent.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if fresh.is_none() {
        tx.commit().await?;
        republish(pool, redis, order_id).await?;
        return Ok(Received::Duplicate);
    }
    let applied = ledger::apply_intent(&mut tx, order_id, &intent.id, &outcome).await?;
    let label = label(&applied, &outcome)?;
    tracing::Span::current().record("order", tracing::field::display(order_id));
    sqlx::query!(
        "UPDATE stripe_events SET outcome = $2, order_id = $3 WHERE id = $1",
        event.id,
        label,
        order_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("flashgate_webhook_events_applied_total", "type" => event.kind.clone(), "outcome" => label).increment(1);
    publish(pool, redis, applied).await
}

/// The order an event's PaymentIntent belongs to: our metadata first (the event may come
/// before the worker stored the PaymentIntent), else the stored PaymentIntent id. `None`
/// for PaymentIntents flashgate did not create.
async fn order_of(pool: &PgPool, intent: &Intent) -> Result<Option<Uuid>> {
    if let Some(raw) = intent.metadata.get("flashgate_order") {
        return Uuid::parse_str(raw)
            .map(Some)
            .map_err(|_| Error::Malformed("flashgate_order is not a uuid".into()));
    }
    Ok(sqlx::query_scalar!(
        "SELECT id FROM orders WHERE payment_intent_id = $1",
        intent.id
    )
    .fetch_optional(pool)
    .await?)
}

fn label(applied: &Applied, outcome: &IntentOutcome) -> Result<&'static str> {
    Ok(match applied {
        Applied::UnknownOrder => return Err(Error::UnknownOrder),
        Applied::Changed(_) if *outcome == IntentOutcome::Succeeded => "paid",
        Applied::Changed(_) => "released",
        Applied::RefundNeeded(_) => "refund_pending",
        Applied::Unchanged(_) => "no_change",
        Applied::ForeignIntent(order) => {
            tracing::error!(order = %order.id, "a second PaymentIntent reported for one order; ignored");
            "foreign_intent"
        }
    })
}

async fn publish(pool: &PgPool, redis: &Redis, applied: Applied) -> Result<Received> {
    const STEP: &str = "stripe event";
    match applied {
        // Nothing owed: a crash before the answer makes Stripe deliver the event again,
        // and a duplicate re-publishes the order's status.
        Applied::Changed(change) => {
            ledger::publish_changes(pool, redis, STEP, &[change], Owed::default()).await?;
        }
        // Nothing moved, but the ticket's trail still shows the event came.
        other => {
            if let Some(order) = other.order() {
                flashgate_common::trail::order(STEP, order);
            }
        }
    }
    Ok(Received::Applied)
}

/// Re-publishes an order's current status: a duplicate delivery may be Stripe retrying
/// after a receiver died between its commit and its Redis write. If Redis does not take
/// it either, the ticket is kept for the workers' sweep: the `200` that follows ends
/// Stripe's retries, so nothing else would ever publish it.
async fn republish(pool: &PgPool, redis: &Redis, order_id: Uuid) -> Result<()> {
    let mut tx = pool.begin().await?;
    // Locked so that a first delivery still applying the event commits first.
    let order = ledger::lock_order(&mut tx, order_id).await?;
    tx.commit().await?;
    if let Some(update) = order.and_then(|o| o.status_update()) {
        ledger::unpublished::write_or_keep(pool, redis, &[update], Owed::default()).await?;
    }
    Ok(())
}
