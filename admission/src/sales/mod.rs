//! The sales the door knows: loaded from PostgreSQL on first use, their settings
//! re-read every `sale_cache_ms`, their live numbers re-read from Redis every
//! `live_refresh_ms` (one pipeline for all sales), so the hot path reads only memory.

mod counters;
mod handle;
pub(crate) mod roll;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use flashgate_common::domain::SaleId;
use flashgate_common::ledger::sales::{self, Sale};
use flashgate_common::live::Redis;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub(crate) use counters::Outcome;
pub(crate) use handle::{Admission, SaleHandle, SaleState};

/// Unknown sale ids are remembered this long, so a flood of them does not reach PostgreSQL.
const NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// Bound on remembered unknown ids.
const NEGATIVE_CAP: usize = 10_000;
/// Most PostgreSQL look-ups of sales this door does not know yet, at once: a flood of
/// made-up ids (each new, so the negative cache never hits) costs the database at most
/// this many connections, and the arrivals past it wait, then get `503`.
const MAX_LOOKUPS: usize = 4;
/// Longest an arrival waits for a look-up slot before it is answered `503`.
const LOOKUP_WAIT: Duration = Duration::from_secs(1);

/// Every sale this process has seen.
pub struct SaleDirectory {
    pool: PgPool,
    redis: Redis,
    sales: RwLock<HashMap<SaleId, Arc<SaleHandle>>>,
    unknown: RwLock<HashMap<SaleId, Instant>>,
    lookups: tokio::sync::Semaphore,
}

impl SaleDirectory {
    /// An empty directory.
    pub fn new(pool: PgPool, redis: Redis) -> Self {
        Self {
            pool,
            redis,
            sales: RwLock::default(),
            unknown: RwLock::default(),
            lookups: tokio::sync::Semaphore::new(MAX_LOOKUPS),
        }
    }

    /// The sale, loading it on first use; `None` if it does not exist.
    pub async fn get(&self, id: &SaleId) -> sqlx::Result<Option<Arc<SaleHandle>>> {
        if let Some(known) = self.remembered(id) {
            return Ok(known);
        }
        let _slot = tokio::time::timeout(LOOKUP_WAIT, self.lookups.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        // Another arrival may have looked it up while this one waited.
        if let Some(known) = self.remembered(id) {
            return Ok(known);
        }
        self.reload(id).await
    }

    /// What this door remembers of `id`: the sale, or that it recently did not exist.
    fn remembered(&self, id: &SaleId) -> Option<Option<Arc<SaleHandle>>> {
        if let Some(handle) = self.sales.read().ok().and_then(|s| s.get(id).cloned()) {
            return Some(Some(handle));
        }
        self.unknown
            .read()
            .ok()
            .and_then(|u| u.get(id).copied())
            .is_some_and(|at| at.elapsed() < NEGATIVE_TTL)
            .then_some(None)
    }

    /// Re-reads one sale now (after an admin change in this process).
    pub async fn reload(&self, id: &SaleId) -> sqlx::Result<Option<Arc<SaleHandle>>> {
        let Some(settings) = sales::load(&self.pool, std::slice::from_ref(id))
            .await?
            .pop()
        else {
            self.remember_unknown(id);
            return Ok(None);
        };
        Ok(Some(self.apply(settings)))
    }

    /// Listens for sale changes announced by any process (admin API, CLI) and re-reads
    /// the sale at once; resubscribes after Redis comes back.
    pub async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            // Cancellable as a whole: a Redis that accepts and never answers must not
            // hold the door's shutdown in the subscription handshake.
            let subscribed = shutdown
                .run_until_cancelled(self.subscribe_once(&shutdown))
                .await;
            if let Some(Err(e)) = subscribed {
                tracing::warn!(error = %e, "sale change feed lost; resubscribing");
                shutdown
                    .run_until_cancelled(tokio::time::sleep(backoff))
                    .await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }

    async fn subscribe_once(&self, shutdown: &CancellationToken) -> redis::RedisResult<()> {
        use futures_util::StreamExt;
        let mut pubsub = self.redis.client().get_async_pubsub().await?;
        pubsub.subscribe(self.redis.keys().sales_channel()).await?;
        let mut messages = pubsub.on_message();
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = messages.next() => message,
            };
            let Some(message) = message else {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "subscription closed",
                )));
            };
            let Ok(sale) = SaleId::parse(message.get_payload::<String>()?) else {
                continue;
            };
            let known = self.sales.read().is_ok_and(|s| s.contains_key(&sale));
            if known && let Err(e) = self.reload(&sale).await {
                tracing::warn!(error = %e, %sale, "announced sale change not loaded");
            }
        }
    }

    fn remember_unknown(&self, id: &SaleId) {
        if let Ok(mut unknown) = self.unknown.write() {
            if unknown.len() >= NEGATIVE_CAP {
                unknown.clear();
            }
            unknown.insert(id.clone(), Instant::now());
        }
    }

    fn apply(&self, settings: Sale) -> Arc<SaleHandle> {
        let existing = self
            .sales
            .read()
            .ok()
            .and_then(|s| s.get(&settings.id).cloned());
        if let Some(handle) = existing {
            handle.apply_settings(settings);
            return handle;
        }
        let id = settings.id.clone();
        let handle = Arc::new(SaleHandle::new(settings));
        if let Ok(mut sales) = self.sales.write() {
            return sales.entry(id).or_insert(handle).clone();
        }
        handle
    }

    fn handles(&self) -> Vec<Arc<SaleHandle>> {
        self.sales
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps settings and live numbers fresh until `shutdown`.
    pub async fn refresh(
        self: Arc<Self>,
        live_every: Duration,
        settings_every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(live_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut last_settings, mut last_sample) = (Instant::now(), Instant::now());
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            if let Err(e) = self.refresh_live(live_every).await {
                tracing::warn!(error = %e, "live numbers not refreshed");
            }
            if last_settings.elapsed() >= settings_every {
                last_settings = Instant::now();
                if let Err(e) = self.refresh_settings().await {
                    tracing::warn!(error = %e, "sale settings not refreshed");
                }
            }
            if last_sample.elapsed() >= Duration::from_secs(1) {
                last_sample = Instant::now();
                self.handles().iter().for_each(|h| h.sample());
            }
        }
    }

    async fn refresh_live(&self, live_every: Duration) -> flashgate_common::Result<()> {
        let handles = self.handles();
        let ids: Vec<SaleId> = handles.iter().map(|h| h.id()).collect();
        let numbers = self.redis.read_terms_many(&ids).await?;
        for (handle, (terms, seq)) in handles.iter().zip(numbers) {
            handle.merge_live(terms, seq);
        }
        self.refresh_rolls(&handles, roll::trust(live_every))
            .await?;
        Ok(())
    }

    /// Drops the rolls of sales whose seal a claim broke, and seals the sold-out sales
    /// this door keeps no roll of (`roll`).
    async fn refresh_rolls(
        &self,
        handles: &[Arc<SaleHandle>],
        trust: Duration,
    ) -> redis::RedisResult<()> {
        let kept: Vec<&Arc<SaleHandle>> = handles.iter().filter(|h| h.has_roll()).collect();
        if !kept.is_empty() {
            let ids: Vec<SaleId> = kept.iter().map(|h| h.id()).collect();
            let asked_at = roll::now_ms();
            let sealed = roll::still_sealed(&self.redis, &ids).await?;
            for (handle, sealed) in kept.iter().zip(sealed) {
                if sealed {
                    handle.confirm_seal(asked_at);
                } else {
                    handle.drop_roll();
                }
            }
        }
        for handle in handles.iter().filter(|h| h.sold_out() && !h.has_roll()) {
            let decided = handle.live().terms.decided;
            let asked_at = roll::now_ms();
            if let Some(roll) = roll::seal(&self.redis, &handle.id(), decided, trust).await? {
                let holders = roll.len();
                handle.keep_roll(roll, asked_at);
                tracing::info!(sale = %handle.id(), holders, "sold out: the door refuses everyone else from memory");
            }
        }
        Ok(())
    }

    async fn refresh_settings(&self) -> sqlx::Result<()> {
        let ids: Vec<SaleId> = self.handles().iter().map(|h| h.id()).collect();
        for settings in sales::load(&self.pool, &ids).await? {
            self.apply(settings);
        }
        Ok(())
    }
}
