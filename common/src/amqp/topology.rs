//! Every exchange and queue, declared in one function. Work queues are quorum queues
//! (replicated once RabbitMQ is a cluster) with a delivery limit and at-least-once
//! dead-lettering, so a poison message leaves the queue without being lost.

use lapin::Channel;
use lapin::ExchangeKind;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};

use crate::Result;
use crate::config::AmqpConfig;

/// Names of exchanges and queues under a deployment prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// Names under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// Issued tickets, consumed by the reservation workers.
    pub fn tickets(&self) -> String {
        format!("{}checkout.tickets", self.prefix)
    }

    /// Payment tasks, consumed by the payment workers.
    pub fn payments(&self) -> String {
        format!("{}checkout.payments", self.prefix)
    }

    /// Where the work queues dead-letter.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}checkout.dlx", self.prefix)
    }

    /// Dead letters, for `flashgate dlq`.
    pub fn dead_letters(&self) -> String {
        format!("{}checkout.dead", self.prefix)
    }

    /// Order events for downstream consumers (fulfilment, email); routing key = kind.
    pub fn orders_exchange(&self) -> String {
        format!("{}orders", self.prefix)
    }

    /// The durable queue that keeps every order event until a consumer takes it.
    pub fn orders_queue(&self) -> String {
        format!("{}orders.events", self.prefix)
    }
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn quorum_args(config: &AmqpConfig) -> FieldTable {
    let mut args = FieldTable::default();
    // Raft-replicated; survives a node loss once the broker is a cluster.
    args.insert("x-queue-type".into(), text("quorum"));
    if let Some(ms) = config.queue_expires_ms {
        // Throwaway (test) queues vanish when unused.
        args.insert("x-expires".into(), AMQPValue::LongLongInt(ms as i64));
    }
    args
}

fn work_queue_args(topology: &Topology, config: &AmqpConfig) -> FieldTable {
    let mut args = quorum_args(config);
    // A message redelivered this many times is a poison message: dead-letter it.
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(i64::from(config.delivery_limit)),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        text(&topology.dead_letter_exchange()),
    );
    // The broker keeps a dead letter until the dead-letter queue confirmed it...
    args.insert("x-dead-letter-strategy".into(), text("at-least-once"));
    // ...which requires refusing publishes, not dropping messages, when full.
    args.insert("x-overflow".into(), text("reject-publish"));
    args
}

const DURABLE: QueueDeclareOptions = QueueDeclareOptions {
    passive: false,
    durable: true,
    exclusive: false,
    auto_delete: false,
    nowait: false,
};

/// Declares everything; safe to call from every process at start.
pub(crate) async fn declare(
    channel: &Channel,
    topology: &Topology,
    config: &AmqpConfig,
) -> Result<()> {
    // Dead letters of every work queue go to one queue, whatever their routing key.
    let dlx = topology.dead_letter_exchange();
    exchange(channel, &dlx, ExchangeKind::Fanout).await?;
    channel
        .queue_declare(topology.dead_letters().into(), DURABLE, quorum_args(config))
        .await?;
    bind(channel, &topology.dead_letters(), &dlx, "").await?;
    for queue in [topology.tickets(), topology.payments()] {
        channel
            .queue_declare(queue.into(), DURABLE, work_queue_args(topology, config))
            .await?;
    }
    let orders = topology.orders_exchange();
    exchange(channel, &orders, ExchangeKind::Topic).await?;
    let mut orders_args = quorum_args(config);
    // Bounded; when full the outbox relay is refused and retries, so nothing is dropped.
    orders_args.insert("x-max-length".into(), AMQPValue::LongLongInt(1_000_000));
    orders_args.insert("x-overflow".into(), text("reject-publish"));
    channel
        .queue_declare(topology.orders_queue().into(), DURABLE, orders_args)
        .await?;
    bind(channel, &topology.orders_queue(), &orders, "#").await?;
    Ok(())
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, durable, FieldTable::default())
        .await?;
    Ok(())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}
