//! Announcing committed ledger changes: a trail line for each (the log a ticket's id
//! finds), and their statuses and terms to Redis, so polls and the door see them.

use std::collections::BTreeMap;

use sqlx::PgPool;

use super::unpublished::Owed;
use super::{Change, OrderRef};
use crate::Result;
use crate::domain::{SaleId, SaleTerms};
use crate::live::Redis;
use crate::live::tickets::StatusUpdate;

impl OrderRef {
    /// The ticket status this order shows, if it shows one.
    pub fn status_update(&self) -> Option<StatusUpdate> {
        Some(StatusUpdate {
            sale: self.sale_id.clone(),
            ticket: self.ticket_id,
            status: self.status.ticket_status()?,
            order_id: Some(self.id),
            payment_intent: self.payment_intent_id.clone(),
            client_secret: None,
            hold_expires_at: None,
        })
    }
}

/// Logs one trail line per change (`step` says what moved it), then writes the statuses
/// and the newest terms of each sale in one round trip, and settles what the changes'
/// transaction `owed`. If Redis does not take them, the statuses' tickets are kept for
/// the sweep ([`super::unpublished`]; the door re-reads the terms from PostgreSQL by
/// itself); fails only if PostgreSQL refused that too.
pub async fn publish_changes(
    pool: &PgPool,
    redis: &Redis,
    step: &'static str,
    changes: &[Change],
    owed: Owed,
) -> Result<()> {
    for change in changes {
        crate::trail::order(step, &change.order);
    }
    let statuses: Vec<StatusUpdate> = changes
        .iter()
        .filter_map(|c| c.order.status_update())
        .collect();
    let mut newest: BTreeMap<&SaleId, &SaleTerms> = BTreeMap::new();
    for change in changes {
        if let Some(terms) = &change.terms {
            let slot = newest.entry(&change.order.sale_id).or_insert(terms);
            if terms.version > slot.version {
                *slot = terms;
            }
        }
    }
    let mut pipe = redis::pipe();
    redis.load_status_script(&mut pipe);
    redis.queue_statuses(&mut pipe, &statuses);
    for (sale, terms) in newest {
        redis.queue_terms(&mut pipe, sale, terms);
    }
    match pipe.query_async::<()>(&mut redis.conn()).await {
        Ok(()) => super::unpublished::settle(pool, owed).await,
        Err(e) => super::unpublished::keep(pool, &statuses, e.into()).await,
    }
}
