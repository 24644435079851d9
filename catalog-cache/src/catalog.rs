//! The catalog's state: the three in-process caches (products, listing pages,
//! availability), Redis behind a deadline and a breaker, the coalescing tables, and the
//! bounded way to PostgreSQL. The read paths live in `lookup`, `pages` and `availability`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flashgate_common::config::CatalogConfig;
use flashgate_common::inflight::InFlight;
use flashgate_common::live::Redis;
use flashgate_common::{Config, db};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Semaphore;

use crate::availability::Availability;
use crate::cache::guarded::{Guarded, Write};
use crate::cache::l1::L1;
use crate::cache::remote::Entry;
use crate::error::{Fill, FillError};
use crate::http::RenderedProduct;
use crate::pages::Page;
use crate::products::Product;
use crate::stats::{Counters, Kind, Stats};

/// Longest wait for a database slot before answering 503.
const DB_WAIT: Duration = Duration::from_secs(2);
/// Redis keeps an entry this many times its logical TTL, so stale values can be served
/// while one reader refreshes them.
pub(crate) const STALE_FACTOR: u32 = 3;
/// Availability informs shoppers about live counters: never older than about a second,
/// whatever the configuration says.
const MAX_AVAILABILITY_AGE: Duration = Duration::from_secs(1);

/// The catalog's caches and sources.
pub struct Catalog {
    pub(crate) pool: PgPool,
    pub(crate) remote: Guarded,
    pub(crate) counters: Arc<Counters>,
    pub(crate) products: L1<Option<Arc<Product>>>,
    pub(crate) pages: L1<Arc<Page>>,
    pub(crate) availability: L1<Option<Arc<Availability>>>,
    /// Product answers as last rendered (see [`RenderedProduct`]).
    pub(crate) rendered: L1<Arc<RenderedProduct>>,
    pub(crate) product_fills: InFlight<Fill<Option<Arc<Product>>>>,
    pub(crate) page_fills: InFlight<Fill<Arc<Page>>>,
    pub(crate) availability_fills: InFlight<Option<Arc<Availability>>>,
    db_permits: Semaphore,
    /// Whether the invalidation subscription is up.
    pub(crate) feed_live: AtomicBool,
    /// Longest wait for a pub/sub connection (connect plus handshake).
    pub(crate) pubsub_timeout: Duration,
    pub(crate) config: CatalogConfig,
}

impl Catalog {
    /// A catalog over `pool` and `redis`, configured by `config.catalog`; every Redis
    /// call is cut off after `config.redis.response_timeout_ms`.
    pub fn new(pool: PgPool, redis: Redis, config: &Config) -> Self {
        let catalog = config.catalog.clone();
        let l1_ttl = Duration::from_millis(catalog.l1_ttl_ms);
        let availability_ttl =
            Duration::from_millis(catalog.availability_ttl_ms).min(MAX_AVAILABILITY_AGE);
        let timeout = Duration::from_millis(config.redis.response_timeout_ms);
        let counters = Arc::new(Counters::new());
        Self {
            products: L1::new(catalog.l1_capacity, l1_ttl),
            pages: L1::new(catalog.l1_capacity / 10 + 1, l1_ttl),
            availability: L1::new(catalog.l1_capacity, availability_ttl),
            rendered: L1::new(catalog.l1_capacity, l1_ttl),
            remote: Guarded::new(redis, timeout, counters.clone()),
            counters,
            product_fills: InFlight::default(),
            page_fills: InFlight::default(),
            availability_fills: InFlight::default(),
            db_permits: Semaphore::new(catalog.db_concurrency),
            feed_live: AtomicBool::new(false),
            pubsub_timeout: Duration::from_millis(config.redis.connect_timeout_ms) + timeout,
            pool,
            config: catalog,
        }
    }

    /// Connects to PostgreSQL and (lazily) Redis as `config` says.
    pub async fn connect(config: &Config) -> flashgate_common::Result<Self> {
        let pool = db::connect(&config.database).await?;
        let redis = Redis::connect(&config.redis)?;
        Ok(Self::new(pool, redis, config))
    }

    /// Runs `fill` for `key` unless a fill of that key is already running here, in which
    /// case this reader waits for that one's result.
    pub(crate) async fn coalesce<T: Clone + Send + Sync + 'static>(
        &self,
        fills: &InFlight<T>,
        kind: Kind,
        key: String,
        fill: impl Future<Output = T> + Send + 'static,
        failed: T,
    ) -> T {
        let (result, leader) = fills.run(key, fill, failed).await;
        if !leader {
            self.counters.coalesced(kind);
        }
        result
    }

    /// Runs a database read in one of the bounded slots.
    pub(crate) async fn with_db<T>(
        &self,
        kind: Kind,
        query: impl Future<Output = sqlx::Result<T>>,
    ) -> Fill<T> {
        let _permit = tokio::time::timeout(DB_WAIT, self.db_permits.acquire())
            .await
            .map_err(|_| FillError::Busy)?
            .map_err(|_| FillError::Busy)?;
        self.counters.db_read(kind);
        query.await.map_err(|e| FillError::Database(e.to_string()))
    }

    /// Stores `entry` in Redis under `key`, kept past its logical TTL so it can be served
    /// stale while one reader refreshes it.
    pub(crate) async fn store<T: Serialize>(
        &self,
        key: String,
        entry: &Entry<T>,
        ttl: Duration,
        mode: Write,
    ) {
        if let Ok(json) = serde_json::to_string(entry) {
            self.remote.set(key, json, ttl * STALE_FACTOR, mode).await;
        }
    }

    /// Drops a product (`"*"`: every product) and every listing page from this
    /// process's L1.
    pub fn drop_local(&self, sku: &str) {
        // A rendered answer of a dropped product could not be served anyway (it no
        // longer renders what the product cache holds); dropping it frees it now.
        if sku == "*" {
            self.products.clear();
            self.rendered.clear();
        } else {
            self.products.remove(sku);
            self.rendered.remove(sku);
        }
        self.pages.clear();
    }

    /// Whether Redis is currently bypassed (the breaker is open or probing).
    pub fn redis_bypassed(&self) -> bool {
        self.remote.bypassed()
    }

    /// Whether this process is subscribed to invalidations right now.
    pub fn invalidations_live(&self) -> bool {
        self.feed_live.load(Ordering::Acquire)
    }

    /// This catalog's counts since it started.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }
}
