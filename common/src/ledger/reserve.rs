//! Reserving units: the sale rows locked for a batch, the plan of what one transaction
//! decides for every sale in it (grants first fit while units last, never more than
//! `available`), and its writing with one bulk statement per table (tickets, orders,
//! sales), however many sales and tickets the batch holds. Also the wait-list's end.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

use super::sales::{COLUMNS, Sale};
use crate::domain::{SaleId, SaleTerms, TicketStatus};

/// A sale locked for the rest of the transaction, with the units this plan has left it.
#[derive(Debug, Clone)]
pub struct LockedSale {
    /// The sale as locked.
    pub sale: Sale,
    /// Units nobody holds, as this plan has left them.
    pub available: i64,
}

/// Locks the sales of `ids`, in id order so that concurrent batches never deadlock.
/// Sales that do not exist are absent from the result.
pub async fn lock_sales(
    tx: &mut PgConnection,
    ids: &[SaleId],
) -> sqlx::Result<BTreeMap<SaleId, LockedSale>> {
    let sales: Vec<Sale> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sales WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    )))
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(sales
        .into_iter()
        .map(|sale| {
            let available = sale.terms.available();
            (sale.id.clone(), LockedSale { sale, available })
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

/// A fresh ticket and the decision it got.
#[derive(Debug, Clone)]
struct Decided {
    sale: SaleId,
    ticket: Candidate,
    decision: TicketStatus,
}

/// An order made for a granted candidate.
#[derive(Debug, Clone)]
struct NewOrder {
    sale: SaleId,
    ticket: Candidate,
    id: Uuid,
    amount: i64,
    currency: String,
    hold_seconds: i32,
}

/// What a plan changes in one sale's row.
#[derive(Debug, Clone, Copy, Default)]
struct SaleDelta {
    /// Units reserved.
    reserved: i32,
    /// Fresh tickets decided.
    decided: i64,
    /// Change in wait-listed tickets.
    waitlisted: i32,
}

impl From<&crate::amqp::messages::IssuedTicket> for Candidate {
    fn from(ticket: &crate::amqp::messages::IssuedTicket) -> Self {
        Self {
            ticket_id: ticket.ticket_id,
            customer_id: ticket.customer_id.to_string(),
            quantity: ticket.quantity.get(),
            payment_method: ticket.payment_method.as_ref().map(ToString::to_string),
            seq: ticket.seq,
            issued_at: ticket.issued_at,
        }
    }
}

/// What one transaction decides, gathered before it is written.
#[derive(Debug, Default)]
pub struct Plan {
    tickets: Vec<Decided>,
    orders: Vec<NewOrder>,
    promoted: Vec<Uuid>,
    deltas: BTreeMap<SaleId, SaleDelta>,
}

impl Plan {
    /// Grants `candidates` of `sale` first fit in the given order while units last; the
    /// order id of each granted candidate, `None` for the others.
    pub fn grant(
        &mut self,
        id: &SaleId,
        sale: &mut LockedSale,
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
            self.orders.push(NewOrder {
                sale: id.clone(),
                ticket: candidate.clone(),
                id: order,
                amount: wanted * sale.sale.price,
                currency: sale.sale.currency.to_string(),
                hold_seconds: sale.sale.hold_seconds,
            });
            self.deltas.entry(id.clone()).or_default().reserved += candidate.quantity;
            granted.push(Some(order));
        }
        granted
    }

    /// Records fresh tickets with their decision; they count as served.
    pub fn decide(&mut self, id: &SaleId, candidates: &[Candidate], decisions: &[TicketStatus]) {
        for (candidate, decision) in candidates.iter().zip(decisions) {
            self.tickets.push(Decided {
                sale: id.clone(),
                ticket: candidate.clone(),
                decision: *decision,
            });
        }
        let waiting = decisions
            .iter()
            .filter(|d| **d == TicketStatus::Waitlisted)
            .count() as i32;
        let delta = self.deltas.entry(id.clone()).or_default();
        delta.decided += candidates.len() as i64;
        delta.waitlisted += waiting;
    }

    /// Records wait-listed tickets of `id` that were just granted a unit.
    pub fn promote(&mut self, id: &SaleId, tickets: impl IntoIterator<Item = Uuid>) {
        let before = self.promoted.len();
        self.promoted.extend(tickets);
        let promoted = (self.promoted.len() - before) as i32;
        self.deltas.entry(id.clone()).or_default().waitlisted -= promoted;
    }

    /// Writes everything; returns each touched sale's new terms.
    pub async fn write(self, tx: &mut PgConnection) -> sqlx::Result<BTreeMap<SaleId, SaleTerms>> {
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

/// Ends a sale's wait-list when no unit is available and none is held (nothing can come
/// back): up to `limit` of its wait-listed tickets, first in line first, are decided
/// `sold_out`. Returns the tickets closed (with when each was issued) and the sale's new
/// terms (`None` when units are still held and the wait-list stays). A long wait-list is
/// closed in several transactions, each holding at most `limit` tickets in memory and the
/// sale's row lock only that long; fewer than `limit` closed means the list is empty.
pub async fn close_waitlist(
    tx: &mut PgConnection,
    id: &SaleId,
    sale: &LockedSale,
    limit: i64,
) -> sqlx::Result<(Vec<(Uuid, DateTime<Utc>)>, Option<SaleTerms>)> {
    if sale.sale.terms.reserved > 0 {
        return Ok((Vec::new(), None));
    }
    let closed: Vec<(Uuid, DateTime<Utc>)> = sqlx::query!(
        r#"UPDATE tickets SET decision = 'sold_out', decided_at = now()
           WHERE decision = 'waitlisted'
             AND id IN (SELECT id FROM tickets WHERE sale_id = $1 AND decision = 'waitlisted'
                        ORDER BY seq LIMIT $2)
           RETURNING id, issued_at"#,
        id.as_str(),
        limit
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.issued_at))
    .collect();
    // The last chunk sets the count to what is left, nothing, whatever it had drifted to.
    let emptied = (closed.len() as i64) < limit;
    let terms = sqlx::query!(
        r#"UPDATE sales SET waitlisted = CASE WHEN $2 THEN 0 ELSE GREATEST(waitlisted - $3, 0) END,
                  version = version + 1, updated_at = now()
           WHERE id = $1
           RETURNING version, stock, reserved, sold, decided, waitlisted"#,
        id.as_str(),
        emptied,
        closed.len() as i32
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((closed, Some(crate::sale_terms!(terms))))
}

mod write;

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(available: i64) -> LockedSale {
        use crate::domain::{Currency, Sku};
        LockedSale {
            available,
            sale: Sale {
                id: SaleId::parse("drop").unwrap(),
                sku: Sku::parse("sku-1").unwrap(),
                price: 1_500,
                currency: Currency::parse("eur").unwrap(),
                starts_at: Utc::now(),
                hold_seconds: 600,
                rate_per_second: 100,
                burst: 100,
                paused: false,
                waitlist: false,
                waitlist_limit: None,
                max_quantity_per_customer: None,
                prequeue_opens_at: None,
                pow_difficulty: 0,
                captcha: false,
                branding: Default::default(),
                fairness: Default::default(),
                terms: SaleTerms::default(),
            },
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
        assert_eq!(plan.deltas[&id].reserved, 3);
        let amounts: Vec<i64> = plan.orders.iter().map(|o| o.amount).collect();
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
