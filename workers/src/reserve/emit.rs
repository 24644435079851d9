//! After a batch commits: publish every ticket's status and each sale's terms to Redis
//! (one pipeline, one script call per sale), then one payment task for the batch's
//! orders that still need a PaymentIntent. A redelivered ticket re-emits both, which is
//! what makes a crash between commit and ack harmless.

use flashgate_common::amqp::messages::PaymentMessage;
use flashgate_common::live::tickets::StatusUpdate;
use uuid::Uuid;

use super::decide::Batch;
use crate::Result;
use crate::context::Context;

/// Publishes the outcome of a committed batch. Only the payment task must succeed: Redis
/// is a cache, rewritten by every later step and healed from PostgreSQL by the poll path.
pub(super) async fn emit(ctx: &Context, batch: &Batch) -> Result<()> {
    if let Err(e) = publish_live(ctx, batch).await {
        metrics::counter!("flashgate_worker_redis_write_failures_total").increment(1);
        tracing::warn!(error = ?e, "statuses not published to redis");
    }
    let order_ids: Vec<Uuid> = batch
        .sales
        .iter()
        .flat_map(|sale| &sale.tickets)
        .filter(|t| t.needs_payment)
        .filter_map(|t| t.order_id)
        .collect();
    if order_ids.is_empty() {
        return Ok(());
    }
    let message = PaymentMessage::Requested { order_ids };
    let queue = ctx.amqp.topology().payments();
    ctx.publisher
        .publish_json(&queue, &Uuid::now_v7().to_string(), &message, None)
        .await?;
    Ok(())
}

async fn publish_live(ctx: &Context, batch: &Batch) -> flashgate_common::Result<()> {
    let updates: Vec<StatusUpdate> = batch
        .sales
        .iter()
        .flat_map(|sale| {
            sale.tickets.iter().map(|t| StatusUpdate {
                sale: sale.sale.clone(),
                ticket: t.ticket,
                status: t.status,
                order_id: t.order_id,
                payment_intent: t.payment_intent.clone(),
                client_secret: t.client_secret.clone(),
                hold_expires_at: None,
            })
        })
        .collect();
    let redis = &ctx.redis;
    let mut pipe = redis::pipe();
    redis.load_status_script(&mut pipe);
    redis.queue_statuses(&mut pipe, &updates);
    for sale in &batch.sales {
        redis.queue_terms(&mut pipe, &sale.sale, &sale.terms);
    }
    pipe.query_async::<()>(&mut redis.conn()).await?;
    Ok(())
}
