//! Orders reserved but never asked to pay. A reservation (fresh or promoted from the
//! wait-list) commits first and publishes its payment task after; a broker blip or a
//! crash between the two would leave the order `reserved` and its shopper waiting until
//! the hold ran out. Every sweep, orders still `reserved` with no PaymentIntent asked for
//! a minute after their last change are asked again (paying is idempotent per order, so a
//! task that was only slow costs a duplicate that changes nothing).

use std::time::Duration;

use flashgate_common::amqp::messages::PaymentMessage;
use flashgate_common::ledger;
use uuid::Uuid;

use crate::Result;
use crate::context::Context;

/// How long a reserved order may wait for its payment task before it is asked again.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// Publishes one payment task for up to `limit` orders nobody asked to pay; returns how many.
pub async fn ask_again(ctx: &Context, limit: i64) -> Result<usize> {
    let mut tx = ctx.pool.begin().await?;
    let orders = ledger::payment::unasked(
        &mut tx,
        ASK_AGAIN_AFTER.as_secs_f64(),
        ctx.config.worker.hold_extension_max_secs as f64,
        limit,
    )
    .await?;
    if orders.is_empty() {
        return Ok(0);
    }
    let asked = orders.len();
    let message = PaymentMessage::Requested { order_ids: orders };
    let queue = ctx.amqp.topology().payments();
    ctx.publisher
        .publish_json(&queue, &Uuid::now_v7().to_string(), &message, None)
        .await?;
    // Committed only once the broker confirmed the task: otherwise asked again next sweep.
    tx.commit().await?;
    metrics::counter!("flashgate_payments_asked_again_total").increment(asked as u64);
    tracing::warn!(
        orders = asked,
        "reserved orders never asked to pay: asked again"
    );
    Ok(asked)
}
