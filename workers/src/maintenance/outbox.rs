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
        r#"SELECT id, kind, payload FROM order_events WHERE published_at IS NULL
           ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"#,
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
    Ok(published.len())
}
