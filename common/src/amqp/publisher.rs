//! Publishing with publisher confirms. Many publishes are in flight at once on a few
//! confirm-mode channels (pipelined, not one round trip each); a publish counts only once
//! the broker confirmed it. A dead connection or channel is rebuilt on the next publish.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::RwLock;

use super::Amqp;
use crate::{Error, Result};

struct Link {
    connection: super::PooledConnection,
    channels: Vec<Channel>,
}

impl Link {
    fn healthy(&self) -> bool {
        self.connection.status().connected() && self.channels.iter().all(|c| c.status().connected())
    }
}

/// A shared, cheaply cloned confirmed publisher.
#[derive(Clone)]
pub struct Publisher {
    amqp: Amqp,
    link: Arc<RwLock<Option<Arc<Link>>>>,
    next: Arc<AtomicUsize>,
}

/// Persistent JSON message properties, with the request id carried in the headers.
pub fn message_properties(message_id: &str, request_id: Option<&str>) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(id) = request_id {
        headers.insert(
            "x-request-id".into(),
            AMQPValue::LongString(LongString::from(id)),
        );
    }
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message_id.into())
        .with_headers(headers)
}

/// Header saying how many tickets a message carries, so a consumer can size its batches
/// in tickets without decoding them.
const TICKETS_HEADER: &str = "x-tickets";

/// `properties` marked as carrying `tickets` tickets.
pub fn with_ticket_count(properties: BasicProperties, tickets: usize) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        TICKETS_HEADER.into(),
        AMQPValue::LongUInt(u32::try_from(tickets).unwrap_or(u32::MAX)),
    );
    properties.with_headers(headers)
}

/// How many tickets a message carries (1 when it does not say).
pub fn ticket_count(properties: &BasicProperties) -> usize {
    match properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(TICKETS_HEADER))
    {
        Some(AMQPValue::LongUInt(n)) => (*n as usize).max(1),
        _ => 1,
    }
}

/// The request id a message carries, if any.
pub fn request_id(properties: &BasicProperties) -> Option<String> {
    match properties.headers().as_ref()?.inner().get("x-request-id")? {
        AMQPValue::LongString(id) => Some(id.to_string()),
        _ => None,
    }
}

impl Publisher {
    /// A publisher over `amqp`'s pool; connects on first publish.
    pub fn new(amqp: Amqp) -> Self {
        Self {
            amqp,
            link: Arc::new(RwLock::new(None)),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether the broker told us to stop publishing (memory or disk alarm).
    pub fn is_blocked(&self) -> bool {
        self.link
            .try_read()
            .ok()
            .and_then(|guard| guard.as_ref().map(|l| l.connection.status().blocked()))
            .unwrap_or(false)
    }

    /// Publishes `payload` and waits for the broker's confirm. Unroutable messages
    /// (`mandatory`), nacks and timeouts are errors: the caller must not report success.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<()> {
        // The broker's answers are bounded the same way whether they are a confirm or the
        // channels a first publish opens: a broker that stops answering mid-way (a
        // partition) gets this publish a 503, and holds neither it nor those queued
        // behind the channels' lock for longer.
        let link = tokio::time::timeout(self.amqp.config().confirm_timeout(), self.link())
            .await
            .map_err(|_| Error::NotConfirmed("the broker did not open a channel in time"))??;
        let channel =
            &link.channels[self.next.fetch_add(1, Ordering::Relaxed) % link.channels.len()];
        let started = Instant::now();
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = async {
            channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    payload,
                    properties,
                )
                .await?
                .await
        };
        let outcome = tokio::time::timeout(self.amqp.config().confirm_timeout(), confirm).await;
        metrics::histogram!("flashgate_amqp_publish_confirm_seconds", "routing_key" => routing_key.to_owned())
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Err(_) => Err(Error::NotConfirmed("confirm timed out")),
            Ok(Err(e)) => {
                self.discard(&link).await;
                Err(e.into())
            }
            Ok(Ok(Confirmation::Ack(None))) => Ok(()),
            Ok(Ok(Confirmation::Ack(Some(_)))) => Err(Error::NotConfirmed("unroutable")),
            Ok(Ok(Confirmation::Nack(_))) => Err(Error::NotConfirmed("nacked by the broker")),
            Ok(Ok(Confirmation::NotRequested)) => Err(Error::NotConfirmed("confirms are off")),
        }
    }

    /// Serializes `message` as JSON and publishes it to a queue through the default exchange.
    pub async fn publish_json<M: serde::Serialize>(
        &self,
        queue: &str,
        message_id: &str,
        message: &M,
        request_id: Option<&str>,
    ) -> Result<()> {
        let payload = serde_json::to_vec(message)?;
        self.publish(
            "",
            queue,
            &payload,
            message_properties(message_id, request_id),
        )
        .await
    }

    async fn link(&self) -> Result<Arc<Link>> {
        if let Some(link) = self.link.read().await.as_ref().filter(|l| l.healthy()) {
            return Ok(link.clone());
        }
        let mut slot = self.link.write().await;
        if let Some(link) = slot.as_ref().filter(|l| l.healthy()) {
            return Ok(link.clone());
        }
        let connection = self.amqp.connection().await?;
        let opening = DetachOnDrop(Some(connection));
        let mut channels = Vec::with_capacity(self.amqp.config().publish_channels);
        for _ in 0..self.amqp.config().publish_channels {
            let channel = opening.connection().create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            channels.push(channel);
        }
        let connection = opening.keep();
        let link = Arc::new(Link {
            connection,
            channels,
        });
        *slot = Some(link.clone());
        Ok(link)
    }

    async fn discard(&self, failed: &Arc<Link>) {
        let mut slot = self.link.write().await;
        if slot
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, failed))
        {
            *slot = None;
        }
    }
}

/// A connection whose channels are being opened. If that is abandoned (an error, or the
/// caller's deadline with the broker silent), the connection leaves the pool instead of
/// going back to it: it still looks connected, and the next publish would wait on it again.
struct DetachOnDrop(Option<super::PooledConnection>);

impl DetachOnDrop {
    fn connection(&self) -> &super::PooledConnection {
        self.0.as_ref().expect("held until kept")
    }

    fn keep(mut self) -> super::PooledConnection {
        self.0.take().expect("held until kept")
    }
}

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        if let Some(connection) = self.0.take() {
            drop(deadpool::managed::Object::take(connection));
        }
    }
}
