//! The `flashgate` binary: parse the command line and configuration, start telemetry,
//! and run a role or an operator command. Everything else lives in the libraries.

use clap::Parser;
use flashgate::cli::{self, Cli, Command};
use flashgate::stack::{self, Role};
use flashgate::{admin, commands, demo, shutdown, verify};
use flashgate_common::{Config, db, telemetry};

/// Every role allocates per request from several threads at once. Against glibc's malloc
/// (`loadtest/run door`, same machine, back to back) mimalloc's per-thread heaps cut the
/// door's CPU per ticket from 68 to 59 µs and per `/healthz` from 13.2 to 10.8 µs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc asks the kernel for transparent huge pages for its regions (`MADV_HUGEPAGE`)
/// and hands memory back as it goes; every fault after a hand-back then clears a whole
/// 2 MiB page. Draining a full queue on the cluster, that kernel time was most of a
/// worker's CPU and grew with the workers: back to back on one machine, 17.8–22.1 ms per
/// 1,000 reservations with one worker and 32.1–37.3 with three, against 8.8–9.3 and
/// 10.2–10.9 without huge pages (a profiler attached to both); `loadtest/run cluster
/// scale` now gives 8.6 / 8.1 / 8.1 for 1 / 2 / 3 workers (`loadtest/README.md`,
/// History). So every role runs without them, unless `MIMALLOC_ALLOW_THP` is set, which
/// leaves the choice to mimalloc (`=1` gives the old behaviour back).
fn without_transparent_huge_pages() -> Option<nix::Error> {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return None;
    }
    nix::sys::prctl::set_thp_disable(true).err()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let huge_pages = without_transparent_huge_pages();
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        use clap::CommandFactory as _;
        let mut command = Cli::command();
        clap_complete::generate(shell, &mut command, "flashgate", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::VerifyFairness(args) = &cli.command {
        // Public data only: no configuration, no database.
        return commands::verify_fairness(args).await;
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if matches!(cli.command, Command::Demo(_)) {
        // The demo prints a summary; the stack's request logs would bury it.
        config.telemetry.log_filter = "warn,stripe=error,sqlx=error".into();
        // No load balancer waits for its roles to turn not-ready.
        config.drain.not_ready_ms = 0;
    }
    // Held to the end of `main`: dropping it flushes the spans still to be exported.
    let _telemetry = telemetry::init(&config.telemetry, service_name(&cli.command))?;
    if let Some(e) = huge_pages {
        tracing::warn!(error = %e, "could not turn transparent huge pages off for this process");
    }
    let stop = shutdown::on_signal();
    match cli.command {
        Command::All => {
            let running = stack::start_all(config, stop.clone()).await?;
            tracing::info!(addrs = ?running.addrs, "all roles running");
            running.wait(stop).await
        }
        Command::Admission => stack::run_role(Role::Admission, config, stop).await,
        Command::Worker => stack::run_role(Role::Worker, config, stop).await,
        Command::Webhook => stack::run_role(Role::Webhook, config, stop).await,
        Command::Catalog => stack::run_role(Role::Catalog, config, stop).await,
        Command::StripeSim => stack::run_stripe_sim(config, stop).await,
        Command::Migrate => {
            stack::migrate(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed(args) => commands::seed(&config, &args).await,
        Command::Admin(args) => admin::run(&config, args).await,
        Command::Completions { .. } => Ok(()),
        Command::Dlq(command) => commands::dlq(&config, command).await,
        Command::Reconcile(args) => commands::reconcile(config, &args).await,
        Command::Verify(args) => verify_command(&config, &args).await,
        Command::Demo(args) => demo::run(config, args).await,
        Command::VerifyFairness(_) => Ok(()),
    }
}

async fn verify_command(config: &Config, args: &cli::VerifyArgs) -> anyhow::Result<()> {
    let pool = db::connect(&config.database).await?;
    let sale = flashgate_common::domain::SaleId::parse(args.sale.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let redis = flashgate_common::live::Redis::connect(&config.redis)?;
    let published = redis.read_terms(&sale).await.ok().map(|(_, seq)| seq);
    let decided = verify::decided(&pool, &sale).await?;
    // The door's published counter lives in Redis: when Redis loses its data it counts
    // again from what the door had decided (a lower bound), so a counter behind the
    // ledger means "unknown", not "more decided than issued".
    let issued = match published {
        Some(n) if n < decided => {
            eprintln!(
                "verify: the door's published counter ({n}) is behind the {decided} tickets \
                 decided: Redis lost data during the sale, so the number issued is unknown"
            );
            None
        }
        other => other,
    };
    let verdict = verify::verify(&pool, &sale, issued, args.stripe_sim.as_deref()).await?;
    println!("{}", serde_json::to_string_pretty(&verdict)?);
    if verdict.violations.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("invariants broken")
    }
}

/// The `service.name` of the traces this process exports.
fn service_name(command: &Command) -> &'static str {
    match command {
        Command::Admission => "flashgate-admission",
        Command::Worker => "flashgate-worker",
        Command::Webhook => "flashgate-webhook",
        Command::Catalog => "flashgate-catalog",
        Command::StripeSim => "flashgate-stripe-sim",
        _ => "flashgate",
    }
}
