//! Live state in Redis: what the read path serves without touching PostgreSQL (ticket
//! status, queue positions, remaining units) and the door's per-customer bookkeeping.
//! PostgreSQL stays the source of truth: every value here is rewritten from a commit,
//! and writes that arrive out of order are dropped by rank or version.

mod announce;
mod answers;
pub mod keys;
mod sentinel;
pub mod stock;
pub mod tickets;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::Result;
use crate::config::RedisConfig;
pub use keys::Keys;

/// A small set of auto-reconnecting multiplexed connections. Each one pipelines every
/// concurrent request; several spread the socket work across runtime threads. (A pool
/// that pings on checkout would double the round trips of the hot path.) With Sentinels
/// configured, the set is rebuilt against the new primary when they fail over.
#[derive(Clone)]
pub struct Redis {
    primary: Arc<ArcSwap<Primary>>,
    next: Arc<AtomicUsize>,
    keys: Keys,
    ticket_ttl_secs: u64,
}

/// The connections to one primary.
struct Primary {
    client: redis::Client,
    connections: Box<[ConnectionManager]>,
}

impl Primary {
    fn open(info: redis::ConnectionInfo, config: &RedisConfig) -> Result<Self> {
        let client = redis::Client::open(info)?;
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
        })
    }

    fn addr(&self) -> &redis::ConnectionAddr {
        self.client.get_connection_info().addr()
    }
}

impl Redis {
    /// Creates the connections lazily: a Redis that is down at start does not stop the
    /// process; calls fail fast until it is back. With Sentinels, the primary they name
    /// now is used (`url` while none answers), and a task follows their failovers.
    pub fn connect(config: &RedisConfig) -> Result<Self> {
        let mut info = config.url.as_str().into_connection_info()?;
        if !config.sentinels.is_empty() {
            match sentinel::primary_now(config) {
                Some(addr) => info = info.set_addr(addr),
                None => tracing::warn!("no Sentinel answered; using redis.url until one does"),
            }
        }
        let primary = Arc::new(ArcSwap::from_pointee(Primary::open(info, config)?));
        if !config.sentinels.is_empty() {
            sentinel::follow(Arc::downgrade(&primary), config.clone());
        }
        Ok(Self {
            primary,
            next: Arc::new(AtomicUsize::new(0)),
            keys: Keys::new(&config.prefix),
            ticket_ttl_secs: config.ticket_ttl_secs,
        })
    }

    /// A connection handle (cheap clone), round-robin.
    pub fn conn(&self) -> ConnectionManager {
        let primary = self.primary.load();
        let i = self.next.fetch_add(1, Ordering::Relaxed) % primary.connections.len();
        primary.connections[i].clone()
    }

    /// A client of the current primary, for dedicated connections (pub/sub).
    pub fn client(&self) -> redis::Client {
        self.primary.load().client.clone()
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
