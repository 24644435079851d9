//! The outbox relay: order events committed with their state change are published to the
//! `orders` exchange with publisher confirms, then marked published. A crash between the
//! two publishes an event twice (consumers dedupe on the order id and type), never zero
//! times.

use flashgate_common::amqp::message_properties;

use crate::Result;
use crate::context::Context;

/// Publishes up to `limit` pending events; returns how many.
pub async fn relay(ctx: &Context, limit: i64) -> Result<usize> {
    let mut tx = ctx.pool.begin().await?;
    let events = sqlx::query!(
        r#"SELECT e.id, e.kind, e.payload, e.created_at,
                  (SELECT t.issued_at FROM orders o JOIN tickets t ON t.id = o.ticket_id
                   WHERE o.id = e.order_id) AS "issued_at?"
           FROM order_events e WHERE e.published_at IS NULL
           ORDER BY e.id LIMIT $1 FOR UPDATE OF e SKIP LOCKED"#,
        limit
    )
    .fetch_all(&mut *tx)
    .await?;
    if events.is_empty() {
        return Ok(0);
    }
    let exchange = ctx.amqp.topology().orders_exchange();
    let publishes = events.iter().map(|event| {
        let payload = serde_json::to_vec(&event.payload).unwrap_or_default();
        let properties = message_properties(&format!("order-event-{}", event.id), None);
        let exchange = exchange.as_str();
        async move {
            let result = ctx
                .publisher
                .publish(exchange, &event.kind, &payload, properties)
                .await;
            (event.id, result)
        }
    });
    let mut published = Vec::with_capacity(events.len());
    for (id, result) in futures_util::future::join_all(publishes).await {
        match result {
            Ok(()) => published.push(id),
            Err(e) => {
                tracing::warn!(error = ?e, event = id, "order event not confirmed; retried next sweep")
            }
        }
    }
    sqlx::query!(
        "UPDATE order_events SET published_at = now() WHERE id = ANY($1)",
        &published
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("flashgate_order_events_published_total").increment(published.len() as u64);
    // The events that are a shopper's final answer, observed once, when relayed: from the
    // ticket's issue to the commit that decided it.
    let published_ids: std::collections::HashSet<i64> = published.iter().copied().collect();
    for outcome in ["paid", "failed", "expired"] {
        let answers = events
            .iter()
            .filter(|e| published_ids.contains(&e.id))
            .filter(|e| {
                e.kind
                    .strip_prefix("order.")
                    .and_then(|k| k.strip_suffix(".v1"))
                    == Some(outcome)
            })
            .filter_map(|e| Some((e.issued_at?, e.created_at)));
        flashgate_common::telemetry::record_final_answers(outcome, answers);
    }
    Ok(published.len())
}
