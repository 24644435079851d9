//! Operator commands: seed, admin, dead letters, reconciliation.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use flashgate_admission::admin::{self, AdmissionChange, SaleInput};
use flashgate_catalog::ProductInput;
use flashgate_common::amqp::Amqp;
use flashgate_common::domain::{Category, SaleId, Sku};
use flashgate_common::live::Redis;
use flashgate_common::{Config, db};
use sqlx::PgPool;

use crate::cli::{AdminCommand, DlqCommand, ReconcileArgs, SaleArgs, SeedArgs};

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    )
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn sale_id(raw: &str) -> anyhow::Result<SaleId> {
    SaleId::parse(raw).map_err(|e| anyhow::anyhow!("{e}"))
}

const CATEGORIES: [&str; 4] = ["sneakers", "hoodies", "caps", "bags"];

/// `flashgate seed`: demo products and a sale on the first one.
pub async fn seed(config: &Config, args: &SeedArgs) -> anyhow::Result<()> {
    crate::stack::migrate(config).await?;
    let pool = db::connect(&config.database).await?;
    let redis = Redis::connect(&config.redis)?;
    for i in 0..args.products.max(1) {
        let sku = Sku::parse(format!("fg-{i:04}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let input = ProductInput {
            name: format!("Limited drop #{i}"),
            description: "A flash-sale item.".into(),
            category: Category::parse(CATEGORIES[i % CATEGORIES.len()]).ok(),
            price: 4900 + (i as i64 % 10) * 1000,
            currency: "eur".into(),
            attributes: serde_json::json!({ "edition": i }),
            images: serde_json::json!([format!("https://img.example/fg-{i:04}.jpg")]),
        };
        flashgate_catalog::upsert_product(&pool, &sku, &input, "eur").await?;
        redis.announce_product_change(&sku).await.ok();
    }
    let input = SaleInput {
        sku: Sku::parse("fg-0000").map_err(|e| anyhow::anyhow!("{e}"))?,
        stock: args.stock,
        price: 4900,
        currency: "eur".into(),
        starts_at: None,
        hold_seconds: Some(120),
        rate_per_second: 2000,
        burst: 1000,
        paused: None,
        waitlist: None,
        waitlist_limit: None,
    };
    let (_, sale) = admin::upsert_sale(&pool, &redis, &actor(), &sale_id(&args.sale)?, input)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "seeded {} products and sale {:?} ({} units)",
        args.products,
        sale.id.as_str(),
        sale.terms.stock
    );
    Ok(())
}

/// `flashgate admin …`.
pub async fn admin(config: &Config, command: AdminCommand) -> anyhow::Result<()> {
    let pool = db::connect(&config.database).await?;
    let redis = Redis::connect(&config.redis)?;
    let change = |rate_per_second, burst, paused| AdmissionChange {
        rate_per_second,
        burst,
        paused,
        waitlist: None,
    };
    match command {
        AdminCommand::Sale(args) => {
            let (created, doc) = admin::upsert_sale(
                &pool,
                &redis,
                &actor(),
                &sale_id(&args.sale)?,
                sale_input(&args)?,
            )
            .await
            .map_err(failed)?;
            println!("{}", if created { "created" } else { "updated" });
            print_json(&doc)
        }
        AdminCommand::Rate { sale, rate, burst } => {
            admission(&pool, &redis, &sale, change(rate, burst, None)).await
        }
        AdminCommand::Pause { sale } => {
            admission(&pool, &redis, &sale, change(None, None, Some(true))).await
        }
        AdminCommand::Resume { sale } => {
            admission(&pool, &redis, &sale, change(None, None, Some(false))).await
        }
        AdminCommand::Stats { sale } => stats(&pool, &redis, &sale).await,
    }
}

fn failed(error: flashgate_admission::Error) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

async fn admission(
    pool: &PgPool,
    redis: &Redis,
    sale: &str,
    change: AdmissionChange,
) -> anyhow::Result<()> {
    let doc = admin::update_admission(pool, redis, &actor(), &sale_id(sale)?, change)
        .await
        .map_err(failed)?;
    print_json(&doc)
}

async fn stats(pool: &PgPool, redis: &Redis, sale: &str) -> anyhow::Result<()> {
    let sale = sale_id(sale)?;
    let (_, issued) = redis.read_terms(&sale).await.unwrap_or((None, 0));
    let stats = admin::sale_stats(pool, &sale, issued)
        .await
        .map_err(failed)?
        .context("no such sale")?;
    print_json(&stats)
}

fn sale_input(args: &SaleArgs) -> anyhow::Result<SaleInput> {
    Ok(SaleInput {
        sku: Sku::parse(args.sku.clone()).map_err(|e| anyhow::anyhow!("{e}"))?,
        stock: args.stock,
        price: args.price,
        currency: args.currency.clone(),
        starts_at: args.starts_at,
        hold_seconds: args.hold_seconds,
        rate_per_second: args.rate,
        burst: args.burst,
        paused: args.paused.then_some(true),
        waitlist: None,
        waitlist_limit: None,
    })
}

/// `flashgate dlq …`.
pub async fn dlq(config: &Config, command: DlqCommand) -> anyhow::Result<()> {
    let amqp = Amqp::new(&config.amqp)?;
    amqp.declare_topology().await?;
    match command {
        DlqCommand::List { limit } => {
            print_json(&flashgate_workers::dlq::list(&amqp, limit).await?)
        }
        DlqCommand::Replay { limit } => {
            println!(
                "replayed {}",
                flashgate_workers::dlq::replay(&amqp, limit).await?
            );
            Ok(())
        }
        DlqCommand::Purge => {
            println!("purged {}", flashgate_workers::dlq::purge(&amqp).await?);
            Ok(())
        }
    }
}

/// `flashgate reconcile`.
pub async fn reconcile(config: Config, args: &ReconcileArgs) -> anyhow::Result<()> {
    let ctx = flashgate_workers::Context::connect(Arc::new(config)).await?;
    let older_than = Duration::from_secs(args.older_than_secs);
    let report =
        flashgate_workers::maintenance::reconcile::reconcile(&ctx, older_than, args.limit).await?;
    print_json(&report)
}
