//! Every Redis call of the catalog goes through here. Each gets a deadline of its own:
//! the connection's response timeout only covers a command on a live connection, not the
//! wait for a reconnect to a dead or hung Redis (which can take several connect timeouts).
//! Each outcome feeds the breaker; once it is open, calls are skipped. A skipped, failed
//! or late call is simply `None`: the caller falls back to PostgreSQL.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use flashgate_common::live::Redis;
use redis::Script;
use serde::de::DeserializeOwned;

use super::breaker::Breaker;
use super::remote::{self, Entry};
use crate::stats::Counters;

/// Consecutive failures that open the breaker: enough that one slow command does not send
/// every read to PostgreSQL, few enough that a hung Redis is noticed within one timeout
/// under any real load.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker keeps calls away before one probe.
const BREAKER_OPEN_FOR: Duration = Duration::from_secs(2);

/// Redis behind a per-call deadline and a circuit breaker.
#[derive(Clone)]
pub(crate) struct Guarded {
    redis: Redis,
    breaker: Arc<Breaker>,
    timeout: Duration,
    counters: Arc<Counters>,
}

impl Guarded {
    /// `redis` with every call cut off after `timeout`.
    pub(crate) fn new(redis: Redis, timeout: Duration, counters: Arc<Counters>) -> Self {
        Self {
            redis,
            breaker: Arc::new(Breaker::new(BREAKER_THRESHOLD, BREAKER_OPEN_FOR)),
            timeout,
            counters,
        }
    }

    /// The handle, for key names and calls that must not be skipped.
    pub(crate) fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The per-call deadline.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether calls are currently skipped.
    pub(crate) fn bypassed(&self) -> bool {
        self.breaker.is_open()
    }

    /// Runs `call` unless the breaker is open; its outcome (a timeout counts as a failure)
    /// feeds the breaker.
    pub(crate) async fn call<T, E: Display>(
        &self,
        call: impl Future<Output = Result<T, E>>,
    ) -> Option<T> {
        if !self.breaker.allow() {
            self.counters.redis_bypassed.add();
            return None;
        }
        let failure = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => {
                self.breaker.success();
                return Some(value);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        self.counters.redis_failures.add();
        tracing::debug!(error = %failure, "redis failed; falling back to PostgreSQL");
        self.breaker.failure();
        None
    }

    /// The entry under `key`, if Redis answers and holds a readable one.
    pub(crate) async fn get<T: DeserializeOwned>(&self, key: &str) -> Option<Entry<T>> {
        let mut conn = self.redis.conn();
        let read = async {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<String>>(&mut conn)
                .await
        };
        self.call(read).await.and_then(remote::decode)
    }

    /// Writes `json` under `key`, kept for `keep`.
    pub(crate) async fn set(&self, key: String, json: String, keep: Duration, mode: Write) {
        self.write(mode, move |this| async move {
            let mut conn = this.redis.conn();
            let set = async {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(json)
                    .arg("PX")
                    .arg(keep.as_millis() as u64)
                    .query_async::<()>(&mut conn)
                    .await
            };
            this.call(set).await;
        })
        .await;
    }

    /// Writes `json` in field `field` of hash `hash` if the hash holds fewer than `cap`
    /// fields (or already has this one); the hash lives `keep` from its first write.
    pub(crate) async fn hset(
        &self,
        hash: String,
        field: String,
        json: String,
        keep: Duration,
        cap: usize,
        mode: Write,
    ) {
        self.write(mode, move |this| async move {
            let mut conn = this.redis.conn();
            let set = async {
                BOUNDED_HSET
                    .key(&hash)
                    .arg(field)
                    .arg(json)
                    .arg(keep.as_secs())
                    .arg(cap)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map(|_| ())
            };
            this.call(set).await;
        })
        .await;
    }

    async fn write<F, Fut>(&self, mode: Write, op: F)
    where
        F: FnOnce(Self) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let op = op(self.clone());
        match mode {
            Write::Wait => op.await,
            Write::Background => drop(tokio::spawn(op)),
        }
    }
}

/// KEYS[1] a hash of cached values; ARGV field, value, lifetime in seconds, most fields.
/// Writes the field only if it is there already or the hash has room, so keys a client
/// chooses (a listing cursor) cannot grow it without bound; the hash's lifetime is set
/// by its first write and not renewed, so it empties itself even under constant writes.
static BOUNDED_HSET: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0
            and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
            return 0
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        redis.call('EXPIRE', KEYS[1], ARGV[3], 'NX')
        return 1
        ",
    )
});

/// Whether a fill waits for its value to be written to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// A reader is waiting for the value: answer at once, since Redis may be hung.
    Background,
    /// A background refresh: end only once Redis holds the fresh entry, or readers in
    /// between would still see the stale one and refresh it again.
    Wait,
}
