//! `flashgate-baseline`: the textbook synchronous checkout that flashgate is measured
//! against. Each `POST /checkout` locks its sale row with `SELECT … FOR UPDATE`, checks
//! the stock, inserts the order and commits before it answers: one transaction per
//! shopper, all of them queueing on the hot row. It is written honestly (a connection
//! pool, prepared statements, no needless round trips) so the comparison is fair.
//!
//! It keeps its own tables (`baseline_sales`, `baseline_orders`), created at start, in
//! whatever database it is given; flashgate's schema is never touched.

mod db;
mod http;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sqlx::postgres::PgPoolOptions;

/// Command line (every flag also reads an environment variable).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Where to listen.
    #[arg(long, env = "BASELINE_LISTEN", default_value = "127.0.0.1:18090")]
    listen: SocketAddr,
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "BASELINE_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/flashgate_load"
    )]
    database_url: String,
    /// Pooled connections: requests beyond this wait for one (the textbook bound).
    #[arg(long, env = "BASELINE_POOL_SIZE", default_value_t = 32)]
    pool_size: u32,
    /// How long a request waits for a connection before it is answered 503.
    #[arg(long, env = "BASELINE_ACQUIRE_TIMEOUT_MS", default_value_t = 10_000)]
    acquire_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = PgPoolOptions::new()
        .max_connections(args.pool_size)
        .acquire_timeout(Duration::from_millis(args.acquire_timeout_ms))
        .connect(&args.database_url)
        .await
        .context("Failed to connect to PostgreSQL")?;
    db::create_schema(&pool)
        .await
        .context("Failed to create the baseline tables")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("Failed to listen on {}", args.listen))?;
    eprintln!("baseline listening on {}", listener.local_addr()?);
    axum::serve(listener, http::router(pool))
        .with_graceful_shutdown(shutdown())
        .await
        .context("Failed to serve")
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
