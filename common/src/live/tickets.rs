//! Ticket status as the shopper polls it: one hash per ticket, written forward-only.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use redis::{Pipeline, Script};
use uuid::Uuid;

use super::Redis;
use crate::Result;
use crate::domain::{SaleId, TicketStatus};

/// Field names of the ticket hash (short: there are millions of these).
pub mod field {
    /// Rank of the stored status ([`crate::domain::TicketStatus::rank`]).
    pub const RANK: &str = "r";
    /// Status wire name.
    pub const STATUS: &str = "s";
    /// Sequence number in the sale's queue.
    pub const SEQ: &str = "n";
    /// Order id, once reserved.
    pub const ORDER: &str = "o";
    /// PaymentIntent id, once created.
    pub const PAYMENT_INTENT: &str = "pi";
    /// Client secret, when the shopper confirms the payment.
    pub const CLIENT_SECRET: &str = "cs";
    /// When the hold on the ticket's unit runs out (Unix milliseconds), while it is held.
    pub const HOLD: &str = "h";
    /// When a shopper last asked for the ticket while its unit was held (Unix
    /// milliseconds): the waiting room's presence.
    pub const SEEN: &str = "a";
    /// Present while no publish of the ticket to the broker has been confirmed (the
    /// door's claim sets it, the confirm clears it).
    pub const PENDING: &str = "p";
    /// Every field, for the check that no two share a name.
    pub const ALL: [&str; 9] = [
        RANK,
        STATUS,
        SEQ,
        ORDER,
        PAYMENT_INTENT,
        CLIENT_SECRET,
        HOLD,
        SEEN,
        PENDING,
    ];
}

/// Records presence on a ticket hash that exists (a lost one is not recreated without
/// its TTL): KEYS[1] the hash, ARGV[1] the time.
static MARK_SEEN: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(&format!(
        r"
        if redis.call('EXISTS', KEYS[1]) == 1 then
            redis.call('HSET', KEYS[1], '{seen}', ARGV[1])
        end
        return 1
        ",
        seen = field::SEEN,
    ))
});

/// Writes each ticket's fields only if its new rank is above the stored one, or the same
/// status again (a duplicate, or the same status with more fields): a late writer never
/// moves a ticket back, and one final status never turns into another of the same rank
/// (`failed` into `expired`). One call per sale and batch: KEYS are the sale's ticket
/// hashes (one hash tag); ARGV is the TTL, then for each ticket its rank, the number of
/// field/value pairs, and the pairs, the status first.
static SET_STATUSES: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| {
    Script::new(
        r"
        local ttl = ARGV[1]
        local i = 2
        for k = 1, #KEYS do
            local rank = tonumber(ARGV[i])
            local pairs = tonumber(ARGV[i + 1])
            local current = tonumber(redis.call('HGET', KEYS[k], 'r') or '-1')
            if rank > current or (rank == current
                    and redis.call('HGET', KEYS[k], 's') == ARGV[i + 3]) then
                redis.call('HSET', KEYS[k], 'r', rank, unpack(ARGV, i + 2, i + 1 + 2 * pairs))
                redis.call('EXPIRE', KEYS[k], ttl)
            end
            i = i + 2 + 2 * pairs
        end
        return 1
        ",
    )
});

/// A status to publish for one ticket, after the commit that decided it.
#[derive(Debug, Clone)]
pub struct StatusUpdate {
    /// The ticket's sale (the hash tag of its key).
    pub sale: SaleId,
    /// The ticket.
    pub ticket: Uuid,
    /// Its new status.
    pub status: TicketStatus,
    /// Its order, once reserved.
    pub order_id: Option<Uuid>,
    /// The PaymentIntent, once created.
    pub payment_intent: Option<String>,
    /// The client secret, when the shopper must confirm.
    pub client_secret: Option<String>,
    /// When the hold runs out, while the unit is held (an extension rewrites it).
    pub hold_expires_at: Option<DateTime<Utc>>,
}

impl StatusUpdate {
    /// A bare status change.
    pub fn new(sale: SaleId, ticket: Uuid, status: TicketStatus) -> Self {
        Self {
            sale,
            ticket,
            status,
            order_id: None,
            payment_intent: None,
            client_secret: None,
            hold_expires_at: None,
        }
    }
}

/// What the poll endpoint reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    /// Current status.
    pub status: TicketStatus,
    /// Sequence number, if known.
    pub seq: Option<i64>,
    /// Order id, once reserved.
    pub order_id: Option<Uuid>,
    /// PaymentIntent id.
    pub payment_intent: Option<String>,
    /// Client secret for the shopper's confirmation.
    pub client_secret: Option<String>,
    /// When the hold runs out, while the unit is held.
    pub hold_expires_at: Option<DateTime<Utc>>,
}

impl StatusUpdate {
    /// The field/value pairs this update writes, the status first (the script reads it).
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![(field::STATUS, self.status.as_str().to_owned())];
        if let Some(order) = self.order_id {
            fields.push((field::ORDER, order.to_string()));
        }
        if let Some(pi) = &self.payment_intent {
            fields.push((field::PAYMENT_INTENT, pi.clone()));
        }
        if let Some(secret) = &self.client_secret {
            fields.push((field::CLIENT_SECRET, secret.clone()));
        }
        if let Some(hold) = self.hold_expires_at {
            fields.push((field::HOLD, hold.timestamp_millis().to_string()));
        }
        fields
    }
}

impl Redis {
    /// Adds the forward-only writes of `updates` to `pipe`: one script call per sale
    /// (load the script first with [`Redis::load_status_script`]).
    pub fn queue_statuses(&self, pipe: &mut Pipeline, updates: &[StatusUpdate]) {
        let mut by_sale: BTreeMap<&SaleId, Vec<&StatusUpdate>> = BTreeMap::new();
        for update in updates {
            by_sale.entry(&update.sale).or_default().push(update);
        }
        for (sale, updates) in by_sale {
            let mut invocation = SET_STATUSES.prepare_invoke();
            invocation.arg(self.ticket_ttl_secs());
            for update in updates {
                let fields = update.fields();
                invocation.key(self.keys().ticket(sale, update.ticket));
                invocation.arg(update.status.rank()).arg(fields.len());
                for (name, value) in fields {
                    invocation.arg(name).arg(value);
                }
            }
            pipe.invoke_script(&invocation).ignore();
        }
    }

    /// Makes sure the status script is cached on the server before a pipeline uses it.
    pub fn load_status_script(&self, pipe: &mut Pipeline) {
        pipe.load_script(&SET_STATUSES).ignore();
    }

    /// Publishes several statuses in one round trip.
    pub async fn write_statuses(&self, updates: &[StatusUpdate]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.load_status_script(&mut pipe);
        self.queue_statuses(&mut pipe, updates);
        pipe.query_async::<()>(&mut self.conn()).await?;
        Ok(())
    }

    /// Records that a shopper asked for `ticket` just now, while its unit is held.
    pub async fn mark_seen(&self, sale: &SaleId, ticket: Uuid, at: DateTime<Utc>) -> Result<()> {
        MARK_SEEN
            .key(self.keys().ticket(sale, ticket))
            .arg(at.timestamp_millis())
            .invoke_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// When each ticket was last asked for while held (`None`: never recorded, or the
    /// ticket's hash is gone), in one round trip.
    pub async fn last_seen(
        &self,
        tickets: &[(SaleId, Uuid)],
    ) -> Result<Vec<Option<DateTime<Utc>>>> {
        if tickets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (sale, ticket) in tickets {
            pipe.hget(self.keys().ticket(sale, *ticket), field::SEEN);
        }
        let seen: Vec<Option<i64>> = pipe.query_async(&mut self.conn()).await?;
        Ok(seen
            .into_iter()
            .map(|ms| ms.and_then(DateTime::from_timestamp_millis))
            .collect())
    }

    /// Reads a ticket and its sale's served position in one round trip.
    pub async fn read_ticket(
        &self,
        sale: &SaleId,
        ticket: Uuid,
    ) -> Result<(Option<TicketView>, Option<i64>)> {
        let (fields, decided): (HashMap<String, String>, Option<i64>) = redis::pipe()
            .hgetall(self.keys().ticket(sale, ticket))
            .hget(self.keys().terms(sale), "decided")
            .query_async(&mut self.conn())
            .await?;
        Ok((parse_view(&fields), decided))
    }
}

fn parse_view(fields: &HashMap<String, String>) -> Option<TicketView> {
    let status = TicketStatus::parse(fields.get(field::STATUS)?)?;
    Some(TicketView {
        status,
        seq: fields.get(field::SEQ).and_then(|s| s.parse().ok()),
        order_id: fields.get(field::ORDER).and_then(|s| s.parse().ok()),
        payment_intent: fields.get(field::PAYMENT_INTENT).cloned(),
        client_secret: fields.get(field::CLIENT_SECRET).cloned(),
        hold_expires_at: fields
            .get(field::HOLD)
            .and_then(|s| s.parse().ok())
            .and_then(DateTime::from_timestamp_millis),
    })
}

#[cfg(test)]
mod field_tests {
    #[test]
    fn no_two_fields_of_the_ticket_hash_share_a_name() {
        let mut names = super::field::ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            super::field::ALL.len(),
            "{:?}",
            super::field::ALL
        );
    }
}
