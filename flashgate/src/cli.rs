//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// flashgate: keeps a shop standing through a flash sale.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Configuration file (default: `flashgate.toml` if present, or `FLASHGATE_CONFIG`).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Roles and operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every role in one process; embeds the Stripe emulator when no Stripe key is set.
    All,
    /// The front door (tickets, polling, admin API).
    Admission,
    /// The reservation and payment workers and the maintenance loop.
    Worker,
    /// The Stripe webhook receiver.
    Webhook,
    /// The product catalog.
    Catalog,
    /// The Stripe emulator.
    StripeSim,
    /// Apply database migrations.
    Migrate,
    /// Create demo products and a sale.
    Seed(SeedArgs),
    /// Operate sales.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Inspect or replay dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Settle orders stuck in payment_pending from Stripe's view of their payment.
    Reconcile(ReconcileArgs),
    /// Check the invariants (no oversell, one charge per order, ...) of a sale.
    Verify(VerifyArgs),
    /// A whole flash sale, end to end, with simulated shoppers and a printed summary.
    Demo(crate::demo::DemoArgs),
}

/// `flashgate seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Sale to create.
    #[arg(long, default_value = "launch")]
    pub sale: String,
    /// Units for sale.
    #[arg(long, default_value_t = 500)]
    pub stock: i64,
    /// Products in the catalog (the first is on sale).
    #[arg(long, default_value_t = 100)]
    pub products: usize,
}

/// `flashgate admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create or update a sale.
    Sale(SaleArgs),
    /// Change a sale's admission rate and burst, live.
    Rate {
        /// Sale id.
        sale: String,
        /// Tickets per second.
        #[arg(long)]
        rate: Option<i32>,
        /// Burst.
        #[arg(long)]
        burst: Option<i32>,
    },
    /// Stop admitting new tickets.
    Pause {
        /// Sale id.
        sale: String,
    },
    /// Admit again.
    Resume {
        /// Sale id.
        sale: String,
    },
    /// Tickets by status, stock terms and admission settings.
    Stats {
        /// Sale id.
        sale: String,
    },
}

/// `flashgate admin sale`.
#[derive(Debug, Args)]
pub struct SaleArgs {
    /// Sale id.
    pub sale: String,
    /// Product sold.
    #[arg(long)]
    pub sku: String,
    /// Units for sale.
    #[arg(long)]
    pub stock: i64,
    /// Unit price in minor units.
    #[arg(long)]
    pub price: i64,
    /// Currency.
    #[arg(long, default_value = "eur")]
    pub currency: String,
    /// Admission rate.
    #[arg(long, default_value_t = 1000)]
    pub rate: i32,
    /// Admission burst.
    #[arg(long, default_value_t = 1000)]
    pub burst: i32,
    /// Hold length in seconds.
    #[arg(long)]
    pub hold_seconds: Option<i32>,
    /// Opening time (RFC 3339).
    #[arg(long)]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Create paused.
    #[arg(long)]
    pub paused: bool,
}

/// `flashgate dlq …`.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Show dead letters (they stay in the queue).
    List {
        /// Most to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Publish dead letters back to the queues they died in.
    Replay {
        /// Most to replay.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Drop every dead letter.
    Purge,
}

/// `flashgate reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only orders pending for longer than this many seconds.
    #[arg(long, default_value_t = 600)]
    pub older_than_secs: u64,
    /// Most orders to look at.
    #[arg(long, default_value_t = 1000)]
    pub limit: i64,
}

/// `flashgate verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Sale id.
    pub sale: String,
    /// Base URL of the Stripe emulator, to count PaymentIntents and charges per order.
    #[arg(long)]
    pub stripe_sim: Option<String>,
}
