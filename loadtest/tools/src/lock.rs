//! `lock-bench`: the textbook reservation, measured at the database level. Every ticket
//! is its own transaction: `SELECT … FOR UPDATE` on the sale row, a stock check, an
//! order insert and the counter update, then `COMMIT`; `--clients` connections race
//! for the one hot row. Runs in its own tables (`lt_lock_sales`, `lt_lock_orders`),
//! recreated each time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

/// `lock-bench` options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// PostgreSQL URL.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/flashgate_load"
    )]
    database_url: String,
    /// Reservations to make (each one transaction).
    #[arg(long, default_value_t = 20_000)]
    requests: u64,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 32)]
    clients: u32,
    /// Stop early after this many seconds.
    #[arg(long, default_value_t = 60)]
    max_secs: u64,
}

/// Runs the bench and returns its report.
pub(crate) async fn run(args: Args) -> anyhow::Result<Value> {
    let pool = PgPoolOptions::new()
        .max_connections(args.clients)
        .min_connections(args.clients)
        .connect(&args.database_url)
        .await?;
    prepare(&pool, args.requests).await?;
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            tokio::spawn(client(
                pool.clone(),
                c,
                issued.clone(),
                args.requests,
                deadline,
            ))
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let reserved: i64 = sqlx::query_scalar("SELECT reserved FROM lt_lock_sales WHERE id = 1")
        .fetch_one(&pool)
        .await?;
    Ok(json!({
        "requests": latencies.len(),
        "clients": args.clients,
        "secs": elapsed,
        "per_sec": latencies.len() as f64 / elapsed,
        "reserved_units": reserved,
        "latency": crate::stats::latency(&mut latencies),
    }))
}

async fn prepare(pool: &PgPool, stock: u64) -> sqlx::Result<()> {
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS lt_lock_orders, lt_lock_sales;
         CREATE TABLE lt_lock_sales (id INT PRIMARY KEY, stock BIGINT NOT NULL, reserved BIGINT NOT NULL DEFAULT 0,
                                     CHECK (reserved <= stock));
         CREATE TABLE lt_lock_orders (id BIGSERIAL PRIMARY KEY, sale_id INT NOT NULL REFERENCES lt_lock_sales (id),
                                      customer_id TEXT NOT NULL, quantity INT NOT NULL,
                                      created_at TIMESTAMPTZ NOT NULL DEFAULT now());",
    )
    .execute(pool)
    .await?;
    sqlx::query("INSERT INTO lt_lock_sales (id, stock) VALUES (1, $1)")
        .bind(stock as i64)
        .execute(pool)
        .await?;
    Ok(())
}

async fn client(
    pool: PgPool,
    client: u32,
    issued: Arc<AtomicU64>,
    total: u64,
    deadline: Instant,
) -> sqlx::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let n = issued.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            break;
        }
        let started = Instant::now();
        reserve_one(&pool, &format!("c{client}-{n}")).await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// One textbook reservation of one unit.
async fn reserve_one(pool: &PgPool, customer: &str) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query("SELECT stock, reserved FROM lt_lock_sales WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *tx)
        .await?;
    let (stock, reserved): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if stock - reserved < 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("INSERT INTO lt_lock_orders (sale_id, customer_id, quantity) VALUES (1, $1, 1)")
        .bind(customer)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE lt_lock_sales SET reserved = reserved + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
