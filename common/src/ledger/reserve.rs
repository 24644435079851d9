//! A reservation plan: what one transaction decides for every sale in a batch, gathered
//! in memory and written with one bulk statement per table (tickets, orders, sales),
//! however many sales and tickets the batch holds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flashgate_common::domain::{SaleId, SaleTerms, TicketStatus};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// A sale row, locked for the rest of the transaction.
#[derive(Debug, Clone)]
pub struct SaleRow {
    /// Units nobody holds, as this plan has left them.
    pub available: i64,
    price: i64,
    currency: String,
    hold_seconds: i32,
    /// The sale keeps a wait-list.
    pub waitlist: bool,
    /// Terms as locked.
    pub terms: SaleTerms,
}

/// Locks the sale rows of `ids`, in id order so that concurrent batches never deadlock.
/// Sales that do not exist are absent from the result.
pub async fn lock_sales(
    tx: &mut PgConnection,
    ids: &[String],
) -> Result<BTreeMap<SaleId, SaleRow>> {
    let rows = sqlx::query!(
        r#"SELECT id, stock, reserved, sold, decided, waitlisted, version, price, currency, hold_seconds, waitlist
           FROM sales WHERE id = ANY($1) ORDER BY id FOR UPDATE"#,
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let terms = flashgate_common::sale_terms!(r);
            let row = SaleRow {
                available: terms.available(),
                price: r.price,
                currency: r.currency,
                hold_seconds: r.hold_seconds,
                waitlist: r.waitlist,
                terms,
            };
            Some((SaleId::parse(r.id).ok()?, row))
        })
        .collect())
}

/// What an order is made from (a fresh ticket, or a wait-listed one being promoted).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The ticket.
    pub ticket_id: Uuid,
    /// Its customer.
    pub customer_id: String,
    /// Units asked for.
    pub quantity: i32,
    /// Payment method, if charged server-side.
    pub payment_method: Option<String>,
    /// Sequence number (fresh tickets only).
    pub seq: i64,
    /// When the door issued it (fresh tickets only).
    pub issued_at: DateTime<Utc>,
}

/// Rows to write, column by column (the shape `UNNEST` wants).
#[derive(Debug, Default)]
pub struct Plan {
    tickets: Vec<(SaleId, Candidate, TicketStatus)>,
    orders: Vec<(SaleId, Candidate, Uuid, i64, String, i32)>,
    promoted: Vec<Uuid>,
    /// Per sale: units reserved, tickets decided, change in wait-listed tickets.
    deltas: BTreeMap<SaleId, (i32, i64, i32)>,
}

impl Plan {
    /// Grants `candidates` of `sale` first fit in the given order while units last; the
    /// order id of each granted candidate, `None` for the others.
    pub fn grant(
        &mut self,
        id: &SaleId,
        sale: &mut SaleRow,
        candidates: &[Candidate],
    ) -> Vec<Option<Uuid>> {
        let mut granted = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let wanted = i64::from(candidate.quantity);
            if wanted > sale.available {
                granted.push(None);
                continue;
            }
            sale.available -= wanted;
            let order = Uuid::now_v7();
            let amount = wanted * sale.price;
            self.orders.push((
                id.clone(),
                candidate.clone(),
                order,
                amount,
                sale.currency.clone(),
                sale.hold_seconds,
            ));
            self.deltas.entry(id.clone()).or_default().0 += candidate.quantity;
            granted.push(Some(order));
        }
        granted
    }

    /// Records fresh tickets with their decision; they count as served.
    pub fn decide(&mut self, id: &SaleId, candidates: &[Candidate], decisions: &[TicketStatus]) {
        for (candidate, decision) in candidates.iter().zip(decisions) {
            self.tickets
                .push((id.clone(), candidate.clone(), *decision));
        }
        let waiting = decisions
            .iter()
            .filter(|d| **d == TicketStatus::Waitlisted)
            .count() as i32;
        let delta = self.deltas.entry(id.clone()).or_default();
        delta.1 += candidates.len() as i64;
        delta.2 += waiting;
    }

    /// Records wait-listed tickets of `id` that were just granted a unit.
    pub fn promote(&mut self, id: &SaleId, tickets: impl IntoIterator<Item = Uuid>) {
        let before = self.promoted.len();
        self.promoted.extend(tickets);
        let promoted = (self.promoted.len() - before) as i32;
        self.deltas.entry(id.clone()).or_default().2 -= promoted;
    }

    /// Writes everything; returns each touched sale's new terms.
    pub async fn write(self, tx: &mut PgConnection) -> Result<BTreeMap<SaleId, SaleTerms>> {
        self.insert_tickets(tx).await?;
        if !self.promoted.is_empty() {
            sqlx::query!(
                "UPDATE tickets SET decision = 'reserved', decided_at = now() WHERE id = ANY($1)",
                &self.promoted
            )
            .execute(&mut *tx)
            .await?;
        }
        self.insert_orders(tx).await?;
        self.update_sales(tx).await
    }
}

mod write;

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(available: i64) -> SaleRow {
        SaleRow {
            available,
            price: 1_500,
            currency: "eur".into(),
            hold_seconds: 600,
            waitlist: false,
            terms: SaleTerms::default(),
        }
    }

    fn candidate(seq: i64, quantity: i32) -> Candidate {
        Candidate {
            ticket_id: Uuid::now_v7(),
            customer_id: format!("c{seq}"),
            quantity,
            payment_method: None,
            seq,
            issued_at: Utc::now(),
        }
    }

    #[test]
    fn grants_first_fit_in_order_and_never_more_than_is_available() {
        let id = SaleId::parse("drop").unwrap();
        let mut row = sale(4);
        let candidates = [
            candidate(1, 2),
            candidate(2, 3),
            candidate(3, 1),
            candidate(4, 2),
        ];
        let mut plan = Plan::default();
        let granted = plan.grant(&id, &mut row, &candidates);
        let shape: Vec<bool> = granted.iter().map(Option::is_some).collect();
        assert_eq!(shape, [true, false, true, false]);
        assert_eq!(row.available, 1);
        assert_eq!(plan.deltas[&id].0, 3);
        let amounts: Vec<i64> = plan.orders.iter().map(|o| o.3).collect();
        assert_eq!(amounts, [3_000, 1_500]);
    }

    #[test]
    fn nothing_available_grants_nothing() {
        let id = SaleId::parse("gone").unwrap();
        let mut row = sale(0);
        let mut plan = Plan::default();
        let granted = plan.grant(&id, &mut row, &[candidate(1, 1)]);
        assert_eq!(granted, [None]);
        assert!(plan.orders.is_empty());
        assert!(!plan.deltas.contains_key(&id));
    }
}
