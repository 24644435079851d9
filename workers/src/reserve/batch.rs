//! Collecting a batch: deliveries carrying up to `max` tickets in all (the door packs up to
//! `publish_batch_max` in one message and says how many) in up to `messages` deliveries,
//! waiting at most `wait` after the first.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::Consumer;
use lapin::message::Delivery;
use tokio_util::sync::CancellationToken;

use flashgate_common::amqp::ticket_count;

use crate::Result;

/// The next batch, or `None` on shutdown before any delivery arrived.
pub(super) async fn collect(
    consumer: &mut Consumer,
    max: usize,
    messages: usize,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<Delivery>>> {
    let first = tokio::select! {
        biased;
        () = shutdown.cancelled() => return Ok(None),
        next = consumer.next() => next,
    };
    let Some(first) = first else {
        return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
            lapin::ChannelState::Closed,
            "consumer stream ended",
        ))
        .into());
    };
    let first = first?;
    let mut tickets = ticket_count(&first.properties);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + wait;
    while tickets < max && batch.len() < messages {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(delivery)) => {
                let delivery = delivery?;
                tickets += ticket_count(&delivery.properties);
                batch.push(delivery);
            }
            // Ended mid-batch: handle what we have; the next collect reports the end.
            Ok(None) | Err(_) => break,
        }
    }
    Ok(Some(batch))
}
