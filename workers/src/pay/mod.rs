//! The payment consumer. Each message lists the orders of one reservation batch; their
//! PaymentIntents are created concurrently (bounded by `payment_concurrency` across the
//! process) and the message is acked once every order reached its recovery point. A
//! transient failure is waited out in place, then leaves the message to be redelivered
//! (handling each order is idempotent); a permanent one dead-letters it for an operator.

pub mod intent;

use std::sync::Arc;

use flashgate_common::amqp::messages::PaymentMessage;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::BasicCancelOptions;
use lapin::{Channel, Consumer};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::context::Context;
use crate::error::TRANSIENT_PATIENCE;
use crate::session::Action;
use crate::{Error, Result, session};

/// Runs the payment consumer until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let queue = ctx.amqp.topology().payments();
    let prefetch = ctx.config.worker.payment_prefetch;
    let permits = Arc::new(Semaphore::new(ctx.config.worker.payment_concurrency));
    let stop = shutdown.clone();
    session::consume(
        ctx.amqp.clone(),
        queue,
        prefetch,
        shutdown,
        move |channel, consumer| {
            serve(
                ctx.clone(),
                permits.clone(),
                channel,
                consumer,
                stop.clone(),
            )
        },
    )
    .await;
}

async fn serve(
    ctx: Arc<Context>,
    permits: Arc<Semaphore>,
    channel: Channel,
    mut consumer: Consumer,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut in_hand = JoinSet::new();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = in_hand.join_next(), if !in_hand.is_empty() => {
                done.map_err(|e| Error::Poison(format!("payment task panicked: {e}")))??;
                continue;
            }
            next = consumer.next() => next,
        };
        let Some(delivery) = next else { break };
        in_hand.spawn(handle(
            ctx.clone(),
            permits.clone(),
            delivery?,
            shutdown.clone(),
        ));
    }
    channel
        .basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await?;
    while let Some(done) = in_hand.join_next().await {
        done.map_err(|e| Error::Poison(format!("payment task panicked: {e}")))??;
    }
    channel.close(200, "shutdown".into()).await?;
    Ok(())
}

/// Handles one message and answers its delivery. An `Err` means the ack itself failed
/// (the channel is gone), which ends the session.
async fn handle(
    ctx: Arc<Context>,
    permits: Arc<Semaphore>,
    delivery: Delivery,
    shutdown: CancellationToken,
) -> Result<()> {
    let orders = match serde_json::from_slice::<PaymentMessage>(&delivery.data) {
        Ok(PaymentMessage::Requested { order_ids }) => order_ids,
        Err(e) => {
            tracing::error!(error = %e, "undecodable payment message: dead-lettering it");
            metrics::counter!("flashgate_worker_poison_messages_total", "queue" => "payments")
                .increment(1);
            return session::answer(&delivery, Action::DeadLetter).await;
        }
    };
    let action = match pay_patiently(&ctx, &permits, &orders, &shutdown).await {
        Ok(()) => Action::Ack,
        Err(e) if e.is_transient() => {
            tracing::warn!(error = ?e, "payment task failed transiently; it will be redelivered");
            Action::Requeue
        }
        Err(e) => {
            tracing::error!(error = ?e, "payment task failed permanently: dead-lettering it");
            metrics::counter!("flashgate_worker_poison_messages_total", "queue" => "payments")
                .increment(1);
            Action::DeadLetter
        }
    };
    session::answer(&delivery, action).await
}

/// Pays every order, waiting out transient failures (PostgreSQL or Stripe down) in place
/// with backoff for up to [`TRANSIENT_PATIENCE`], so an outage neither spins on
/// redeliveries nor spends the message's delivery limit. Orders already past their step
/// are skipped on each try.
async fn pay_patiently(
    ctx: &Arc<Context>,
    permits: &Arc<Semaphore>,
    orders: &[Uuid],
    shutdown: &CancellationToken,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(200);
    loop {
        match pay_all(ctx, permits, orders).await {
            Err(e)
                if e.is_transient()
                    && started.elapsed() < TRANSIENT_PATIENCE
                    && !shutdown.is_cancelled() =>
            {
                metrics::counter!("flashgate_worker_transient_retries_total", "queue" => "payments")
                    .increment(1);
                tracing::warn!(error = ?e, ?delay, "transient failure paying; retrying in place");
                shutdown
                    .run_until_cancelled(tokio::time::sleep(delay))
                    .await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
            outcome => return outcome,
        }
    }
}

/// Pays every order; the first failure (after all were tried) is returned. A payment is
/// made only once it holds a permit: a task names every order of a reservation batch
/// (thousands), and each payment is a large future, so making them all at once held
/// hundreds of megabytes for payments that could only wait their turn.
async fn pay_all(ctx: &Arc<Context>, permits: &Arc<Semaphore>, orders: &[Uuid]) -> Result<()> {
    let mut tasks = JoinSet::new();
    for order in orders.iter().copied() {
        // While a door is behind, at `worker.pressed_payments_per_second`.
        ctx.pressure.turn().await;
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Poison(e.to_string()))?;
        let (ctx, held) = (ctx.clone(), InFlight::start());
        // A finished payment leaves only its small result in the set.
        tasks.spawn(async move {
            let (_held, _permit) = (held, permit);
            intent::pay(&ctx, order)
                .await
                .map(|outcome| (order, outcome))
        });
    }
    let mut first_failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(|e| Error::Poison(format!("payment panicked: {e}")))? {
            Ok((order, outcome)) => tracing::debug!(%order, ?outcome, "order paid"),
            Err(e) => first_failure = first_failure.or(Some(e)),
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// One payment held in memory (its future made), counted in `flashgate_payments_in_flight`.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!("flashgate_payments_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("flashgate_payments_in_flight").decrement(1.0);
    }
}
