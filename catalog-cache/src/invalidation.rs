//! Invalidation across processes: a product write deletes the Redis entries (product and
//! every listing page) and publishes the sku on the catalog channel; every catalog process
//! drops its L1 copies. The write path deletes twice (now and shortly after) so a fill
//! that raced the write cannot leave the old value behind, and keeps retrying while Redis
//! is down, so a write made during an outage is not shadowed by old entries afterwards.
//!
//! The subscriber (re)connects with deadlines, pings its connection so a silently dead one
//! is noticed, and clears its whole L1 on every (re)subscription, since it may have missed
//! messages meanwhile.

use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use flashgate_common::domain::Sku;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Msg, RedisError, RedisResult};
use tokio_util::sync::CancellationToken;

use crate::catalog::{Catalog, STALE_FACTOR};

/// Delay of the second delete.
const SECOND_DELETE: Duration = Duration::from_millis(500);
/// Longest pause between retries (of a delete, or of a subscription).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the subscription's connection is checked.
const PING_EVERY: Duration = Duration::from_secs(3);

impl Catalog {
    /// Drops `sku` everywhere: this process's L1 at once, Redis and other processes' L1 as
    /// soon as Redis takes the delete (waits at most one Redis timeout for it).
    pub async fn invalidate(self: &Arc<Self>, sku: &Sku) {
        self.drop_local(sku.as_str());
        self.delete_and_announce(sku).await;
        let this = self.clone();
        let sku = sku.clone();
        tokio::spawn(async move { this.delete_again(sku).await });
    }

    /// The second delete, retried with backoff until Redis takes it or until whatever
    /// Redis held has expired on its own.
    async fn delete_again(self: Arc<Self>, sku: Sku) {
        let longest_entry = Duration::from_secs(self.config.redis_ttl_secs) * STALE_FACTOR * 2;
        let give_up = Instant::now() + longest_entry;
        let mut pause = SECOND_DELETE;
        loop {
            tokio::time::sleep(pause).await;
            if self.delete_and_announce(&sku).await || Instant::now() > give_up {
                return;
            }
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }

    /// Deletes the cached product and pages and announces the write; whether Redis took it.
    async fn delete_and_announce(&self, sku: &Sku) -> bool {
        let announce = self.remote.redis().announce_product_change(sku);
        let error = match tokio::time::timeout(self.remote.timeout(), announce).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "redis did not answer in time".to_owned(),
        };
        self.counters.undelivered.add();
        tracing::warn!(%error, %sku, "invalidation not delivered yet; retrying");
        false
    }

    /// Listens for invalidations until `shutdown`, resubscribing after failures.
    pub async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.subscribe().await {
                Ok((sink, stream)) => {
                    backoff = Duration::from_millis(100);
                    self.feed_live.store(true, Ordering::Release);
                    self.drop_local("*");
                    let outcome = self.follow(sink, stream, &shutdown).await;
                    self.feed_live.store(false, Ordering::Release);
                    if let Err(e) = outcome {
                        tracing::warn!(error = %e, "catalog invalidation feed lost; resubscribing");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to catalog invalidations");
                    let pause = tokio::time::sleep(backoff);
                    shutdown.run_until_cancelled(pause).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn subscribe(&self) -> RedisResult<(PubSubSink, PubSubStream)> {
        let client = self.remote.redis().client();
        let connect = client.get_async_pubsub();
        let mut pubsub = within(self.pubsub_timeout, connect).await?;
        let channel = self.remote.redis().keys().catalog_channel();
        within(self.remote.timeout(), pubsub.subscribe(channel)).await?;
        Ok(pubsub.split())
    }

    /// Applies messages until shutdown (`Ok`) or until the connection fails (`Err`).
    async fn follow(
        &self,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        shutdown: &CancellationToken,
    ) -> RedisResult<()> {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = stream.next() => match message {
                    Some(message) => self.apply(&message),
                    None => return Err(io_error(ErrorKind::ConnectionAborted, "subscription closed")),
                },
                _ = ping.tick() => {
                    within(self.remote.timeout(), sink.ping::<redis::Value>()).await?;
                }
            }
        }
    }

    fn apply(&self, message: &Msg) {
        self.counters.invalidations.add();
        match message.get_payload::<String>() {
            Ok(sku) => self.drop_local(&sku),
            // Something we cannot read may still have been a write: drop everything.
            Err(_) => self.drop_local("*"),
        }
    }
}

/// `call`, failing after `limit`.
async fn within<T>(limit: Duration, call: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(io_error(
            ErrorKind::TimedOut,
            "redis did not answer in time",
        ))
    })
}

fn io_error(kind: ErrorKind, why: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(kind, why))
}
