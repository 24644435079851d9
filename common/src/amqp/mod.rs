//! RabbitMQ: the connection pool, the topology (declared in one place), confirmed
//! publishing and the versioned message types.

pub mod messages;
mod nodes;
mod publisher;
mod topology;

use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{Pool, PoolConfig, Timeouts};

use crate::config::AmqpConfig;
use crate::{Error, Result};
pub use nodes::Nodes;
pub use publisher::{Publisher, message_properties, request_id, ticket_count, with_ticket_count};
pub use topology::Topology;

/// A connection checked out of the pool; returned when dropped.
pub type PooledConnection = deadpool::managed::Object<Nodes>;

/// Pooled connections plus the names of everything this deployment declares.
#[derive(Clone)]
pub struct Amqp {
    pool: Pool<Nodes>,
    topology: Topology,
    config: AmqpConfig,
}

impl Amqp {
    /// Creates the pool; connections are opened on first use.
    pub fn new(config: &AmqpConfig) -> Result<Self> {
        let pool = Pool::builder(Nodes::new(config.node_urls()))
            .config(PoolConfig {
                max_size: config.pool_size,
                timeouts: Timeouts {
                    wait: Some(Duration::from_secs(5)),
                    create: Some(Duration::from_secs(5)),
                    recycle: Some(Duration::from_secs(1)),
                },
                ..PoolConfig::default()
            })
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::AmqpPool(e.to_string()))?;
        Ok(Self {
            pool,
            topology: Topology::new(&config.prefix),
            config: config.clone(),
        })
    }

    /// A healthy connection, exclusively checked out until dropped.
    pub async fn connection(&self) -> Result<PooledConnection> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::AmqpPool(e.to_string()))
    }

    /// Declares exchanges and queues (idempotent).
    pub async fn declare_topology(&self) -> Result<()> {
        let connection = self.connection().await?;
        let channel = connection.create_channel().await?;
        topology::declare(&channel, &self.topology, &self.config).await?;
        channel.close(200, "declared".into()).await?;
        Ok(())
    }

    /// Deletes every queue and exchange of this deployment's prefix (test teardown and
    /// throwaway deployments; never called by a service).
    pub async fn delete_topology(&self) -> Result<()> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let connection = self.connection().await?;
        let channel = connection.create_channel().await?;
        let t = &self.topology;
        for queue in [
            t.tickets(),
            t.payments(),
            t.dead_letters(),
            t.orders_queue(),
        ] {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in [t.dead_letter_exchange(), t.orders_exchange()] {
            channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        channel.close(200, "deleted".into()).await?;
        Ok(())
    }

    /// The names of exchanges and queues.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The configuration this was built from.
    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }
}
