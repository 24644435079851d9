//! The atomic part of issuing a ticket, in Redis: the customer's ticket for this sale
//! (one, ever), its sequence number, and its `queued` status, marked pending until the
//! broker confirms. A ticket's id is derived from (sale, customer), so publishing it again
//! is always safe (the reservation worker decides each id once): a claim whose publish
//! failed or whose outcome is unknown is settled by publishing again, never rolled back.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use flashgate_common::domain::{CustomerId, SaleId};
use flashgate_common::live::Redis;
use flashgate_common::live::tickets::field::{self, PENDING};
use redis::Script;
use uuid::Uuid;

/// Namespace of name-based ticket ids.
const TICKET_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_3c52_9e0b_4d7a_8f21_5b6c_0d3e_9a47);

/// KEYS customer, seq, ticket, holders, sealed, unsealing; ARGV token, ttl, seq floor,
/// customer id. Returns {1, value} for a new claim, or {0, value} for the customer's
/// existing one; value is `token|seq`, and a third element is 1 while the ticket is
/// still pending. A new claim adds its customer to the sale's holders. On a sealed sale
/// it first breaks the seal and answers {2, '', ms}: no claim may be made until every
/// door stopped trusting its roll of holders ([`crate::sales::roll`]; the seal holds the
/// longest trust of the doors that read it), which that many ms from now they all have.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
        local held = redis.call('GET', KEYS[1])
        if held then
            return {{0, held, redis.call('HEXISTS', KEYS[3], '{pending}')}}
        end
        local trusted = redis.call('GET', KEYS[5])
        if trusted then
            redis.call('DEL', KEYS[5])
            redis.call('SET', KEYS[6], 1, 'PX', trusted)
            return {{2, '', tonumber(trusted)}}
        end
        local wait = redis.call('PTTL', KEYS[6])
        if wait > 0 then
            return {{2, '', wait}}
        end
        local seq = redis.call('INCR', KEYS[2])
        local floor = tonumber(ARGV[3])
        if seq <= floor then
            -- the counter was lost (Redis restarted): continue after what was decided
            seq = floor + 1
            redis.call('SET', KEYS[2], seq)
        end
        local value = ARGV[1] .. '|' .. seq
        redis.call('SET', KEYS[1], value, 'EX', ARGV[2])
        redis.call('HSET', KEYS[3], '{rank}', 0, '{status}', 'queued', '{seq}', seq, '{pending}', 1)
        redis.call('EXPIRE', KEYS[3], ARGV[2])
        redis.call('SADD', KEYS[4], ARGV[4])
        redis.call('EXPIRE', KEYS[4], ARGV[2])
        return {{1, value, 1}}
        ",
        rank = field::RANK,
        status = field::STATUS,
        seq = field::SEQ,
        pending = PENDING,
    ))
});

/// The one ticket id a customer can ever have in a sale.
pub(super) fn ticket_id(sale: &SaleId, customer: &CustomerId) -> Uuid {
    Uuid::new_v5(
        &TICKET_NAMESPACE,
        format!("{sale}\u{0}{customer}").as_bytes(),
    )
}

/// A customer's ticket as stored: the token and its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Held {
    /// The ticket token.
    pub token: String,
    /// Sequence number.
    pub seq: i64,
    /// No publish of it is confirmed yet (in flight, failed, or unknown).
    pub pending: bool,
}

impl Held {
    fn parse(raw: &str, pending: bool) -> Option<Self> {
        let (token, seq) = raw.rsplit_once('|')?;
        Some(Self {
            token: token.to_owned(),
            seq: seq.parse().ok()?,
            pending,
        })
    }
}

/// The result of a claim.
#[derive(Debug)]
pub(super) enum Claim {
    /// A new claim (to be published).
    New(Held),
    /// The customer's existing ticket.
    Existing(Held),
}

/// Times a claim waits for the doors to stop trusting a sealed sale's roll before it
/// gives up (only a sale sealed again meanwhile makes it wait twice).
const UNSEAL_ATTEMPTS: usize = 3;

/// Claims the customer's ticket, or returns the one they hold. A claim on a sealed sale
/// waits until no door trusts the sale's roll any more.
pub(super) async fn claim(
    redis: &Redis,
    sale: &SaleId,
    customer: &CustomerId,
    token: &str,
    seq_floor: i64,
) -> redis::RedisResult<Option<Claim>> {
    let keys = redis.keys();
    let mut invocation = CLAIM.key(keys.customer(sale, customer));
    invocation
        .key(keys.seq(sale))
        .key(keys.ticket(sale, ticket_id(sale, customer)))
        .key(keys.holders(sale))
        .key(keys.sealed(sale))
        .key(keys.unsealing(sale))
        .arg(token)
        .arg(redis.ticket_ttl_secs())
        .arg(seq_floor)
        .arg(customer.as_str());
    for _ in 0..UNSEAL_ATTEMPTS {
        let (new, value, third): (i64, String, i64) =
            invocation.invoke_async(&mut redis.conn()).await?;
        if new == 2 {
            tokio::time::sleep(std::time::Duration::from_millis(third.max(1) as u64)).await;
            continue;
        }
        return Ok(parsed(new, &value, third));
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::Client,
        "the sale was sealed again while a claim waited",
    )))
}

fn parsed(new: i64, value: &str, pending: i64) -> Option<Claim> {
    let held = Held::parse(value, pending == 1);
    held.map(|held| {
        if new == 1 {
            Claim::New(held)
        } else {
            Claim::Existing(held)
        }
    })
}

/// KEYS[1] the sale's published counter, KEYS[2..] ticket hashes. Clears each pending
/// mark and counts the marks it cleared, so a ticket is counted once however often its
/// confirmation is written; returns the counter after.
static CONFIRM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
        local cleared = 0
        for k = 2, #KEYS do
            cleared = cleared + redis.call('HDEL', KEYS[k], '{pending}')
        end
        if cleared > 0 then return redis.call('INCRBY', KEYS[1], cleared) end
        return tonumber(redis.call('GET', KEYS[1]) or '0')
        ",
        pending = PENDING,
    ))
});

/// Marks tickets confirmed by the broker and counts them into their sales' published
/// counts, in one round trip (idempotent; tried up to `attempts` times, since a
/// lingering mark only costs a needless re-publish later). Answers each sale's published
/// count once its tickets are in it.
pub(super) async fn confirm_all(
    redis: &Redis,
    tickets: &[(SaleId, CustomerId)],
    attempts: usize,
) -> redis::RedisResult<BTreeMap<SaleId, i64>> {
    let mut by_sale: BTreeMap<&SaleId, Vec<&CustomerId>> = BTreeMap::new();
    for (sale, customer) in tickets {
        by_sale.entry(sale).or_default().push(customer);
    }
    let mut pipe = redis::pipe();
    pipe.load_script(&CONFIRM).ignore();
    for (sale, customers) in &by_sale {
        let mut invocation = CONFIRM.key(redis.keys().published(sale));
        for customer in customers {
            invocation.key(redis.keys().ticket(sale, ticket_id(sale, customer)));
        }
        pipe.invoke_script(&invocation);
    }
    let mut outcome = Ok(Vec::new());
    for _ in 0..attempts.max(1) {
        outcome = pipe.query_async::<Vec<i64>>(&mut redis.conn()).await;
        if outcome.is_ok() {
            break;
        }
    }
    Ok(by_sale.into_keys().cloned().zip(outcome?).collect())
}

/// The ticket a customer holds, if any, and whether the sale's sequence counter exists
/// (it is gone only if Redis lost the sale's data, or no ticket was ever claimed).
pub(super) async fn held_by(
    redis: &Redis,
    sale: &SaleId,
    customer: &CustomerId,
) -> redis::RedisResult<(Option<Held>, bool)> {
    let (raw, pending, counter): (Option<String>, bool, bool) = redis::pipe()
        .get(redis.keys().customer(sale, customer))
        .hexists(
            redis.keys().ticket(sale, ticket_id(sale, customer)),
            PENDING,
        )
        .exists(redis.keys().seq(sale))
        .query_async(&mut redis.conn())
        .await?;
    Ok((raw.and_then(|raw| Held::parse(&raw, pending)), counter))
}

/// Puts a customer's decided ticket back after Redis lost it (never over a newer claim).
pub(super) async fn restore(
    redis: &Redis,
    sale: &SaleId,
    customer: &CustomerId,
    token: &str,
    seq: i64,
) -> redis::RedisResult<()> {
    redis::cmd("SET")
        .arg(redis.keys().customer(sale, customer))
        .arg(format!("{token}|{seq}"))
        .arg("NX")
        .arg("EX")
        .arg(redis.ticket_ttl_secs())
        .query_async::<()>(&mut redis.conn())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_has_one_ticket_id_per_sale() {
        let sale = SaleId::parse("drop").unwrap();
        let other = SaleId::parse("drop-2").unwrap();
        let alice = CustomerId::parse("alice").unwrap();
        let bob = CustomerId::parse("bob").unwrap();
        assert_eq!(ticket_id(&sale, &alice), ticket_id(&sale, &alice));
        assert_ne!(ticket_id(&sale, &alice), ticket_id(&sale, &bob));
        assert_ne!(ticket_id(&sale, &alice), ticket_id(&other, &alice));
    }
}
