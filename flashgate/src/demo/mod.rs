//! `flashgate demo`: a whole flash sale, end to end, in one process: every role, the
//! embedded Stripe emulator, a product and a sale, thousands of simulated shoppers
//! arriving at once (some with declined cards, some confirming in the "browser"), then
//! the invariants checked in PostgreSQL and the emulator, and a printed summary.

mod lanes;
mod report;
mod shopper;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use flashgate_common::Config;
use flashgate_common::config::{AdminToken, RateConfig};
use flashgate_common::domain::SaleId;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::stack::{self, Running};
use crate::verify::{self, Verdict};
use shopper::{Outcome, Payer, Shop};

/// `flashgate demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Units for sale.
    #[arg(long, default_value_t = 500)]
    pub units: i64,
    /// Shoppers arriving at once.
    #[arg(long, default_value_t = 3000)]
    pub shoppers: usize,
    /// Share of shoppers whose card is declined.
    #[arg(long, default_value_t = 0.1)]
    pub decline_share: f64,
    /// Share of shoppers who confirm in the browser with the client secret.
    #[arg(long, default_value_t = 0.3)]
    pub browser_share: f64,
    /// Admission rate (tickets per second).
    #[arg(long, default_value_t = 2000)]
    pub rate: i32,
    /// Admission burst.
    #[arg(long, default_value_t = 500)]
    pub burst: i32,
    /// Turn the wait-list off. With it (the default), units released by declines and
    /// expired holds go to the tickets that found none, in order; without it they go to
    /// whoever arrives next, and may stay unsold once the crowd was answered.
    #[arg(long = "no-waitlist", action = clap::ArgAction::SetFalse)]
    pub waitlist: bool,
    /// Requests the shoppers have in flight at once, sharing that many connections. The
    /// demo serves and shops in one process, so each costs two file descriptors: keep it
    /// well under the open-file limit (`ulimit -n`).
    #[arg(long, default_value_t = 2000)]
    pub connections: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// What the demo saw.
pub struct Summary {
    /// The sale.
    pub sale: String,
    /// One per shopper.
    pub outcomes: Vec<Outcome>,
    /// From the first arrival to the last final status.
    pub elapsed: Duration,
    /// The invariants.
    pub verdict: Verdict,
}

/// Runs the demo.
pub async fn run(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let token = isolate(&mut config);
    let shutdown = CancellationToken::new();
    let running = stack::start_all(config, shutdown.clone()).await?;
    let result = drive(&running, &args, &token).await;
    shutdown.cancel();
    running.wait(shutdown).await?;
    let summary = result?;
    report::print(&summary, &args);
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&report::json(&summary, &args))?,
        )?;
    }
    if !summary.verdict.violations.is_empty() {
        bail!("invariants broken: {:?}", summary.verdict.violations);
    }
    Ok(())
}

/// Its own ports, queues, keys and admin token, so a demo never meets a running
/// deployment. Returns the admin token.
fn isolate(config: &mut Config) -> String {
    for listen in [
        &mut config.admission.listen,
        &mut config.catalog.listen,
        &mut config.webhook.listen,
        &mut config.worker.listen,
    ] {
        listen.set_port(0);
    }
    config.amqp.prefix = "demo.".into();
    config.redis.prefix = "fg-demo:".into();
    // Every simulated shopper comes from 127.0.0.1.
    config.admission.per_address = RateConfig {
        per_second: 0,
        burst: 0,
    };
    config.worker.sweep_interval_ms = 250;
    config.admission.ticket_secret = secrecy::SecretString::from(uuid::Uuid::new_v4().to_string());
    let token = format!("demo-{}", uuid::Uuid::new_v4());
    config.admin_token = AdminToken::new(token.clone());
    token
}

async fn drive(running: &Running, args: &DemoArgs, token: &str) -> anyhow::Result<Summary> {
    let http = reqwest::Client::new();
    wait_ready(&http, running).await?;
    let sale = format!("demo-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    create_sale(&http, running, &sale, args, token).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let outcomes = run_shoppers(running, &sale, args, deadline).await?;
    let issued = outcomes.iter().filter(|o| o.to_ticket.is_some()).count() as i64;
    let verdict = await_verdict(running, &sale, issued, deadline).await?;
    Ok(Summary {
        sale,
        outcomes,
        elapsed: started.elapsed(),
        verdict,
    })
}

async fn wait_ready(http: &reqwest::Client, running: &Running) -> anyhow::Result<()> {
    let a = running.addrs;
    let deadline = Instant::now() + Duration::from_secs(30);
    for addr in [a.admission, a.catalog, a.webhook, a.workers] {
        loop {
            let ready = http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("{addr} did not become ready (are PostgreSQL, Redis and RabbitMQ running?)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

async fn create_sale(
    http: &reqwest::Client,
    running: &Running,
    sale: &str,
    args: &DemoArgs,
    token: &str,
) -> anyhow::Result<()> {
    let bearer = |r: reqwest::RequestBuilder| r.bearer_auth(token);
    let product = json!({ "name": "Flash drop sneaker", "category": "sneakers", "price": 12900, "currency": "eur" });
    let url = format!(
        "http://{}/admin/v1/products/demo-sneaker",
        running.addrs.catalog
    );
    bearer(http.put(url))
        .json(&product)
        .send()
        .await?
        .error_for_status()
        .context("creating the product")?;
    let body = json!({
        "sku": "demo-sneaker", "stock": args.units, "price": 12900, "currency": "eur",
        "hold_seconds": 60, "rate_per_second": args.rate, "burst": args.burst, "waitlist": args.waitlist,
    });
    let url = format!("http://{}/admin/v1/sales/{sale}", running.addrs.admission);
    bearer(http.put(url))
        .json(&body)
        .send()
        .await?
        .error_for_status()
        .context("creating the sale")?;
    Ok(())
}

async fn run_shoppers(
    running: &Running,
    sale: &str,
    args: &DemoArgs,
    deadline: Instant,
) -> anyhow::Result<Vec<Outcome>> {
    let shop = Shop {
        door: format!("http://{}", running.addrs.admission),
        stripe: running.config.stripe.base_url.clone(),
        publishable_key: running.config.stripe.publishable_key.clone(),
        sale: sale.to_owned(),
        lanes: std::sync::Arc::new(lanes::Lanes::new(args.connections)?),
    };
    let tasks: Vec<_> = (0..args.shoppers)
        .map(|i| {
            let payer = payer(i, args);
            tokio::spawn(shopper::shop(
                shop.clone(),
                format!("shopper-{i:05}"),
                payer,
                deadline,
            ))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    Ok(outcomes)
}

fn payer(i: usize, args: &DemoArgs) -> Payer {
    let slot = (i * 7919 % 1000) as f64 / 1000.0;
    if slot < args.decline_share {
        Payer::Declined
    } else if slot < args.decline_share + args.browser_share {
        Payer::Browser
    } else {
        Payer::ServerCard
    }
}

/// Waits until nothing is in flight, then returns the final verdict.
async fn await_verdict(
    running: &Running,
    sale: &str,
    issued: i64,
    deadline: Instant,
) -> anyhow::Result<Verdict> {
    let pool = flashgate_common::db::connect(&running.config.database).await?;
    let sale = SaleId::parse(sale).map_err(|e| anyhow::anyhow!("{e}"))?;
    let stripe = running.addrs.stripe.map(|a| format!("http://{a}"));
    loop {
        let verdict = verify::verify(&pool, &sale, Some(issued), stripe.as_deref()).await?;
        if verdict.in_flight == 0 || Instant::now() > deadline {
            return Ok(verdict);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
