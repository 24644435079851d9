//! Operator tools for the dead-letter queue (`flashgate dlq list|replay|purge`). A dead
//! letter keeps the queue it died in and why (`x-first-death-queue`, `-reason`); replay
//! publishes it back there with a confirm before removing it from the dead-letter queue,
//! so a replay interrupted halfway loses nothing (handling is idempotent downstream).

use std::time::Duration;

use flashgate_common::amqp::{Amqp, Publisher, message_properties};
use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::AMQPValue;
use lapin::types::FieldTable;
use serde::Serialize;

use crate::Result;

/// One dead letter, as shown to an operator.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The queue it died in.
    pub queue: String,
    /// Why: `rejected`, `delivery_limit`, `expired`, `maxlen`.
    pub reason: String,
    /// Its message id.
    pub message_id: Option<String>,
    /// Its body (JSON when it parses, else text).
    pub body: serde_json::Value,
}

fn header(properties: &BasicProperties, name: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn describe(properties: &BasicProperties, routing_key: &str, data: &[u8]) -> DeadLetter {
    DeadLetter {
        queue: header(properties, "x-first-death-queue").unwrap_or_else(|| routing_key.to_owned()),
        reason: header(properties, "x-first-death-reason").unwrap_or_else(|| "unknown".into()),
        message_id: properties.message_id().as_ref().map(|m| m.to_string()),
        body: serde_json::from_slice(data)
            .unwrap_or_else(|_| String::from_utf8_lossy(data).into_owned().into()),
    }
}

/// The next dead letter, unacknowledged (it returns to the queue unless acked).
async fn next(
    channel: &lapin::Channel,
    amqp: &Amqp,
) -> Result<Option<lapin::message::BasicGetMessage>> {
    let queue = amqp.topology().dead_letters();
    Ok(channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await?)
}

/// How many dead letters are ready (not held by a channel).
async fn ready(channel: &lapin::Channel, amqp: &Amqp) -> Result<u32> {
    Ok(channel
        .queue_declare(
            amqp.topology().dead_letters().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?
        .message_count())
}

/// How long `list` waits for the letters it looked at to be back in the queue.
const RETURN_TIMEOUT: Duration = Duration::from_secs(5);

/// Shows up to `limit` dead letters without removing them. A quorum queue takes returned
/// messages back asynchronously, after the nack has been answered: `list` waits until they
/// are ready again, so that a `replay` or `purge` right after it finds every letter it showed.
pub async fn list(amqp: &Amqp, limit: usize) -> Result<Vec<DeadLetter>> {
    let connection = amqp.connection().await?;
    let channel = connection.create_channel().await?;
    let before = ready(&channel, amqp).await?;
    let mut letters = Vec::new();
    let mut last = None;
    while letters.len() < limit {
        let Some(message) = next(&channel, amqp).await? else {
            break;
        };
        let delivery = &message.delivery;
        letters.push(describe(
            &delivery.properties,
            delivery.routing_key.as_str(),
            &delivery.data,
        ));
        last = Some(delivery.delivery_tag);
    }
    if let Some(tag) = last {
        let requeue = BasicNackOptions {
            multiple: true,
            requeue: true,
        };
        channel.basic_nack(tag, requeue).await?;
        let deadline = tokio::time::Instant::now() + RETURN_TIMEOUT;
        // `before` counts only ready letters; anything added since only raises the count.
        while ready(&channel, amqp).await? < before {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!("listed dead letters are not back in the queue yet");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    channel.close(200, "listed".into()).await?;
    Ok(letters)
}

/// Publishes up to `limit` dead letters back to their queues; returns how many. Only the
/// letters present when it starts are replayed: one that dies again at once (still
/// undecodable) joins the tail of the dead-letter queue and is not taken a second time.
pub async fn replay(amqp: &Amqp, limit: usize) -> Result<usize> {
    let publisher = Publisher::new(amqp.clone());
    let connection = amqp.connection().await?;
    let channel = connection.create_channel().await?;
    let waiting = ready(&channel, amqp).await?;
    let limit = limit.min(usize::try_from(waiting).unwrap_or(usize::MAX));
    let mut replayed = 0;
    while replayed < limit {
        let Some(message) = next(&channel, amqp).await? else {
            break;
        };
        let delivery = &message.delivery;
        let letter = describe(
            &delivery.properties,
            delivery.routing_key.as_str(),
            &delivery.data,
        );
        let id = letter
            .message_id
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        publisher
            .publish(
                "",
                &letter.queue,
                &delivery.data,
                message_properties(&id, None),
            )
            .await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        replayed += 1;
    }
    channel.close(200, "replayed".into()).await?;
    Ok(replayed)
}

/// Drops every dead letter; returns how many.
pub async fn purge(amqp: &Amqp) -> Result<u32> {
    let connection = amqp.connection().await?;
    let channel = connection.create_channel().await?;
    let purged = channel
        .queue_purge(
            amqp.topology().dead_letters().into(),
            QueuePurgeOptions::default(),
        )
        .await?;
    channel.close(200, "purged".into()).await?;
    Ok(purged)
}

/// Dead-letters `message` as if the tickets queue had rejected it (so that `replay`
/// returns it there): used for one ticket of a message whose others were decided.
pub(crate) async fn bury(
    ctx: &crate::context::Context,
    message: &impl Serialize,
    id: uuid::Uuid,
) -> Result<()> {
    let topology = ctx.amqp.topology();
    let tickets = topology.tickets();
    let mut properties = message_properties(&id.to_string(), None);
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-first-death-queue".into(),
        AMQPValue::LongString(tickets.as_str().into()),
    );
    headers.insert(
        "x-first-death-reason".into(),
        AMQPValue::LongString("rejected".into()),
    );
    properties = properties.with_headers(headers);
    let payload = serde_json::to_vec(message).map_err(flashgate_common::Error::from)?;
    ctx.publisher
        .publish(
            &topology.dead_letter_exchange(),
            &tickets,
            &payload,
            properties,
        )
        .await?;
    Ok(())
}
