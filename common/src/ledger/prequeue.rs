//! The pre-queue in PostgreSQL: shoppers who arrive before a sale opens are written here
//! (durably: a pre-queued ticket is a promise), drawn into a random order at the opening
//! ([`crate::fairness`]), and handed to the broker like any ticket.
//!
//! Joining and drawing exclude each other through a transaction-scoped advisory lock per
//! sale: joins take it shared, the draw exclusive. A join that gets the lock after the
//! draw committed sees the sale drawn and is told to claim a ticket the ordinary way
//! (numbered after the drawn ones); one that got it before is in the list the draw reads.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::SaleId;
use crate::fairness::{self, FairnessDocument};

/// A shopper joining a sale's pre-queue.
#[derive(Debug, Clone)]
pub struct Joining<'a> {
    /// The ticket (one per sale and customer).
    pub ticket_id: Uuid,
    /// The sale.
    pub sale_id: &'a SaleId,
    /// The customer.
    pub customer_id: &'a str,
    /// The ticket token handed to the shopper.
    pub token: &'a str,
    /// Units wanted.
    pub quantity: i32,
    /// A saved payment method.
    pub payment_method: Option<&'a str>,
    /// The request that joined, for the trail.
    pub request_id: Option<&'a str>,
}

/// What a join came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// In the pre-queue: the ticket's token, and whether this join put it there.
    Prequeued {
        /// The token of the customer's ticket.
        token: String,
        /// This join created it.
        created: bool,
    },
    /// The sale was drawn meanwhile: claim a ticket numbered after the first `prequeued`.
    Drawn {
        /// Tickets the draw numbered.
        prequeued: i64,
    },
    /// No such sale.
    NoSale,
}

/// A drawn pre-queued ticket, as it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawnTicket {
    /// The ticket.
    pub ticket_id: Uuid,
    /// The customer.
    pub customer_id: String,
    /// The token the shopper holds.
    pub token: String,
    /// Units wanted.
    pub quantity: i32,
    /// A saved payment method.
    pub payment_method: Option<String>,
    /// The request that joined.
    pub request_id: Option<String>,
    /// Its place in the sale's queue.
    pub seq: i64,
}

fn lock_key(sale: &SaleId) -> String {
    format!("flashgate:prequeue:{sale}")
}

/// Joins the pre-queue, or says the sale has been drawn (or is gone).
pub async fn join(db: &PgPool, joining: &Joining<'_>) -> sqlx::Result<Joined> {
    let mut tx = db.begin().await?;
    let sale = joining.sale_id.as_str();
    sqlx::query!(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0))",
        lock_key(joining.sale_id)
    )
    .execute(&mut *tx)
    .await?;
    let Some(state) = sqlx::query!(
        r#"SELECT drawn_at IS NOT NULL AS "drawn!", prequeued FROM sales WHERE id = $1"#,
        sale
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Joined::NoSale);
    };
    if state.drawn {
        return Ok(Joined::Drawn {
            prequeued: i64::from(state.prequeued),
        });
    }
    let inserted = sqlx::query_scalar!(
        "INSERT INTO prequeue (ticket_id, sale_id, customer_id, token, quantity, payment_method, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (ticket_id) DO NOTHING
         RETURNING token",
        joining.ticket_id,
        sale,
        joining.customer_id,
        joining.token,
        joining.quantity,
        joining.payment_method,
        joining.request_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let joined = match inserted {
        Some(token) => Joined::Prequeued {
            token,
            created: true,
        },
        None => Joined::Prequeued {
            token: sqlx::query_scalar!(
                "SELECT token FROM prequeue WHERE ticket_id = $1",
                joining.ticket_id
            )
            .fetch_one(&mut *tx)
            .await?,
            created: false,
        },
    };
    tx.commit().await?;
    Ok(joined)
}

/// Where a pre-queued ticket stands: `None` if it is not in the pre-queue, `Some(None)`
/// while it waits for the draw, `Some(Some(seq))` once drawn.
pub async fn place(db: &PgPool, ticket: Uuid) -> sqlx::Result<Option<Option<i64>>> {
    sqlx::query_scalar!("SELECT seq FROM prequeue WHERE ticket_id = $1", ticket)
        .fetch_optional(db)
        .await
}

/// Sales past their opening whose pre-queue is not drawn, and when the next one opens.
pub async fn due(db: &PgPool) -> sqlx::Result<(Vec<SaleId>, Option<DateTime<Utc>>)> {
    let rows = sqlx::query!(
        "SELECT id, starts_at FROM sales WHERE drawn_at IS NULL ORDER BY starts_at LIMIT 64"
    )
    .fetch_all(db)
    .await?;
    let now = Utc::now();
    let next = rows.iter().map(|r| r.starts_at).find(|at| *at > now);
    let due = rows
        .into_iter()
        .filter(|r| r.starts_at <= now)
        .filter_map(|r| SaleId::parse(r.id).ok())
        .collect();
    Ok((due, next))
}

/// Draws a sale's pre-queue inside `tx` (the caller [`seal`]s it and commits, once what
/// depends on the numbers is in place): seals the list of tickets that arrived before the opening,
/// numbers them in the order the seed gives, then those that arrived since in arrival
/// order. `None` if the sale is not due (not open yet, already drawn, or gone).
pub async fn draw(tx: &mut PgConnection, sale: &SaleId) -> sqlx::Result<Option<Vec<DrawnTicket>>> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        lock_key(sale)
    )
    .execute(&mut *tx)
    .await?;
    let Some(row) = sqlx::query!(
        r#"SELECT fairness_seed, starts_at FROM sales
           WHERE id = $1 AND drawn_at IS NULL AND starts_at <= now() FOR UPDATE"#,
        sale.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let seed = row.fairness_seed.unwrap_or_default();
    let rows = sqlx::query!(
        "SELECT ticket_id, customer_id, token, quantity, payment_method, request_id, arrived_at
         FROM prequeue WHERE sale_id = $1 ORDER BY arrived_at, ticket_id",
        sale.as_str()
    )
    .fetch_all(&mut *tx)
    .await?;
    let (early, late): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|r| r.arrived_at < row.starts_at);
    let sealed: Vec<Uuid> = early.iter().map(|r| r.ticket_id).collect();
    let mut by_id: std::collections::HashMap<Uuid, _> =
        early.into_iter().map(|r| (r.ticket_id, r)).collect();
    let order = fairness::draw(&seed, &sealed);
    let drawn: Vec<DrawnTicket> = order
        .iter()
        .filter_map(|id| by_id.remove(id))
        .chain(late)
        .enumerate()
        .map(|(i, r)| DrawnTicket {
            ticket_id: r.ticket_id,
            customer_id: r.customer_id,
            token: r.token,
            quantity: r.quantity,
            payment_method: r.payment_method,
            request_id: r.request_id,
            seq: i as i64 + 1,
        })
        .collect();
    let ids: Vec<Uuid> = drawn.iter().map(|d| d.ticket_id).collect();
    let seqs: Vec<i64> = drawn.iter().map(|d| d.seq).collect();
    sqlx::query!(
        "UPDATE prequeue p SET seq = d.seq
         FROM unnest($1::uuid[], $2::int8[]) AS d(id, seq) WHERE p.ticket_id = d.id",
        &ids,
        &seqs
    )
    .execute(&mut *tx)
    .await?;
    let digest = fairness::digest(&sealed);
    sqlx::query!(
        "UPDATE sales SET prequeue_digest = $2, prequeued = $3, prequeue_sealed = $4, updated_at = now()
         WHERE id = $1",
        sale.as_str(),
        digest.as_slice(),
        drawn.len() as i32,
        sealed.len() as i32
    )
    .execute(&mut *tx)
    .await?;
    Ok(Some(drawn))
}

/// Marks a drawn sale drawn, at the moment of the call (just before the caller commits,
/// once the places are where shoppers read them): arrivals claim after the drawn
/// tickets from then on, and the seed is revealed.
pub async fn seal(tx: &mut PgConnection, sale: &SaleId) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sales SET drawn_at = clock_timestamp() WHERE id = $1",
        sale.as_str()
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Sales with drawn tickets the broker has not confirmed yet.
pub async fn unpublished_sales(db: &PgPool) -> sqlx::Result<Vec<SaleId>> {
    let ids = sqlx::query_scalar!(
        "SELECT DISTINCT sale_id FROM prequeue WHERE seq IS NOT NULL AND NOT published"
    )
    .fetch_all(db)
    .await?;
    Ok(ids
        .into_iter()
        .filter_map(|id| SaleId::parse(id).ok())
        .collect())
}

/// Locks up to `limit` drawn, unpublished tickets of a sale, first places first (rows
/// another door is publishing are skipped).
pub async fn lock_unpublished(
    tx: &mut PgConnection,
    sale: &SaleId,
    limit: i64,
) -> sqlx::Result<Vec<DrawnTicket>> {
    sqlx::query_as!(
        DrawnTicket,
        r#"SELECT ticket_id, customer_id, token, quantity, payment_method, request_id, seq AS "seq!"
           FROM prequeue WHERE sale_id = $1 AND seq IS NOT NULL AND NOT published
           ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED"#,
        sale.as_str(),
        limit
    )
    .fetch_all(&mut *tx)
    .await
}

/// Records tickets the broker confirmed.
pub async fn mark_published(tx: &mut PgConnection, tickets: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE prequeue SET published = true WHERE ticket_id = ANY($1)",
        tickets
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The sale's fairness document: the commitment, and once drawn the seed, the sealed
/// list and the order drawn. `None` if there is no such sale.
pub async fn document(db: &PgPool, sale: &SaleId) -> sqlx::Result<Option<FairnessDocument>> {
    let Some(row) = sqlx::query!(
        r#"SELECT fairness_commitment, drawn_at, prequeue_digest, prequeue_sealed,
                  CASE WHEN drawn_at IS NULL THEN NULL ELSE fairness_seed END AS seed
           FROM sales WHERE id = $1"#,
        sale.as_str()
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let order = match row.drawn_at {
        Some(_) => {
            sqlx::query_scalar!(
                "SELECT ticket_id FROM prequeue WHERE sale_id = $1 AND seq <= $2 ORDER BY seq",
                sale.as_str(),
                i64::from(row.prequeue_sealed)
            )
            .fetch_all(db)
            .await?
        }
        None => Vec::new(),
    };
    let mut tickets = order.clone();
    tickets.sort_unstable();
    Ok(Some(FairnessDocument {
        sale_id: sale.to_string(),
        commitment: row.fairness_commitment.map(hex::encode).unwrap_or_default(),
        seed: row.seed.map(hex::encode),
        digest: row.prequeue_digest.map(hex::encode),
        drawn_at: row.drawn_at,
        tickets,
        order,
    }))
}
