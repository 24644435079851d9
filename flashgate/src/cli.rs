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
    /// Operate sales through a door's admin API (list, create, rate, pause, wait-list,
    /// stats, audit).
    Admin(AdminArgs),
    /// Inspect or replay dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Settle orders stuck in payment_pending from Stripe's view of their payment.
    Reconcile(ReconcileArgs),
    /// Check the invariants (no oversell, one charge per order, ...) of a sale.
    Verify(VerifyArgs),
    /// Recompute a sale's pre-queue draw from its public fairness document and say
    /// whether the order is the one its committed seed gives (exit 1 if not).
    VerifyFairness(VerifyFairnessArgs),
    /// A whole flash sale, end to end, with simulated shoppers and a printed summary.
    Demo(crate::demo::DemoArgs),
    /// Print a shell completion script (e.g. `flashgate completions bash >
    /// /etc/bash_completion.d/flashgate`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
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

/// How `flashgate admin` is used, shown after its help.
const ADMIN_EXAMPLES: &str = "Examples:
  export FLASHGATE_ADMIN_URL=http://door.internal:8080 FLASHGATE_ADMIN_TOKEN=…
  flashgate admin sales list
  flashgate admin sale launch --sku fg-0000 --stock 500 --price 4900 --rate 2000 --burst 500
  flashgate admin rate launch --rate 5000
  flashgate admin pause launch
  flashgate admin waitlist launch off
  flashgate admin stats launch --watch          # every 2 s until Ctrl-C
  flashgate admin audit launch --limit 20
  flashgate admin --json stats launch | jq .queue";

/// `flashgate admin …`: a client of a door's admin API. It needs the door's address and
/// the admin token, not the database.
#[derive(Debug, Args)]
#[command(after_help = ADMIN_EXAMPLES)]
pub struct AdminArgs {
    /// The door's base URL (default: `http://` and `admission.listen` of the configuration).
    #[arg(long, env = "FLASHGATE_ADMIN_URL", global = true)]
    pub url: Option<String>,
    /// The admin token (default: the configuration's `admin_token`, i.e.
    /// `FLASHGATE_ADMIN_TOKEN`; prefer that to this flag, which other users can see in
    /// the process list).
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Print the API's JSON documents instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: AdminCommand,
}

/// `flashgate admin …` commands.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// List sales.
    #[command(subcommand)]
    Sales(SalesCommand),
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
    /// Turn a sale's wait-list on or off, live.
    Waitlist {
        /// Sale id.
        sale: String,
        /// `on`: arrivals past the oversubscription limit wait for units that come back;
        /// `off`: they are refused at once.
        state: Switch,
    },
    /// Set the proof of work asked of each arrival, live: leading zero bits of SHA-256
    /// (0 turns it off; a shopper's browser tries 2^bits hashes on average).
    Pow {
        /// Sale id.
        sale: String,
        /// Difficulty, 0–28.
        bits: i32,
    },
    /// Let the admission rate steer itself within bounds (closed-loop controller), or
    /// stop it with `--off` (the rate then stays where it is).
    Controller {
        /// Sale id.
        sale: String,
        /// Lowest rate it sets (arrivals/s).
        #[arg(long, required_unless_present = "off")]
        min: Option<i32>,
        /// Highest rate it sets (arrivals/s).
        #[arg(long, required_unless_present = "off")]
        max: Option<i32>,
        /// Added at each tick while the shop keeps up.
        #[arg(long, required_unless_present = "off")]
        step: Option<i32>,
        /// The rate becomes this percentage of itself when the shop falls behind (10–95).
        #[arg(long)]
        decrease_percent: Option<i32>,
        /// Longest wait for a verdict a shopper arriving now should face, in seconds.
        #[arg(long)]
        max_queue_wait_secs: Option<i32>,
        /// Most orders waiting over 5 s for their PaymentIntent.
        #[arg(long)]
        max_payment_backlog: Option<i32>,
        /// Slowest the database may answer, in milliseconds.
        #[arg(long)]
        max_db_ms: Option<i32>,
        /// Turn the controller off.
        #[arg(long, conflicts_with_all = ["min", "max", "step", "decrease_percent", "max_queue_wait_secs", "max_payment_backlog", "max_db_ms"])]
        off: bool,
    },
    /// Tickets by status, stock terms, queue and admission (rates as one door sees them).
    Stats {
        /// Sale id.
        sale: String,
        /// Show them again every SECS seconds (2 when no value is given) until Ctrl-C.
        #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
        /// With `--watch`: stop after this many updates.
        #[arg(long, requires = "watch")]
        count: Option<u64>,
    },
    /// Who changed a sale, when, from what to what (newest first).
    Audit {
        /// Sale id.
        sale: String,
        /// Most entries to show (1–500).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only entries older than this entry id (the next page).
        #[arg(long)]
        before: Option<i64>,
    },
}

/// `flashgate admin sales …`.
#[derive(Debug, Subcommand)]
pub enum SalesCommand {
    /// The newest sales first: stock terms, admission and state.
    List {
        /// Most sales to show (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
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
    /// Wait-list on or off (default: on when created, unchanged on update).
    #[arg(long)]
    pub waitlist: Option<Switch>,
    /// Most tickets on the wait-list (default: what the held units could serve).
    #[arg(long)]
    pub waitlist_limit: Option<i32>,
    /// Most units one customer buys in the sale (default: the door's max_quantity).
    #[arg(long)]
    pub max_quantity_per_customer: Option<i32>,
    /// When the pre-queue opens (RFC 3339; default: from the sale's creation).
    #[arg(long)]
    pub prequeue_opens_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Proof of work asked of each arrival, in leading zero bits (0: none).
    #[arg(long)]
    pub pow_difficulty: Option<i32>,
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

/// `flashgate verify-fairness`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  # before the opening, record the commitment a sale shows:
  curl -s http://door/v1/sales/launch | jq -r .fairness.commitment
  # after it, check the draw against what you recorded:
  flashgate verify-fairness launch --door http://door --commitment 5e0c…
  # check a saved document offline:
  flashgate verify-fairness launch --file fairness.json")]
pub struct VerifyFairnessArgs {
    /// Sale id.
    pub sale: String,
    /// Base URL of a door, where `GET /v1/sales/{sale}/fairness` is read.
    #[arg(
        long,
        env = "FLASHGATE_DOOR_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub door: String,
    /// A commitment (hex) recorded before the opening; without it the published one is
    /// trusted.
    #[arg(long)]
    pub commitment: Option<String>,
    /// Read the fairness document from this file instead of the door.
    #[arg(long, conflicts_with = "door")]
    pub file: Option<PathBuf>,
}
