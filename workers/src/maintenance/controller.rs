//! The closed-loop admission controller's ticks (`ledger::controller` has the law): for
//! each sale whose controller is on, at most one worker every two seconds reads the
//! queue (Redis: tickets the broker confirmed; PostgreSQL: tickets decided), the payment
//! backlog and the database's latency, decides, and writes a changed rate with its audit
//! entry; the doors are told at once.

use chrono::Utc;
use flashgate_common::ledger::controller::{self, Signals, Steered};

use crate::Result;
use crate::context::Context;

/// Runs one tick for each steered sale that is due; returns how many rates changed.
pub(super) async fn steer(ctx: &Context) -> Result<usize> {
    let mut changed = 0;
    for sale in controller::steered(&ctx.pool).await? {
        changed += usize::from(tick(ctx, &sale).await?);
    }
    Ok(changed)
}

async fn tick(ctx: &Context, sale: &Steered) -> Result<bool> {
    let id = &sale.sale_id;
    let mut tx = ctx.pool.begin().await?;
    let Some(previous) = controller::take_tick(&mut tx, id).await? else {
        return Ok(false);
    };
    let (decided, rate, backlog, db_ms) = controller::read(&mut tx, id).await?;
    let (_, published) = ctx.redis.read_terms(id).await?;
    let decision = previous.map(|(at, decided_then)| {
        let seconds = (Utc::now() - at).as_seconds_f64().max(0.001);
        let signals = Signals {
            queue_depth: (published - decided).max(0),
            drain_per_second: (decided - decided_then).max(0) as f64 / seconds,
            payment_backlog: backlog,
            db_ms,
        };
        (controller::decide(&sale.settings, rate, &signals), signals)
    });
    controller::record(
        &mut tx,
        id,
        decided,
        rate,
        decision.as_ref().map(|(d, s)| (d, s)),
    )
    .await?;
    tx.commit().await?;
    let Some((decision, signals)) = decision else {
        return Ok(false);
    };
    metrics::gauge!("flashgate_admission_controller_rate", "sale" => id.to_string())
        .set(f64::from(decision.rate));
    if decision.rate == rate {
        return Ok(false);
    }
    tracing::info!(sale = %id, from = rate, to = decision.rate, reason = %decision.reason,
        queue_depth = signals.queue_depth, drain = signals.drain_per_second,
        backlog = signals.payment_backlog, db_ms = signals.db_ms, "admission rate steered");
    if let Err(e) = ctx.redis.announce_sale_change(id).await {
        tracing::warn!(error = ?e, sale = %id, "rate change not announced; doors re-read it within a second");
    }
    Ok(true)
}
