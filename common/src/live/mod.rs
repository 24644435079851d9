//! Live state in Redis: what the read path serves without touching PostgreSQL (ticket
//! status, queue positions, remaining units) and the door's per-customer bookkeeping.
//! PostgreSQL stays the source of truth: every value here is rewritten from a commit,
//! and writes that arrive out of order are dropped by rank or version.

mod announce;
pub mod keys;
pub mod stock;
pub mod tickets;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::Result;
use crate::config::RedisConfig;
pub use keys::Keys;

/// A small set of auto-reconnecting multiplexed connections. Each one pipelines every
/// concurrent request; several spread the socket work across runtime threads. (A pool
/// that pings on checkout would double the round trips of the hot path.)
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
    keys: Keys,
    ticket_ttl_secs: u64,
}

impl Redis {
    /// Creates the connections lazily: a Redis that is down at start does not stop the
    /// process; calls fail fast until it is back.
    pub fn connect(config: &RedisConfig) -> Result<Self> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_millis(config.response_timeout_ms)))
            .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout_ms)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connections = (0..config.connections)
            .map(|_| {
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            client,
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
            keys: Keys::new(&config.prefix),
            ticket_ttl_secs: config.ticket_ttl_secs,
        })
    }

    /// A connection handle (cheap clone), round-robin.
    pub fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }

    /// The client, for dedicated connections (pub/sub).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The key namespace.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Lifetime of per-ticket keys.
    pub fn ticket_ttl_secs(&self) -> u64 {
        self.ticket_ttl_secs
    }

    /// Round trip to the server, for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        let _: String = redis::cmd("PING").query_async(&mut self.conn()).await?;
        Ok(())
    }
}
