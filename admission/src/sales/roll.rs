//! A sold-out sale's roll of holders: every customer who ever claimed one of its
//! tickets, read whole from Redis once the sale is sold out. The crowd that keeps
//! arriving after the last unit is then refused from memory (`410`, no Redis round trip,
//! and still while Redis is away), and only a customer on the roll goes to Redis, to get
//! their ticket back.
//!
//! A roll is complete when it is read: one script checks that the sale's holders account
//! for every number its sequence counter handed out, and seals the sale in the same step.
//! A Redis that lost the sale's data (the counter restarts after what was decided), or a
//! sale whose pre-queue's draw numbered tickets, fails the check, and the door keeps
//! asking Redis at every refusal, as without a roll.
//!
//! A door trusts its roll for [`trust`] after the last live refresh that found the seal
//! (counted from when that refresh asked). The first claim on a sealed sale (the sale
//! reopened: an operator added units, or a door's view lags) breaks the seal, and no
//! claim is made for the longest trust of the doors that sealed it after that
//! (`tickets/claim.rs`), so no door, this one included, can still trust a roll that lacks
//! a customer who holds a ticket.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use flashgate_common::domain::SaleId;
use flashgate_common::live::Redis;
use redis::Script;

/// The most holders a door keeps in memory for one sale (about 60 bytes each); a sale
/// with more keeps asking Redis at every refusal.
pub(crate) const MAX_HOLDERS: usize = 250_000;

/// How long a door trusts a roll after a live refresh (every `live_refresh`) found its
/// seal: three refreshes, so one slow or failed refresh does not cost the roll, and a
/// claim after a broken seal waits that long.
pub(crate) fn trust(live_refresh: Duration) -> Duration {
    live_refresh * 3
}

/// Milliseconds since this process first asked, on the monotonic clock.
pub(crate) fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    START.elapsed().as_millis() as u64
}

/// KEYS seq, holders, sealed, unsealing; ARGV ttl, tickets decided, most holders, this
/// door's trust (ms). Seals the sale (the seal keeps the longest trust of the doors that
/// sealed it, which a claim waits out) and returns its holders, or nil when they do not
/// account for every claim (or are too many to keep), or while a broken seal may still
/// be trusted.
static SEAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('EXISTS', KEYS[4]) == 1 then
            return false
        end
        local claimed = tonumber(redis.call('GET', KEYS[1]) or '0')
        local known = redis.call('SCARD', KEYS[2])
        if claimed < tonumber(ARGV[2]) or known ~= claimed or known > tonumber(ARGV[3]) then
            return false
        end
        local trusted = math.max(tonumber(redis.call('GET', KEYS[3]) or '0'), tonumber(ARGV[4]))
        redis.call('SET', KEYS[3], trusted, 'EX', ARGV[1])
        return redis.call('SMEMBERS', KEYS[2])
        ",
    )
});

/// The customers who hold a ticket of a sealed sale.
#[derive(Debug)]
pub struct Roll {
    holders: HashSet<Box<str>>,
}

impl Roll {
    /// Whether `customer` claimed a ticket of the sale.
    pub fn holds(&self, customer: &str) -> bool {
        self.holders.contains(customer)
    }

    /// How many customers hold a ticket.
    pub fn len(&self) -> usize {
        self.holders.len()
    }
}

/// Seals `sale` and reads its roll, or `None` if its holders in Redis do not account for
/// every claim (`decided`: tickets the sale decided, which a counter that survived
/// reached at least). `trust`: how long this door trusts the roll after a refresh.
pub(super) async fn seal(
    redis: &Redis,
    sale: &SaleId,
    decided: i64,
    trust: Duration,
) -> redis::RedisResult<Option<Roll>> {
    let keys = redis.keys();
    let holders: Option<Vec<String>> = SEAL
        .key(keys.seq(sale))
        .key(keys.holders(sale))
        .key(keys.sealed(sale))
        .key(keys.unsealing(sale))
        .arg(redis.ticket_ttl_secs())
        .arg(decided)
        .arg(MAX_HOLDERS)
        .arg(trust.as_millis().max(1) as u64)
        .invoke_async(&mut redis.conn())
        .await?;
    Ok(holders.map(|holders| Roll {
        holders: holders.into_iter().map(String::into_boxed_str).collect(),
    }))
}

/// Whether each sale is still sealed (no claim since a door read its roll), in one
/// round trip.
pub(super) async fn still_sealed(redis: &Redis, sales: &[SaleId]) -> redis::RedisResult<Vec<bool>> {
    let mut pipe = redis::pipe();
    for sale in sales {
        pipe.exists(redis.keys().sealed(sale));
    }
    pipe.query_async(&mut redis.conn()).await
}
