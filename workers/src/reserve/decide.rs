//! Deciding a batch in one transaction, whatever sales it spans: the sale rows are locked
//! once, in id order (so concurrent workers never deadlock, and the conditional terms
//! guard against oversell however many workers there are); tickets already decided are
//! left alone and reported as they stand (a redelivery); the rest are granted in sequence
//! order while units last, and everything is written in bulk with a single commit.

use std::collections::{BTreeMap, HashMap};

use flashgate_common::amqp::messages::IssuedTicket;
use flashgate_common::domain::{OrderStatus, SaleId, SaleTerms, TicketStatus};
use flashgate_common::ledger::reserve::{self, Candidate, LockedSale, Plan};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Result;

/// Where one ticket stands after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketOutcome {
    /// The ticket.
    pub ticket: Uuid,
    /// Its status.
    pub status: TicketStatus,
    /// Its order, if reserved.
    pub order_id: Option<Uuid>,
    /// PaymentIntent, if created already (redelivery).
    pub payment_intent: Option<String>,
    /// Client secret, if the shopper confirms (redelivery).
    pub client_secret: Option<String>,
    /// The order still needs its PaymentIntent.
    pub needs_payment: bool,
}

impl TicketOutcome {
    /// A ticket decided now: reserved with `order`, or `refused`.
    pub fn granted(ticket: Uuid, order: Option<Uuid>, refused: TicketStatus) -> Self {
        Self {
            ticket,
            status: if order.is_some() {
                TicketStatus::Reserved
            } else {
                refused
            },
            order_id: order,
            payment_intent: None,
            client_secret: None,
            needs_payment: order.is_some(),
        }
    }
}

/// One sale's part of a decided batch.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The sale.
    pub sale: SaleId,
    /// Its terms after the commit.
    pub terms: SaleTerms,
    /// One outcome per distinct ticket.
    pub tickets: Vec<TicketOutcome>,
}

/// A decided batch.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Per sale.
    pub sales: Vec<Decided>,
    /// Tickets that can never be decided: their sale does not exist, or the database
    /// refuses them for good.
    pub unknown: Vec<Uuid>,
}

/// Whether a batch looks its tickets up before deciding them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Only if the tickets' primary key refuses one: tickets the broker delivers for the
    /// first time are almost never decided already (a copy the door published twice, a
    /// ticket Redis forgot and the door issued again), and looking up every one of a
    /// batch's thousands costs the database as much as writing their orders.
    OnConflict,
    /// First: some of the batch was delivered before (a redelivery after a worker or
    /// broker failure), so some of it is likely decided.
    First,
}

/// Decides `tickets` and commits. With [`Lookup::OnConflict`] the batch is decided as
/// if every ticket were new; a ticket already decided makes the tickets' insert fail on
/// their primary key before anything is written, and the batch is decided again looking
/// every ticket up first, so one already decided is reported as it stands.
pub async fn decide(pool: &PgPool, tickets: &[IssuedTicket], lookup: Lookup) -> Result<Batch> {
    if lookup == Lookup::OnConflict {
        match decide_once(pool, tickets, false).await {
            Err(crate::Error::Database(e))
                if flashgate_common::db::violated_constraint(&e) == Some("tickets_pkey") =>
            {
                metrics::counter!("flashgate_reserve_batches_decided_again_total").increment(1);
                tracing::info!(
                    tickets = tickets.len(),
                    "a ticket of the batch was decided already: deciding it again, looking every ticket up"
                );
            }
            decided => return decided,
        }
    }
    decide_once(pool, tickets, true).await
}

async fn decide_once(pool: &PgPool, tickets: &[IssuedTicket], look_up: bool) -> Result<Batch> {
    let mut tx = pool.begin().await?;
    let mut sale_ids: Vec<SaleId> = tickets.iter().map(|t| t.sale_id.clone()).collect();
    sale_ids.sort();
    sale_ids.dedup();
    let mut sales = reserve::lock_sales(&mut tx, &sale_ids).await?;
    let locked: BTreeMap<SaleId, SaleTerms> = sales
        .iter()
        .map(|(id, s)| (id.clone(), s.sale.terms))
        .collect();
    let known = if look_up {
        let ids: Vec<Uuid> = tickets.iter().map(|t| t.ticket_id).collect();
        already_decided(&mut tx, &ids).await?
    } else {
        HashMap::new()
    };
    let mut plan = Plan::default();
    let mut outcomes: BTreeMap<SaleId, Vec<TicketOutcome>> = BTreeMap::new();
    let mut unknown = Vec::new();
    let mut issued = Vec::with_capacity(tickets.len());
    let mut sold_out = Vec::new();
    let fresh_sales = fresh_by_sale(tickets, &known);
    let fresh_ids: Vec<SaleId> = fresh_sales.keys().cloned().collect();
    let highest = highest_decided(&mut tx, &fresh_ids).await?;
    let mut overtaken = Vec::new();
    for (sale_id, fresh) in fresh_sales {
        let Some(sale) = sales.get_mut(&sale_id) else {
            unknown.extend(fresh.iter().map(|c| c.ticket_id));
            continue;
        };
        issued.extend(fresh.iter().map(|c| c.issued_at));
        // Tickets decided after one with a later sequence number: FIFO inverted for them.
        let before = highest.get(&sale_id).copied().unwrap_or(0);
        overtaken.push((
            sale_id.clone(),
            fresh.iter().filter(|c| c.seq < before).count(),
        ));
        let waited = super::waitlist::promote(&mut tx, &mut plan, &sale_id, sale).await?;
        let decided = decide_sale(&mut plan, &sale_id, sale, &fresh);
        sold_out.extend(
            fresh
                .iter()
                .zip(&decided)
                .filter(|(_, o)| o.status == TicketStatus::SoldOut)
                .map(|(c, _)| c.issued_at),
        );
        outcomes
            .entry(sale_id)
            .or_default()
            .extend(waited.into_iter().chain(decided));
    }
    let terms = plan.write(&mut tx).await?;
    tx.commit().await?;
    record_queue_times(&issued);
    let now = chrono::Utc::now();
    flashgate_common::telemetry::record_final_answers(
        "sold_out",
        sold_out.into_iter().map(|issued| (issued, now)),
    );
    for (sale, count) in overtaken.into_iter().filter(|(_, n)| *n > 0) {
        metrics::counter!("flashgate_tickets_out_of_sequence_total", "sale" => sale.to_string())
            .increment(count as u64);
    }
    for (sale, outcome) in known.into_values() {
        outcomes.entry(sale).or_default().push(outcome);
    }
    let sales = outcomes
        .into_iter()
        .filter_map(|(sale, tickets)| {
            let terms = terms.get(&sale).or_else(|| locked.get(&sale)).copied()?;
            Some(Decided {
                sale,
                terms,
                tickets,
            })
        })
        .collect();
    Ok(Batch { sales, unknown })
}

/// How long each ticket decided now waited between the door and its decision.
fn record_queue_times(issued: &[chrono::DateTime<chrono::Utc>]) {
    let now = chrono::Utc::now();
    let histogram = metrics::histogram!("flashgate_ticket_queue_seconds");
    for at in issued {
        let waited = (now - *at).num_microseconds().unwrap_or(i64::MAX);
        histogram.record(waited.max(0) as f64 / 1e6);
    }
}

/// The highest sequence number decided so far in each of `sales` (an index probe each).
async fn highest_decided(tx: &mut PgConnection, sales: &[SaleId]) -> Result<HashMap<SaleId, i64>> {
    let rows: Vec<(SaleId, Option<i64>)> = sqlx::query_as(
        "SELECT s.id, (SELECT max(t.seq) FROM tickets t WHERE t.sale_id = s.id)
         FROM unnest($1::text[]) AS s(id)",
    )
    .bind(sales)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(sale, seq)| Some((sale, seq?)))
        .collect())
}

/// Fresh tickets (not decided before), per sale, in sequence order, each once.
fn fresh_by_sale(
    tickets: &[IssuedTicket],
    known: &HashMap<Uuid, (SaleId, TicketOutcome)>,
) -> BTreeMap<SaleId, Vec<Candidate>> {
    let mut fresh: BTreeMap<SaleId, Vec<Candidate>> = BTreeMap::new();
    for ticket in tickets.iter().filter(|t| !known.contains_key(&t.ticket_id)) {
        fresh
            .entry(ticket.sale_id.clone())
            .or_default()
            .push(Candidate::from(ticket));
    }
    for candidates in fresh.values_mut() {
        // Two copies of one ticket (a claim Redis forgot, issued again with a new
        // sequence number) may be anywhere in the batch: keep the earliest.
        candidates.sort_by_key(|c| (c.seq, c.ticket_id));
        let mut seen = std::collections::HashSet::with_capacity(candidates.len());
        candidates.retain(|c| seen.insert(c.ticket_id));
    }
    fresh
}

/// Grants one sale's fresh tickets and records their decisions in `plan`.
fn decide_sale(
    plan: &mut Plan,
    id: &SaleId,
    sale: &mut LockedSale,
    fresh: &[Candidate],
) -> Vec<TicketOutcome> {
    let granted = plan.grant(id, sale, fresh);
    // Holds still outstanding after this batch may expire: a wait-listing sale keeps the
    // tickets that found nothing, rather than telling them sold out.
    let held_after = sale.sale.terms.reserved + (sale.sale.terms.available() - sale.available);
    let refused = if sale.sale.waitlist && held_after > 0 {
        TicketStatus::Waitlisted
    } else {
        TicketStatus::SoldOut
    };
    let decisions: Vec<TicketStatus> = granted
        .iter()
        .map(|o| {
            if o.is_some() {
                TicketStatus::Reserved
            } else {
                refused
            }
        })
        .collect();
    plan.decide(id, fresh, &decisions);
    metrics::counter!("flashgate_sold_out_decisions_total", "sale" => id.to_string())
        .increment(granted.iter().filter(|o| o.is_none()).count() as u64);
    fresh
        .iter()
        .zip(granted)
        .map(|(c, order)| TicketOutcome::granted(c.ticket_id, order, refused))
        .collect()
}

/// Tickets of `ids` already decided, with their sale and where they stand now.
async fn already_decided(
    tx: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, (SaleId, TicketOutcome)>> {
    let rows = sqlx::query!(
        r#"SELECT t.id AS "id!", t.sale_id AS "sale_id!: SaleId", t.decision AS "decision!", o.id AS "order_id?: Uuid",
                  o.status AS "order_status?", o.payment_intent_id, o.client_secret, o.payment_method
           FROM tickets t LEFT JOIN orders o ON o.ticket_id = t.id
           WHERE t.id = ANY($1)"#,
        ids
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let order_status = r.order_status.as_deref().and_then(OrderStatus::parse);
            let status = match (order_status, r.decision.as_str()) {
                (Some(order), _) => order.ticket_status().unwrap_or(TicketStatus::Expired),
                (None, "waitlisted") => TicketStatus::Waitlisted,
                (None, _) => TicketStatus::SoldOut,
            };
            let outcome = TicketOutcome {
                ticket: r.id,
                status,
                order_id: r.order_id,
                payment_intent: r.payment_intent_id,
                client_secret: r.client_secret.filter(|_| r.payment_method.is_none()),
                needs_payment: order_status == Some(OrderStatus::Reserved),
            };
            (r.id, (r.sale_id, outcome))
        })
        .collect())
}
