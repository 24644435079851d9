//! `flashgate-loadtools`: the load-test drivers k6 cannot do well. Each prints one JSON
//! object on stdout for `loadtest/run` to read.
//!
//! - `reserve-bench`: preloads N issued tickets into the tickets queue with no worker
//!   running, then starts `flashgate worker` and times the drain (issue 4).
//! - `lock-bench`: the textbook reservation at the database level, one
//!   `SELECT … FOR UPDATE` transaction per ticket from concurrent clients.
//! - `crowd`: a flash sale's shoppers, open loop, each from arrival to a final answer,
//!   against flashgate or the textbook checkout (issue 18).
//! - `http-bench`: a lean HTTP/1.1 driver, closed or open loop, for the rates that k6
//!   (a hundred-odd µs of CPU per request) could not reach on a small machine.
//! - `opening-bench`: a crowd in a sale's pre-queue, and the time from the opening until
//!   every shopper has a place (issue 14).
//! - `reset-queues`: deletes every queue and exchange of a prefix (cleanup).
//!
//! flashgate settings come from the usual `FLASHGATE_*` environment.

mod crowd;
mod http;
mod lock;
mod opening;
mod reserve;
mod stats;
mod worker;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use flashgate_common::Config;
use flashgate_common::amqp::Amqp;

/// Command line.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Preload tickets, start a worker, time the drain until every ticket is decided.
    ReserveBench(reserve::Args),
    /// The per-request `SELECT … FOR UPDATE` reservation, from concurrent clients.
    LockBench(lock::Args),
    /// A flash sale's shoppers in an open loop, against flashgate or the textbook checkout.
    Crowd(crowd::Args),
    /// Closed- or open-loop HTTP/1.1 load on one server.
    HttpBench(http::Args),
    /// A crowd joins a sale's pre-queue (optionally signed in, with proof of work), then
    /// the time from the opening until every shopper has a place.
    OpeningBench(opening::Args),
    /// Delete the queues and exchanges of `FLASHGATE_AMQP__PREFIX`.
    ResetQueues,
}

/// Where the `flashgate` binary is, for the commands that start one.
#[derive(Debug, Clone, clap::Args)]
pub struct Binary {
    /// Path of the `flashgate` binary.
    #[arg(long, default_value = "target/release/flashgate")]
    pub flashgate: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.command {
        Command::ReserveBench(args) => reserve::run(Config::load(None)?, args).await?,
        Command::LockBench(args) => lock::run(args).await?,
        Command::Crowd(args) => crowd::run(args).await?,
        Command::HttpBench(args) => http::run(args).await?,
        Command::OpeningBench(args) => opening::run(args).await?,
        Command::ResetQueues => {
            let config = Config::load(None)?;
            anyhow::ensure!(
                !config.amqp.prefix.is_empty(),
                "refusing to delete the unprefixed (production) queues"
            );
            Amqp::new(&config.amqp)?.delete_topology().await?;
            serde_json::json!({ "deleted_prefix": config.amqp.prefix })
        }
    };
    println!("{report}");
    Ok(())
}
