//! The baseline's tables and its one transaction per checkout.

use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};

/// What a checkout came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checkout {
    /// The order was written; its id.
    Ordered(i64),
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
    /// Units sold, as the sale row says.
    pub sold: i32,
    /// Orders written.
    pub orders: i64,
    /// Units the orders hold.
    pub ordered_units: i64,
}

/// Creates the tables if they are missing.
pub(crate) async fn create_schema(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS baseline_sales (
             id    TEXT PRIMARY KEY,
             stock INT NOT NULL CHECK (stock >= 0),
             sold  INT NOT NULL DEFAULT 0 CHECK (sold >= 0),
             CHECK (sold <= stock));
         CREATE TABLE IF NOT EXISTS baseline_orders (
             id          BIGSERIAL PRIMARY KEY,
             sale_id     TEXT NOT NULL REFERENCES baseline_sales (id),
             customer_id TEXT NOT NULL,
             quantity    INT NOT NULL CHECK (quantity > 0),
             created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
             UNIQUE (sale_id, customer_id));",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Creates a sale, or resets it (its orders are deleted).
pub(crate) async fn put_sale(pool: &PgPool, sale: &str, stock: i32) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM baseline_orders WHERE sale_id = $1")
        .bind(sale)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO baseline_sales (id, stock) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET stock = EXCLUDED.stock, sold = 0",
    )
    .bind(sale)
    .bind(stock)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The textbook checkout: lock the sale row, check, insert the order, count it, commit.
/// A refusal rolls back explicitly, so the row lock is released before the answer.
pub(crate) async fn checkout(
    pool: &PgPool,
    sale: &str,
    customer: &str,
    quantity: i32,
) -> sqlx::Result<Checkout> {
    let mut tx = pool.begin().await?;
    let outcome = reserve(&mut tx, sale, customer, quantity).await?;
    if matches!(outcome, Checkout::Ordered(_)) {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(outcome)
}

async fn reserve(
    tx: &mut PgConnection,
    sale: &str,
    customer: &str,
    quantity: i32,
) -> sqlx::Result<Checkout> {
    let row = sqlx::query("SELECT stock, sold FROM baseline_sales WHERE id = $1 FOR UPDATE")
        .bind(sale)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else {
        return Ok(Checkout::UnknownSale);
    };
    let (stock, sold): (i32, i32) = (row.try_get(0)?, row.try_get(1)?);
    if stock - sold < quantity {
        return Ok(Checkout::SoldOut);
    }
    let order: Option<i64> = sqlx::query_scalar(
        "INSERT INTO baseline_orders (sale_id, customer_id, quantity) VALUES ($1, $2, $3)
         ON CONFLICT (sale_id, customer_id) DO NOTHING RETURNING id",
    )
    .bind(sale)
    .bind(customer)
    .bind(quantity)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(order) = order else {
        return Ok(Checkout::AlreadyOrdered);
    };
    sqlx::query("UPDATE baseline_sales SET sold = sold + $2 WHERE id = $1")
        .bind(sale)
        .bind(quantity)
        .execute(&mut *tx)
        .await?;
    Ok(Checkout::Ordered(order))
}

/// A sale's terms and its orders' totals, if the sale exists.
pub(crate) async fn sale_state(pool: &PgPool, sale: &str) -> sqlx::Result<Option<SaleState>> {
    let row = sqlx::query(
        "SELECT s.stock, s.sold, count(o.id), COALESCE(sum(o.quantity), 0)::BIGINT
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
        })
    })
    .transpose()
}
