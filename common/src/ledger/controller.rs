//! The closed-loop admission controller: an optional, per-sale loop that sets the door's
//! admission rate from what the shop behind the door is taking, within the operator's
//! bounds. Additive increase while the downstream keeps up, multiplicative decrease when
//! it does not (TCP's AIMD, which converges to a fair share and backs off fast):
//!
//! - **queue wait**: the tickets waiting (issued, not yet decided) over the rate they are
//!   being decided at: how long a shopper arriving now waits for a verdict;
//! - **payment backlog**: orders reserved more than 5 s ago whose PaymentIntent is still
//!   not there (Stripe slow or failing, or the payment workers saturated);
//! - **database latency**: how long the controller's own read of these took.
//!
//! Every tick (at most one per sale every [`TICK`], whichever worker gets there first)
//! reads the signals, decides, and, when the rate changes, writes it with an audit entry
//! (actor `controller`, the reason and the signals) in one transaction; the doors follow
//! within a second, as they follow an operator.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};

use crate::domain::SaleId;

/// Least time between two decisions for one sale.
pub const TICK: Duration = Duration::from_secs(2);

/// How old a reserved order without its PaymentIntent counts as backlog.
pub const BACKLOG_AFTER: Duration = Duration::from_secs(5);

/// The operator's bounds and targets for a sale's controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControllerSettings {
    /// Lowest rate the controller sets (arrivals/s).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub min_rate: i32,
    /// Highest rate the controller sets (arrivals/s).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_rate: i32,
    /// Added to the rate at each tick while the downstream keeps up.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub step: i32,
    /// When the downstream falls behind, the rate becomes this percentage of itself.
    #[serde(default = "default_decrease")]
    #[schema(minimum = 10, maximum = 95)]
    pub decrease_percent: i32,
    /// Longest a shopper arriving now should wait for a verdict, in seconds.
    #[serde(default = "default_queue_wait")]
    #[schema(minimum = 1, maximum = 3600)]
    pub max_queue_wait_secs: i32,
    /// Most orders waiting over 5 s for their PaymentIntent.
    #[serde(default = "default_backlog")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_payment_backlog: i32,
    /// Slowest the database may answer the controller's read, in milliseconds.
    #[serde(default = "default_db_ms")]
    #[schema(minimum = 1, maximum = 60_000)]
    pub max_db_ms: i32,
}

fn default_decrease() -> i32 {
    70
}
fn default_queue_wait() -> i32 {
    30
}
fn default_backlog() -> i32 {
    50
}
fn default_db_ms() -> i32 {
    250
}

impl ControllerSettings {
    /// What is wrong with the settings, if anything (a sentence for a `422`).
    pub fn problem(&self) -> Option<String> {
        let within = |v: i32, lo: i32, hi: i32| (lo..=hi).contains(&v);
        if !within(self.min_rate, 1, 1_000_000) || !within(self.max_rate, 1, 1_000_000) {
            return Some("controller.min_rate and max_rate must be 1..=1000000".into());
        }
        if self.min_rate > self.max_rate {
            return Some("controller.min_rate must not be above max_rate".into());
        }
        if !within(self.step, 1, 1_000_000) {
            return Some("controller.step must be 1..=1000000".into());
        }
        if !within(self.decrease_percent, 10, 95) {
            return Some("controller.decrease_percent must be 10..=95".into());
        }
        if !within(self.max_queue_wait_secs, 1, 3600)
            || !within(self.max_payment_backlog, 1, 1_000_000)
            || !within(self.max_db_ms, 1, 60_000)
        {
            return Some(
                "controller.max_queue_wait_secs (1..=3600), max_payment_backlog (1..=1000000) and max_db_ms (1..=60000) out of range"
                    .into(),
            );
        }
        None
    }
}

/// What the controller reads at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Signals {
    /// Tickets issued and not yet decided.
    pub queue_depth: i64,
    /// Tickets decided per second since the last tick.
    pub drain_per_second: f64,
    /// Orders reserved over 5 s ago still without their PaymentIntent.
    pub payment_backlog: i64,
    /// How long the database took to answer the read, in milliseconds.
    pub db_ms: f64,
}

impl Signals {
    /// Seconds a shopper arriving now waits for a verdict at the measured drain.
    pub fn queue_wait_secs(&self) -> f64 {
        if self.queue_depth <= 0 {
            0.0
        } else if self.drain_per_second <= 0.0 {
            f64::INFINITY
        } else {
            self.queue_depth as f64 / self.drain_per_second
        }
    }
}

/// A tick's decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The rate from now on.
    pub rate: i32,
    /// Why, in words (for the audit log and the console).
    pub reason: String,
}

/// The control law: multiplicative decrease when a signal is past its bound (naming the
/// signals), additive increase otherwise, both within `[min_rate, max_rate]`.
pub fn decide(settings: &ControllerSettings, rate: i32, signals: &Signals) -> Decision {
    let mut behind = Vec::new();
    let wait = signals.queue_wait_secs();
    if wait > f64::from(settings.max_queue_wait_secs) {
        behind.push(format!(
            "queue wait {} s > {} s",
            if wait.is_finite() {
                format!("{wait:.1}")
            } else {
                "∞".into()
            },
            settings.max_queue_wait_secs
        ));
    }
    if signals.payment_backlog > i64::from(settings.max_payment_backlog) {
        behind.push(format!(
            "payment backlog {} > {}",
            signals.payment_backlog, settings.max_payment_backlog
        ));
    }
    if signals.db_ms > f64::from(settings.max_db_ms) {
        behind.push(format!(
            "database {:.0} ms > {} ms",
            signals.db_ms, settings.max_db_ms
        ));
    }
    let bounded = |r: f64| {
        (r.round() as i64).clamp(i64::from(settings.min_rate), i64::from(settings.max_rate)) as i32
    };
    if behind.is_empty() {
        Decision {
            rate: bounded(f64::from(rate) + f64::from(settings.step)),
            reason: "keeping up: additive increase".into(),
        }
    } else {
        Decision {
            rate: bounded(f64::from(rate) * f64::from(settings.decrease_percent) / 100.0),
            reason: format!(
                "falling behind ({}): multiplicative decrease",
                behind.join(", ")
            ),
        }
    }
}

/// An admission change's `controller`: absent (`None`: unchanged, serde's default),
/// `null` (`Some(None)`: off) or an object (on, with these settings).
pub fn change<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<ControllerSettings>>, D::Error> {
    super::object_or_null(d).map(Some)
}

/// A sale whose controller is on, as a tick reads it.
#[derive(Debug, Clone)]
pub struct Steered {
    /// The sale.
    pub sale_id: SaleId,
    /// Its bounds.
    pub settings: ControllerSettings,
}

/// The sales with a controller on, open and not paused.
pub async fn steered(db: &PgPool) -> sqlx::Result<Vec<Steered>> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id: SaleId", controller AS "controller!: sqlx::types::Json<ControllerSettings>"
           FROM sales WHERE controller IS NOT NULL AND NOT paused AND starts_at <= now()"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Steered {
            sale_id: r.id,
            settings: r.controller.0,
        })
        .collect())
}

/// The previous tick of a sale, taken for this one; `None` when another worker holds it
/// or ticked less than [`TICK`] ago. The first tick of a sale only records where the
/// queue stood (a drain needs two points).
pub async fn take_tick(
    tx: &mut PgConnection,
    sale: &SaleId,
) -> sqlx::Result<Option<Option<(DateTime<Utc>, i64)>>> {
    sqlx::query!(
        "INSERT INTO admission_controller (sale_id, at, decided) VALUES ($1, 'epoch', -1)
         ON CONFLICT (sale_id) DO NOTHING",
        sale.as_str()
    )
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query!(
        r#"SELECT at, decided, at < now() - make_interval(secs => $2) AS "due!"
           FROM admission_controller WHERE sale_id = $1 FOR UPDATE SKIP LOCKED"#,
        sale.as_str(),
        TICK.as_secs_f64()
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match row {
        Some(r) if r.due => Some((r.decided >= 0).then_some((r.at, r.decided))),
        _ => None,
    })
}

/// What the database says for a tick: decided so far, the rate, the payment backlog, and
/// how long it took to say it.
pub async fn read(tx: &mut PgConnection, sale: &SaleId) -> sqlx::Result<(i64, i32, i64, f64)> {
    let started = Instant::now();
    let row = sqlx::query!(
        r#"SELECT s.decided, s.rate_per_second,
                  (SELECT count(*) FROM orders o
                   WHERE o.sale_id = s.id AND o.status = 'reserved'
                     AND o.created_at < now() - make_interval(secs => $2)) AS "backlog!"
           FROM sales s WHERE s.id = $1"#,
        sale.as_str(),
        BACKLOG_AFTER.as_secs_f64()
    )
    .fetch_one(&mut *tx)
    .await?;
    let db_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((row.decided, row.rate_per_second, row.backlog, db_ms))
}

/// Records this tick, and the new rate with its audit entry when it changed.
pub async fn record(
    tx: &mut PgConnection,
    sale: &SaleId,
    decided: i64,
    old_rate: i32,
    decision: Option<(&Decision, &Signals)>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE admission_controller SET at = now(), decided = $2 WHERE sale_id = $1",
        sale.as_str(),
        decided
    )
    .execute(&mut *tx)
    .await?;
    let Some((decision, signals)) = decision.filter(|(d, _)| d.rate != old_rate) else {
        return Ok(());
    };
    sqlx::query!(
        "UPDATE sales SET rate_per_second = $2, updated_at = now() WHERE id = $1",
        sale.as_str(),
        decision.rate
    )
    .execute(&mut *tx)
    .await?;
    super::audit::record(
        tx,
        sale.as_str(),
        "controller",
        "admission.controller",
        Some(json!({ "rate_per_second": old_rate })),
        json!({ "rate_per_second": decision.rate, "reason": decision.reason, "signals": signals }),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ControllerSettings {
        ControllerSettings {
            min_rate: 10,
            max_rate: 1000,
            step: 50,
            decrease_percent: 50,
            max_queue_wait_secs: 30,
            max_payment_backlog: 20,
            max_db_ms: 250,
        }
    }

    fn signals(depth: i64, drain: f64, backlog: i64, db_ms: f64) -> Signals {
        Signals {
            queue_depth: depth,
            drain_per_second: drain,
            payment_backlog: backlog,
            db_ms,
        }
    }

    #[test]
    fn keeping_up_adds_a_step_up_to_the_bound() {
        let s = settings();
        assert_eq!(decide(&s, 100, &signals(10, 100.0, 0, 5.0)).rate, 150);
        assert_eq!(decide(&s, 980, &signals(0, 0.0, 0, 5.0)).rate, 1000);
    }

    #[test]
    fn each_signal_past_its_bound_halves_the_rate_down_to_the_floor() {
        let s = settings();
        let slow_queue = decide(&s, 400, &signals(4000, 100.0, 0, 5.0));
        assert_eq!(slow_queue.rate, 200);
        assert!(
            slow_queue.reason.contains("queue wait 40.0 s > 30 s"),
            "{}",
            slow_queue.reason
        );
        let stalled = decide(&s, 400, &signals(10, 0.0, 0, 5.0));
        assert!(stalled.reason.contains("∞"), "{}", stalled.reason);
        let payments = decide(&s, 400, &signals(0, 0.0, 21, 5.0));
        assert_eq!(payments.rate, 200);
        assert!(payments.reason.contains("payment backlog 21 > 20"));
        let database = decide(&s, 15, &signals(0, 0.0, 0, 900.0));
        assert_eq!(database.rate, 10, "never under min_rate");
        assert!(database.reason.contains("database 900 ms > 250 ms"));
    }

    #[test]
    fn bounds_are_checked() {
        assert_eq!(settings().problem(), None);
        let inverted = ControllerSettings {
            min_rate: 500,
            max_rate: 100,
            ..settings()
        };
        assert!(inverted.problem().unwrap().contains("min_rate"));
        let flat = ControllerSettings {
            decrease_percent: 100,
            ..settings()
        };
        assert!(flat.problem().unwrap().contains("decrease_percent"));
    }
}
