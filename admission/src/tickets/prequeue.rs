//! The pre-queue at the door: arrivals before a sale opens are written to PostgreSQL
//! with no place ([`flashgate_common::ledger::prequeue`]), and at the opening one door
//! draws their order, writes their places to Redis, and hands them to the broker.
//!
//! Every door runs the draw loop; the database decides which one draws (the draw locks
//! the sale) and which publishes which tickets (rows locked, others skipped). A door
//! that dies half-way leaves tickets unpublished, and the next pass of any door
//! publishes them: publishing a ticket again is always safe.

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use flashgate_common::amqp::messages::IssuedTicket;
use flashgate_common::domain::{CustomerId, PaymentMethodId, Quantity, SaleId, TicketStatus};
use flashgate_common::ledger::prequeue::{self, DrawnTicket, Joined, Joining};
use flashgate_common::live::Redis;
use flashgate_common::live::tickets::field;
use flashgate_common::trail;
use redis::Script;
use tokio_util::sync::CancellationToken;

use super::TicketBody;
use super::claim::ticket_id;
use crate::Result;
use crate::sales::{Outcome, SaleHandle};
use crate::state::AppState;
use crate::ticket_token::TicketClaims;

/// Longest a pass of the draw loop waits for the next one.
const TICK: Duration = Duration::from_millis(250);
/// Drawn tickets published per database transaction.
const PUBLISH_CHUNK: i64 = 5_000;
/// Tickets per call of the draw's Redis script.
const SCRIPT_CHUNK: usize = 500;

/// KEYS[1] the ticket hash. ARGV ttl. Marks a ticket pre-queued unless it has a status.
static MARK_PREQUEUED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
        if redis.call('EXISTS', KEYS[1]) == 0 then
            redis.call('HSET', KEYS[1], '{rank}', 0, '{status}', 'prequeued')
            redis.call('EXPIRE', KEYS[1], ARGV[1])
        end
        return 1
        ",
        rank = field::RANK,
        status = field::STATUS,
    ))
});

/// KEYS[1] the sale's sequence counter, then a customer key and a ticket hash per ticket;
/// ARGV the tickets numbered, the TTL, then `token|seq` and seq per ticket. Raises the
/// counter past the drawn tickets, gives each customer their ticket, and turns each
/// ticket that has no later status `queued` at its place, pending until confirmed.
static WRITE_DRAWN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"
        local total = tonumber(ARGV[1])
        if tonumber(redis.call('GET', KEYS[1]) or '0') < total then
            redis.call('SET', KEYS[1], total)
        end
        local ttl = ARGV[2]
        for k = 2, #KEYS, 2 do
            local i = k + 1
            redis.call('SET', KEYS[k], ARGV[i], 'EX', ttl)
            local status = redis.call('HGET', KEYS[k + 1], '{status}')
            if not status or status == 'prequeued' then
                redis.call('HSET', KEYS[k + 1], '{rank}', 0, '{status}', 'queued', '{seq}', ARGV[i + 1], '{pending}', 1)
                redis.call('EXPIRE', KEYS[k + 1], ttl)
            end
        end
        return 1
        ",
        rank = field::RANK,
        status = field::STATUS,
        seq = field::SEQ,
        pending = field::PENDING,
    ))
});

/// An arrival while the pre-queue is open.
pub(super) struct PrequeueArrival<'a> {
    pub sale_id: &'a SaleId,
    pub customer: &'a CustomerId,
    pub quantity: Quantity,
    pub payment_method: Option<&'a PaymentMethodId>,
    pub request_id: Option<&'a str>,
}

/// Joins the pre-queue: `Ok(Ok(answer))`, or `Ok(Err(prequeued))` if the sale was drawn
/// meanwhile, so the arrival claims a ticket numbered after the `prequeued` drawn ones.
pub(super) async fn join(
    state: &AppState,
    sale: &SaleHandle,
    arrival: PrequeueArrival<'_>,
) -> Result<std::result::Result<(StatusCode, TicketBody), i64>> {
    let starts_at = sale.settings().starts_at;
    let ticket = ticket_id(arrival.sale_id, arrival.customer);
    let expires_at =
        starts_at.max(Utc::now()).timestamp() + state.config.admission.ticket_ttl_secs as i64;
    let token = state.signer.sign(&TicketClaims {
        sale: arrival.sale_id.clone(),
        ticket,
        expires_at,
    });
    let joined = prequeue::join(
        &state.pool,
        &Joining {
            ticket_id: ticket,
            sale_id: arrival.sale_id,
            customer_id: arrival.customer.as_str(),
            token: &token,
            quantity: arrival.quantity.get(),
            payment_method: arrival.payment_method.map(PaymentMethodId::as_str),
            request_id: arrival.request_id,
        },
    )
    .await?;
    let (token, created) = match joined {
        Joined::Prequeued { token, created } => (token, created),
        Joined::Drawn { prequeued } => return Ok(Err(prequeued)),
        Joined::NoSale => {
            return Err(flashgate_common::http::Problem::not_found(
                "sale_not_found",
                "no sale with this id",
            )
            .into());
        }
    };
    if created {
        sale.counters.record(Outcome::Prequeued);
        trail::prequeued(ticket, arrival.sale_id, arrival.request_id);
        // What polls read first; the database stays the truth if this is lost.
        let ttl = (expires_at - Utc::now().timestamp()).max(60);
        let marked = MARK_PREQUEUED
            .key(state.redis.keys().ticket(arrival.sale_id, ticket))
            .arg(ttl)
            .invoke_async::<()>(&mut state.redis.conn())
            .await;
        if let Err(e) = marked {
            tracing::debug!(error = %e, "pre-queued ticket not marked in redis");
        }
    }
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(Ok((status, body(token, starts_at))))
}

/// A pre-queued ticket as the shopper sees it.
pub(super) fn body(token: String, starts_at: DateTime<Utc>) -> TicketBody {
    TicketBody {
        ticket: token,
        status: TicketStatus::Prequeued,
        position: None,
        order_id: None,
        payment: None,
        poll_after_ms: poll_after_ms(starts_at, Utc::now()),
        estimated_wait_ms: None,
        waitlisted: false,
        opens_at: Some(starts_at.to_rfc3339()),
        hold_expires_at: None,
    }
}

/// When a pre-queued shopper polls again: just after the opening, spread over two
/// seconds so the whole pre-queue does not ask in the same instant; at most every 30 s.
pub(super) fn poll_after_ms(starts_at: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let until = (starts_at - now).num_milliseconds().max(0) as u64;
    let spread = rand::random_range(250..2_250);
    (until + spread).clamp(1_000, 30_000)
}

/// Draws every sale that opened and publishes drawn tickets, until `shutdown`.
pub(crate) async fn run(state: AppState, shutdown: CancellationToken) {
    loop {
        let wait = match pass(&state).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!(error = ?e, "pre-queue pass failed; retrying");
                Duration::from_secs(1)
            }
        };
        if shutdown
            .run_until_cancelled(tokio::time::sleep(wait))
            .await
            .is_none()
        {
            return;
        }
    }
}

/// One pass: draws what is due, publishes what is drawn; answers how long to wait.
async fn pass(state: &AppState) -> flashgate_common::Result<Duration> {
    let (due, next) = prequeue::due(&state.pool).await?;
    for sale in &due {
        draw(state, sale).await?;
    }
    for sale in prequeue::unpublished_sales(&state.pool).await? {
        publish(state, &sale).await?;
    }
    let until_next = next
        .and_then(|at| (at - Utc::now()).to_std().ok())
        .unwrap_or(TICK);
    Ok(until_next.clamp(Duration::from_millis(5), TICK))
}

async fn draw(state: &AppState, sale: &SaleId) -> flashgate_common::Result<()> {
    let started = std::time::Instant::now();
    let mut tx = state.pool.begin().await?;
    let Some(drawn) = prequeue::draw(&mut tx, sale).await? else {
        return Ok(());
    };
    // Places in Redis before the commit: once the draw is visible, a claim finds the
    // counter past the drawn tickets and a pre-queued customer finds their ticket.
    write_drawn(&state.redis, sale, &drawn).await?;
    prequeue::seal(&mut tx, sale).await?;
    tx.commit().await?;
    tracing::info!(%sale, tickets = drawn.len(), elapsed_ms = started.elapsed().as_millis() as u64, "pre-queue drawn");
    metrics::histogram!("flashgate_prequeue_draw_seconds").record(started.elapsed().as_secs_f64());
    if let Err(e) = state.redis.announce_sale_change(sale).await {
        tracing::warn!(error = ?e, %sale, "draw not announced; doors see it at their next refresh");
    }
    state.sales.reload(sale).await?;
    Ok(())
}

async fn write_drawn(
    redis: &Redis,
    sale: &SaleId,
    drawn: &[DrawnTicket],
) -> redis::RedisResult<()> {
    let keys = redis.keys();
    let mut pipe = redis::pipe();
    pipe.load_script(&WRITE_DRAWN).ignore();
    let total = drawn.len();
    let mut chunks = drawn.chunks(SCRIPT_CHUNK).peekable();
    if chunks.peek().is_none() {
        let mut invocation = WRITE_DRAWN.key(keys.seq(sale));
        invocation.arg(total).arg(redis.ticket_ttl_secs());
        pipe.invoke_script(&invocation).ignore();
    }
    for chunk in chunks {
        let mut invocation = WRITE_DRAWN.key(keys.seq(sale));
        invocation.arg(total).arg(redis.ticket_ttl_secs());
        for ticket in chunk {
            let customer = CustomerId::parse(ticket.customer_id.clone()).map_err(|_| {
                redis::RedisError::from((redis::ErrorKind::Client, "stored customer id invalid"))
            })?;
            invocation
                .key(keys.customer(sale, &customer))
                .key(keys.ticket(sale, ticket.ticket_id))
                .arg(format!("{}|{}", ticket.token, ticket.seq))
                .arg(ticket.seq);
        }
        pipe.invoke_script(&invocation).ignore();
    }
    pipe.query_async::<()>(&mut redis.conn()).await
}

/// Hands a sale's drawn tickets to the broker, first places first, and records each one
/// the broker confirmed; what it did not confirm waits for the next pass.
async fn publish(state: &AppState, sale: &SaleId) -> flashgate_common::Result<()> {
    let handle = state.sales.get(sale).await?;
    loop {
        let mut tx = state.pool.begin().await?;
        let chunk = prequeue::lock_unpublished(&mut tx, sale, PUBLISH_CHUNK).await?;
        if chunk.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let mut tickets = Vec::with_capacity(chunk.len());
        for drawn in &chunk {
            tickets.push(issued(sale, drawn, now)?);
        }
        let outcomes =
            futures_util::future::join_all(tickets.into_iter().map(|t| state.batcher.publish(t)))
                .await;
        let mut confirmed = Vec::with_capacity(chunk.len());
        let mut published = 0;
        for (drawn, outcome) in chunk.iter().zip(&outcomes) {
            if let Ok(outcome) = outcome {
                confirmed.push(drawn.ticket_id);
                published = published.max(outcome.published.unwrap_or(0));
                trail::issued(
                    drawn.ticket_id,
                    sale,
                    drawn.seq,
                    drawn.request_id.as_deref(),
                );
            }
        }
        prequeue::mark_published(&mut tx, &confirmed).await?;
        tx.commit().await?;
        if let Some(handle) = &handle {
            handle.merge_live(None, published);
        }
        if confirmed.len() < chunk.len() {
            return Err(flashgate_common::Error::NotConfirmed(
                "drawn tickets not confirmed by the broker",
            ));
        }
    }
}

fn issued(
    sale: &SaleId,
    drawn: &DrawnTicket,
    now: DateTime<Utc>,
) -> flashgate_common::Result<IssuedTicket> {
    let invalid = |what: &str| flashgate_common::Error::Config(format!("stored {what} invalid"));
    Ok(IssuedTicket {
        ticket_id: drawn.ticket_id,
        sale_id: sale.clone(),
        customer_id: CustomerId::parse(drawn.customer_id.clone())
            .map_err(|_| invalid("customer"))?,
        seq: drawn.seq,
        quantity: Quantity::try_from(i64::from(drawn.quantity)).map_err(|_| invalid("quantity"))?,
        payment_method: drawn
            .payment_method
            .clone()
            .map(PaymentMethodId::parse)
            .transpose()
            .map_err(|_| invalid("payment method"))?,
        issued_at: now,
        request_id: drawn.request_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_queued_shoppers_poll_just_after_the_opening_spread_out() {
        let now = Utc::now();
        let soon = now + chrono::Duration::seconds(5);
        let many: Vec<u64> = (0..200).map(|_| poll_after_ms(soon, now)).collect();
        assert!(
            many.iter().all(|ms| (5_250..7_250).contains(ms)),
            "{many:?}"
        );
        assert!(many.iter().any(|ms| *ms != many[0]), "no spread: {many:?}");
        let far = now + chrono::Duration::hours(2);
        assert_eq!(poll_after_ms(far, now), 30_000);
        assert!(poll_after_ms(now, now) >= 1_000);
    }
}
