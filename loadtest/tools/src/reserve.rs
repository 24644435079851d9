//! `reserve-bench`: how fast the reservation worker decides a queue that is already full.
//!
//! 1. Creates `--sales` sales (stock enough for every ticket, holds of a day) and purges
//!    the queues of this prefix.
//! 2. With no worker running, publishes `--tickets` tickets (quantity 1, round-robin over
//!    the sales, in sequence order) with publisher confirms, `--per-message` to a message
//!    as the door's group commit packs them (1: every ticket its own message).
//! 3. Starts `flashgate worker` and watches `sum(sales.decided)`; the drain rate is counted
//!    from the first decision to the last, so process start-up is left out.
//!
//! The worker's payments are parked (its Stripe URL points at a closed port, one payment
//! at a time), so the number is the reservation path alone.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use flashgate_common::amqp::messages::{IssuedTicket, TicketMessage};
use flashgate_common::amqp::{Amqp, Publisher};
use flashgate_common::domain::{CustomerId, Quantity, SaleId};
use flashgate_common::{Config, db};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::worker::Worker;

/// `reserve-bench` options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Tickets to preload and drain.
    #[arg(long, default_value_t = 20_000)]
    tickets: usize,
    /// Sales the tickets are spread over (1 = a single hot sale).
    #[arg(long, default_value_t = 1)]
    sales: usize,
    /// Tickets per message (the door packs what arrives while earlier publishes await
    /// their confirms, up to `admission.publish_batch_max`).
    #[arg(long, default_value_t = 1)]
    per_message: usize,
    /// Publishes in flight at once while preloading.
    #[arg(long, default_value_t = 512)]
    in_flight: usize,
    /// Health address of the worker this starts.
    #[arg(long, default_value = "127.0.0.1:18093")]
    worker_listen: String,
    /// The worker's log file.
    #[arg(long, default_value = "/dev/null")]
    worker_log: std::path::PathBuf,
    /// Give up after this many seconds of draining.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    #[command(flatten)]
    binary: crate::Binary,
}

/// Runs the bench and returns its report.
pub(crate) async fn run(config: Config, args: Args) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.tickets > 0 && args.sales > 0 && args.per_message > 0,
        "tickets, sales and per-message must be > 0"
    );
    let pool = db::connect(&config.database).await?;
    let sales = create_sales(&pool, &args).await?;
    let amqp = Amqp::new(&config.amqp)?;
    // A clean queue: leftovers of an interrupted run would be counted otherwise.
    amqp.declare_topology().await?;
    amqp.delete_topology().await?;
    amqp.declare_topology().await?;
    let started = Instant::now();
    publish(&amqp, &sales, &args).await?;
    let preload = started.elapsed();
    let worker = Worker::start(
        &args.binary.flashgate,
        &args.worker_listen,
        &args.worker_log,
    )?;
    let drained = drain(
        &pool,
        &sales,
        args.tickets as i64,
        args.timeout_secs,
        &worker,
    )
    .await;
    worker.stop().await?;
    let drain = drained?;
    let reserved: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(reserved), 0)::BIGINT FROM sales WHERE id = ANY($1)",
    )
    .bind(&sales)
    .fetch_one(&pool)
    .await?;
    amqp.delete_topology().await.ok();
    Ok(json!({
        "tickets": args.tickets,
        "sales": args.sales,
        "per_message": args.per_message,
        "preload_secs": preload.as_secs_f64(),
        "publish_per_sec": args.tickets as f64 / preload.as_secs_f64(),
        "reserved_units": reserved,
        "drain": drain,
    }))
}

async fn create_sales(pool: &PgPool, args: &Args) -> anyhow::Result<Vec<String>> {
    let tag = format!(
        "rb{}x{}",
        args.sales,
        chrono::Utc::now().timestamp() % 1_000_000
    );
    sqlx::query(
        "INSERT INTO products (sku, name, price, currency) VALUES ('lt-reserve', 'Reserve bench', 1000, 'eur')
         ON CONFLICT (sku) DO NOTHING",
    )
    .execute(pool)
    .await?;
    let ids: Vec<String> = (0..args.sales).map(|i| format!("{tag}-{i:03}")).collect();
    let stock = i32::try_from(args.tickets.div_ceil(args.sales)).context("too many tickets")?;
    sqlx::query(
        "INSERT INTO sales (id, sku, stock, price, currency, hold_seconds, rate_per_second, burst)
         SELECT id, 'lt-reserve', $2, 1000, 'eur', 86400, 1000000, 1000000 FROM UNNEST($1::text[]) AS id",
    )
    .bind(&ids)
    .bind(stock)
    .execute(pool)
    .await
    .context("creating the bench sales (has flashgate's schema changed?)")?;
    Ok(ids)
}

fn ticket(sales: &[String], i: usize) -> anyhow::Result<IssuedTicket> {
    let sale = &sales[i % sales.len()];
    Ok(IssuedTicket {
        ticket_id: uuid::Uuid::now_v7(),
        sale_id: SaleId::parse(sale.as_str())?,
        customer_id: CustomerId::parse(format!("rb-{i}"))?,
        seq: (i / sales.len() + 1) as i64,
        quantity: Quantity::parse(1, 1)?,
        payment_method: None,
        issued_at: chrono::Utc::now(),
        request_id: None,
    })
}

async fn publish(amqp: &Amqp, sales: &[String], args: &Args) -> anyhow::Result<()> {
    let publisher = Publisher::new(amqp.clone());
    let queue = amqp.topology().tickets();
    let messages =
        (0..args.tickets)
            .step_by(args.per_message)
            .map(|first| -> anyhow::Result<TicketMessage> {
                let last = (first + args.per_message).min(args.tickets);
                let tickets = (first..last)
                    .map(|i| ticket(sales, i))
                    .collect::<anyhow::Result<_>>()?;
                Ok(TicketMessage::of(tickets))
            });
    futures_util::stream::iter(messages)
        .map(|message| {
            let (publisher, queue) = (publisher.clone(), queue.clone());
            async move {
                let message = message?;
                let id = uuid::Uuid::now_v7().to_string();
                // Marked with its ticket count, as the door marks its messages.
                let properties = flashgate_common::amqp::with_ticket_count(
                    flashgate_common::amqp::message_properties(&id, None),
                    message_len(&message),
                );
                let payload = serde_json::to_vec(&message)?;
                publisher
                    .publish("", &queue, &payload, properties)
                    .await
                    .context("publishing tickets")
            }
        })
        .buffer_unordered(args.in_flight)
        .try_collect::<()>()
        .await
}

/// How many tickets a message carries.
fn message_len(message: &TicketMessage) -> usize {
    match message {
        TicketMessage::Issued(_) => 1,
        TicketMessage::Batch { tickets } => tickets.len(),
    }
}

/// Waits until `target` tickets are decided; the rate (and the worker's CPU) runs from
/// the first decision seen.
async fn drain(
    pool: &PgPool,
    sales: &[String],
    target: i64,
    timeout: u64,
    worker: &Worker,
) -> anyhow::Result<Value> {
    let spawned = Instant::now();
    let deadline = spawned + Duration::from_secs(timeout);
    let mut first: Option<(Instant, i64, f64)> = None;
    loop {
        let decided: i64 = sqlx::query_scalar(
            "SELECT COALESCE(sum(decided), 0)::BIGINT FROM sales WHERE id = ANY($1)",
        )
        .bind(sales)
        .fetch_one(pool)
        .await?;
        let now = Instant::now();
        if decided > 0 && first.is_none() {
            first = Some((now, decided, worker.cpu_secs().unwrap_or(0.0)));
        }
        if decided >= target {
            let (t0, d0, cpu0) = first.unwrap_or((now, decided, 0.0));
            let steady = now.duration_since(t0).as_secs_f64();
            let cpu = worker.cpu_secs().unwrap_or(0.0) - cpu0;
            return Ok(json!({
                "decided": decided,
                "secs_from_first_decision": steady,
                "secs_from_worker_start": now.duration_since(spawned).as_secs_f64(),
                "per_sec": if steady > 0.0 { (decided - d0) as f64 / steady } else { 0.0 },
                "per_sec_including_start": decided as f64 / now.duration_since(spawned).as_secs_f64(),
                "worker_cpu_secs": cpu,
                "worker_cpu_us_per_ticket": cpu / ((decided - d0).max(1) as f64) * 1e6,
                "worker_peak_rss_mb": worker.peak_rss_mb(),
            }));
        }
        if now > deadline {
            bail!("only {decided} of {target} tickets decided after {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
