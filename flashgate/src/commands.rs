//! Operator commands that work on the services directly: seed, dead letters,
//! reconciliation (`flashgate admin` is a client of the admin API: `crate::admin`).

use std::sync::Arc;
use std::time::Duration;

use flashgate_admission::admin::{self, SaleInput};
use flashgate_catalog::ProductInput;
use flashgate_common::amqp::Amqp;
use flashgate_common::domain::{Category, SaleId, Sku};
use flashgate_common::live::Redis;
use flashgate_common::{Config, db};

use crate::cli::{DlqCommand, ReconcileArgs, SeedArgs};

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
        max_quantity_per_customer: None,
        prequeue_opens_at: None,
        pow_difficulty: None,
        captcha: None,
        branding: None,
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

/// `flashgate verify-fairness`: the draw recomputed from the sale's public document.
pub async fn verify_fairness(args: &crate::cli::VerifyFairnessArgs) -> anyhow::Result<()> {
    use flashgate_common::fairness::FairnessDocument;
    let sale = sale_id(&args.sale)?;
    let document: FairnessDocument = match &args.file {
        Some(path) => serde_json::from_slice(&std::fs::read(path)?)
            .map_err(|e| anyhow::anyhow!("{} is not a fairness document: {e}", path.display()))?,
        None => {
            let url = format!(
                "{}/v1/sales/{sale}/fairness",
                args.door.trim_end_matches('/')
            );
            let response = reqwest::get(&url)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read {url}: {e}"))?;
            if !response.status().is_success() {
                anyhow::bail!("{url} answered {}", response.status());
            }
            response.json().await?
        }
    };
    if document.sale_id != sale.as_str() {
        anyhow::bail!(
            "the document is sale {:?}'s, not {:?}'s",
            document.sale_id,
            sale.as_str()
        );
    }
    match document.verify(args.commitment.as_deref()) {
        Ok(verified) => {
            println!("{verified}");
            Ok(())
        }
        Err(unfair) => anyhow::bail!("NOT verified: {unfair}"),
    }
}
