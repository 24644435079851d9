//! The maintenance loop, every `sweep_interval_ms`: end the holds of shoppers whose
//! waiting room went away, steer the admission rate of sales with a controller, expire
//! holds, give units that came
//! back to the wait-list, ask again to pay for reserved orders whose payment task was
//! lost, run due Stripe side effects, relay the outbox, and (every `reconcile_after_secs / 10`) reconcile orders
//! whose webhook never came; once an hour, delete what is past its retention. Every step
//! is safe to run in several processes at once.

mod controller;
mod effects;
mod expire;
mod outbox;
mod presence;
pub mod reconcile;
pub mod retention;
mod unasked;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_common::ledger;
use tokio_util::sync::CancellationToken;

use crate::context::Context;

pub use effects::run_due;
pub use expire::expire_holds;
pub use outbox::relay;
pub use unasked::ask_again;

/// Runs the loop until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let config = &ctx.config.worker;
    let mut tick = tokio::time::interval(Duration::from_millis(config.sweep_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reconcile_after = Duration::from_secs(config.reconcile_after_secs);
    let mut last_reconcile = Instant::now();
    let mut last_retention: Option<Instant> = None;
    let mut last_vitals: Option<Instant> = None;
    let name = process_name();
    while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
        sweep(&ctx).await;
        if last_vitals.is_none_or(|at| at.elapsed() >= VITALS_EVERY) {
            last_vitals = Some(Instant::now());
            let recent = crate::stripe_api::RECENT.recent();
            if let Err(e) = ledger::vitals::record_stripe(&ctx.pool, &name, &recent).await {
                tracing::debug!(error = ?e, "Stripe latency not recorded");
            }
        }
        if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            match retention::apply(&ctx).await {
                Ok(deleted) => tracing::debug!(?deleted, "retention applied"),
                Err(e) => tracing::warn!(error = ?e, "retention not applied"),
            }
        }
        if last_reconcile.elapsed() >= reconcile_after / 10 {
            last_reconcile = Instant::now();
            match reconcile::reconcile(&ctx, reconcile_after, 200).await {
                Ok(report) if report.applied > 0 => {
                    tracing::info!(?report, "reconciled stuck payments")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "reconciliation failed"),
            }
        }
    }
}

/// How often this process's Stripe latency is written for the console.
const VITALS_EVERY: Duration = Duration::from_secs(2);

/// This process among the workers: host and process id (workers in one process share
/// their Stripe figures, so they write one row).
fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}:{}", std::process::id())
}

/// How often rows past their retention are deleted (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Most batches of holds expired in one sweep.
const EXPIRY_BATCHES: usize = 20;

/// Kept statuses published in one batch: one ledger read and one Redis round trip.
const REPUBLISH_BATCH: i64 = 2_000;

/// Most batches of kept statuses published in one sweep: a Redis outage during a large
/// wait-list close keeps every closed ticket, and shoppers read the status before it
/// until the sweep gets to theirs.
const REPUBLISH_BATCHES: usize = 20;

/// Runs `step`, a batch of at most `batch` each, while batches come back full, at most
/// `most` times (so the other steps still get their turn); a failure is logged as `failed`
/// and waits for the next sweep. Returns how many the batches took.
async fn in_batches<F, Fut, E>(most: usize, batch: i64, failed: &str, mut step: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<usize, E>>,
    E: std::fmt::Debug,
{
    let mut taken = 0;
    for _ in 0..most {
        match step().await {
            Ok(n) => {
                taken += n;
                if (n as i64) < batch {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = ?e, "{failed}");
                break;
            }
        }
    }
    taken
}

/// One pass of every step; failures are logged and retried at the next tick.
#[tracing::instrument(name = "sweep", skip_all)]
pub async fn sweep(ctx: &Context) {
    let batch = ctx.config.worker.sweep_batch;
    if let Err(e) = presence::release_absent(ctx).await {
        tracing::warn!(error = ?e, "holds of absent shoppers not ended");
    }
    in_batches(EXPIRY_BATCHES, batch, "hold expiry failed", || {
        expire_holds(ctx, batch)
    })
    .await;
    if let Err(e) = crate::reserve::waitlist::serve(ctx).await {
        tracing::warn!(error = ?e, "wait-list not settled");
    }
    if let Err(e) = ask_again(ctx, 500).await {
        tracing::warn!(error = ?e, "reserved orders not asked again to pay");
    }
    if let Err(e) = run_due(ctx, 50).await {
        tracing::warn!(error = ?e, "stripe side effects failed");
    }
    if let Err(e) = relay(ctx, 500).await {
        tracing::warn!(error = ?e, "outbox relay failed");
    }
    let published = in_batches(
        REPUBLISH_BATCHES,
        REPUBLISH_BATCH,
        "kept statuses not published to redis yet",
        || ledger::unpublished::republish(&ctx.pool, &ctx.redis, REPUBLISH_BATCH),
    )
    .await;
    if published > 0 {
        tracing::info!(tickets = published, "kept statuses published to redis");
    }
    if let Err(e) = controller::steer(ctx).await {
        tracing::warn!(error = ?e, "admission controller did not tick");
    }
}
