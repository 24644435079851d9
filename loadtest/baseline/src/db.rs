//! The baseline's tables and its transactions: the reservation (a conditional UPDATE of
//! the sale row and the order, one transaction per shopper, all of them queueing on the
//! hot row), then what the payment and the webhook say.

use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

/// What a reservation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reservation {
    /// The order was written and its units counted sold.
    Ordered {
        /// The order.
        id: i64,
        /// What to charge, in minor units.
        amount: i64,
        /// In this currency.
        currency: String,
    },
    /// This customer already ordered in this sale.
    AlreadyOrdered,
    /// Not enough units left.
    SoldOut,
    /// No such sale.
    UnknownSale,
}

/// A sale's terms and what its orders add up to (they must agree: no oversell).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SaleState {
    /// Units for sale.
    pub stock: i32,
    /// Units sold (held by an order not failed), as the sale row says.
    pub sold: i32,
    /// Orders written, failed ones included.
    pub orders: i64,
    /// Units the orders that did not fail hold.
    pub ordered_units: i64,
    /// Orders the webhook fulfilled.
    pub paid: i64,
    /// Orders whose payment failed (their units went back).
    pub failed: i64,
    /// Orders still waiting for Stripe's word (a charge that got no answer, or a webhook
    /// not yet arrived).
    pub pending: i64,
}

/// Creates the tables if they are missing (and adds the payment columns to older ones).
pub(crate) async fn create_schema(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS baseline_sales (
             id    TEXT PRIMARY KEY,
             stock INT NOT NULL CHECK (stock >= 0),
             sold  INT NOT NULL DEFAULT 0 CHECK (sold >= 0),
             CHECK (sold <= stock));
         ALTER TABLE baseline_sales ADD COLUMN IF NOT EXISTS price BIGINT NOT NULL DEFAULT 4900;
         ALTER TABLE baseline_sales ADD COLUMN IF NOT EXISTS currency TEXT NOT NULL DEFAULT 'eur';
         CREATE TABLE IF NOT EXISTS baseline_orders (
             id          BIGSERIAL PRIMARY KEY,
             sale_id     TEXT NOT NULL REFERENCES baseline_sales (id),
             customer_id TEXT NOT NULL,
             quantity    INT NOT NULL CHECK (quantity > 0),
             created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
             UNIQUE (sale_id, customer_id));
         ALTER TABLE baseline_orders ADD COLUMN IF NOT EXISTS status TEXT NOT NULL DEFAULT 'pending'
             CHECK (status IN ('pending', 'paid', 'failed'));
         ALTER TABLE baseline_orders ADD COLUMN IF NOT EXISTS payment_intent_id TEXT;",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Creates a sale, or resets it (its orders are deleted).
pub(crate) async fn put_sale(
    pool: &PgPool,
    sale: &str,
    stock: i32,
    price: i64,
    currency: &str,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM baseline_orders WHERE sale_id = $1")
        .bind(sale)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO baseline_sales (id, stock, price, currency) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET stock = EXCLUDED.stock, sold = 0,
             price = EXCLUDED.price, currency = EXCLUDED.currency",
    )
    .bind(sale)
    .bind(stock)
    .bind(price)
    .bind(currency)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The textbook reservation: take the units with a conditional UPDATE (which locks the
/// sale row until commit), insert the order, commit. A refusal rolls back explicitly, so
/// the row lock is released before the answer.
pub(crate) async fn reserve(
    pool: &PgPool,
    sale: &str,
    customer: &str,
    quantity: i32,
) -> sqlx::Result<Reservation> {
    let mut tx = pool.begin().await?;
    let outcome = take_units(&mut tx, sale, customer, quantity).await?;
    if matches!(outcome, Reservation::Ordered { .. }) {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(outcome)
}

async fn take_units(
    tx: &mut PgConnection,
    sale: &str,
    customer: &str,
    quantity: i32,
) -> sqlx::Result<Reservation> {
    let taken = sqlx::query(
        "UPDATE baseline_sales SET sold = sold + $2 WHERE id = $1 AND stock - sold >= $2
         RETURNING price, currency",
    )
    .bind(sale)
    .bind(quantity)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(taken) = taken else {
        let exists = sqlx::query("SELECT 1 FROM baseline_sales WHERE id = $1")
            .bind(sale)
            .fetch_optional(&mut *tx)
            .await?;
        return Ok(if exists.is_some() {
            Reservation::SoldOut
        } else {
            Reservation::UnknownSale
        });
    };
    let (price, currency): (i64, String) = (taken.try_get(0)?, taken.try_get(1)?);
    let order: Option<i64> = sqlx::query_scalar(
        "INSERT INTO baseline_orders (sale_id, customer_id, quantity) VALUES ($1, $2, $3)
         ON CONFLICT (sale_id, customer_id) DO NOTHING RETURNING id",
    )
    .bind(sale)
    .bind(customer)
    .bind(quantity)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match order {
        Some(id) => Reservation::Ordered {
            id,
            amount: price * i64::from(quantity),
            currency,
        },
        None => Reservation::AlreadyOrdered,
    })
}

/// Stores the order's PaymentIntent.
pub(crate) async fn store_intent(pool: &PgPool, order: i64, intent: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE baseline_orders SET payment_intent_id = $2 WHERE id = $1")
        .bind(order)
        .bind(intent)
        .execute(pool)
        .await?;
    Ok(())
}

/// The webhook's word that the order is paid (once; a duplicate changes nothing).
pub(crate) async fn mark_paid(pool: &PgPool, order: i64, intent: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE baseline_orders SET status = 'paid', payment_intent_id = $2
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(order)
    .bind(intent)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The payment failed: the order fails and its units go back (once).
pub(crate) async fn mark_failed(pool: &PgPool, order: i64) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let failed = sqlx::query(
        "UPDATE baseline_orders SET status = 'failed' WHERE id = $1 AND status = 'pending'
         RETURNING sale_id, quantity",
    )
    .bind(order)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(failed) = failed else {
        return Ok(false);
    };
    let (sale, quantity): (String, i32) = (failed.try_get(0)?, failed.try_get(1)?);
    sqlx::query("UPDATE baseline_sales SET sold = sold - $2 WHERE id = $1")
        .bind(sale)
        .bind(quantity)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// A sale's terms and its orders' totals, if the sale exists.
pub(crate) async fn sale_state(pool: &PgPool, sale: &str) -> sqlx::Result<Option<SaleState>> {
    let row = sqlx::query(
        "SELECT s.stock, s.sold, count(o.id),
                COALESCE(sum(o.quantity) FILTER (WHERE o.status <> 'failed'), 0)::BIGINT,
                count(o.id) FILTER (WHERE o.status = 'paid'),
                count(o.id) FILTER (WHERE o.status = 'failed'),
                count(o.id) FILTER (WHERE o.status = 'pending')
         FROM baseline_sales s LEFT JOIN baseline_orders o ON o.sale_id = s.id
         WHERE s.id = $1 GROUP BY s.stock, s.sold",
    )
    .bind(sale)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(SaleState {
            stock: r.try_get(0)?,
            sold: r.try_get(1)?,
            orders: r.try_get(2)?,
            ordered_units: r.try_get(3)?,
            paid: r.try_get(4)?,
            failed: r.try_get(5)?,
            pending: r.try_get(6)?,
        })
    })
    .transpose()
}
