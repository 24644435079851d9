//! `flashgate-baseline`: the textbook synchronous checkout that flashgate is measured
//! against, doing the textbook's whole job. Each `POST /checkout` takes its units with a
//! conditional UPDATE of the sale row (which every shopper of the sale queues on), inserts
//! the order and commits; then, still inside the shopper's request, creates and confirms
//! a PaymentIntent with an idempotency key derived from the order; Stripe's webhook
//! (`POST /webhook`, signature checked) fulfils the order. It is written honestly (a
//! connection pool, prepared statements, no needless round trips) so the comparison is
//! fair.
//!
//! It keeps its own tables (`baseline_sales`, `baseline_orders`), created at start, in
//! whatever database it is given; flashgate's schema is never touched.

mod db;
mod http;
mod stripe;

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
    /// Stripe's API (the emulator in the load tests).
    #[arg(
        long,
        env = "BASELINE_STRIPE_URL",
        default_value = "http://127.0.0.1:18121"
    )]
    stripe_url: String,
    /// Stripe secret key.
    #[arg(long, env = "BASELINE_STRIPE_KEY", default_value = "sk_test_baseline")]
    stripe_key: String,
    /// How long a Stripe call may take before the checkout answers 502.
    #[arg(long, env = "BASELINE_STRIPE_TIMEOUT_MS", default_value_t = 10_000)]
    stripe_timeout_ms: u64,
    /// The webhook endpoint's signing secret.
    #[arg(
        long,
        env = "BASELINE_WEBHOOK_SECRET",
        default_value = "whsec_baseline"
    )]
    webhook_secret: String,
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
    let stripe = stripe::Stripe::new(
        &args.stripe_url,
        &args.stripe_key,
        Duration::from_millis(args.stripe_timeout_ms),
    )
    .context("Failed to build the Stripe client")?;
    let state = http::AppState {
        pool,
        stripe,
        webhooks: std::sync::Arc::new(flashgate_webhook::signature::Verifier::new(
            [args.webhook_secret.as_str()],
            300,
        )),
    };
    axum::serve(listener, http::router(state))
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
