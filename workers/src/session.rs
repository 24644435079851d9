//! A consumer that survives the broker: each session takes a pooled connection, opens a
//! channel with a prefetch, consumes with manual acks and runs until the connection or
//! channel dies (then a new session starts after a backoff) or shutdown (then the
//! consumer is cancelled, the deliveries in hand are finished and acked, and it returns).
//! lapin never recovers a dead channel by itself, and an ack on a dead channel is lost,
//! so a session never outlives its channel.

use std::future::Future;
use std::time::Duration;

use flashgate_common::amqp::{Amqp, PooledConnection};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use tokio_util::sync::CancellationToken;

use crate::Result;

/// Longest pause between two session attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs sessions of `work` on `queue` until `shutdown`.
pub(crate) async fn consume<F, Fut>(
    amqp: Amqp,
    queue: String,
    prefetch: u16,
    shutdown: CancellationToken,
    mut work: F,
) where
    F: FnMut(Channel, Consumer) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_cancelled() {
        let outcome = match open(&amqp, &queue, prefetch).await {
            Ok((_connection, channel, consumer)) => {
                backoff = Duration::from_millis(200);
                work(channel, consumer).await
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => break,
            Err(e) => {
                metrics::counter!("flashgate_worker_session_restarts_total", "queue" => queue.clone())
                    .increment(1);
                tracing::warn!(error = ?e, %queue, ?backoff, "consumer session ended; reconnecting");
                if shutdown
                    .run_until_cancelled(tokio::time::sleep(backoff))
                    .await
                    .is_none()
                {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn open(
    amqp: &Amqp,
    queue: &str,
    prefetch: u16,
) -> Result<(PooledConnection, Channel, Consumer)> {
    let connection = amqp.connection().await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel, consumer))
}

/// What to do with one delivery once it has been handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Done with: remove it.
    Ack,
    /// Not done this time (transient failure): deliver it again.
    Requeue,
    /// Can never be done (undecodable, refers to nothing): to the dead-letter queue.
    DeadLetter,
}

/// Answers one delivery to the broker by `action` (ack, requeue, or dead-letter).
pub(crate) async fn answer(delivery: &Delivery, action: Action) -> Result<()> {
    match action {
        Action::Ack => delivery.acker.ack(BasicAckOptions::default()).await?,
        Action::Requeue => {
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            delivery.acker.nack(requeue).await?
        }
        Action::DeadLetter => {
            let dead = BasicRejectOptions { requeue: false };
            delivery.acker.reject(dead).await?
        }
    };
    Ok(())
}
