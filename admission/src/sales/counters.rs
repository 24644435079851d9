//! Per-sale admission counters: lock-free on the hot path, turned into per-second rates
//! by the refresh task, for `GET /admin/v1/sales/{id}/stats`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::Counter;

/// Why an arrival did not get a ticket (or that it did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A ticket was issued.
    Admitted,
    /// A ticket joined the pre-queue of a sale not open yet.
    Prequeued,
    /// No valid proof of work or captcha while the sale asks for one.
    BotCheck,
    /// The sale's admission rate was exceeded.
    RateLimited,
    /// This customer asked too often.
    CustomerRateLimited,
    /// No unit can be had.
    SoldOut,
    /// The sale is paused or has not started.
    NotOpen,
    /// The queue is at its depth limit or the broker pushes back.
    QueueSaturated,
    /// The broker did not confirm the ticket.
    BrokerUnavailable,
    /// The door already had as much work toward Redis and the broker as it takes.
    DoorBusy,
    /// The door was behind on its claims: told when to come back.
    Paced,
}

/// How many outcomes there are.
const OUTCOMES: usize = 11;

impl Outcome {
    const ALL: [Outcome; OUTCOMES] = [
        Outcome::Admitted,
        Outcome::Prequeued,
        Outcome::BotCheck,
        Outcome::RateLimited,
        Outcome::CustomerRateLimited,
        Outcome::SoldOut,
        Outcome::NotOpen,
        Outcome::QueueSaturated,
        Outcome::BrokerUnavailable,
        Outcome::DoorBusy,
        Outcome::Paced,
    ];

    /// Label used in metrics and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "admitted",
            Outcome::Prequeued => "prequeued",
            Outcome::BotCheck => "bot_check",
            Outcome::RateLimited => "rate_limited",
            Outcome::CustomerRateLimited => "customer_rate_limited",
            Outcome::SoldOut => "sold_out",
            Outcome::NotOpen => "not_open",
            Outcome::QueueSaturated => "queue_saturated",
            Outcome::BrokerUnavailable => "broker_unavailable",
            Outcome::DoorBusy => "door_busy",
            Outcome::Paced => "door_paced",
        }
    }
}

/// Totals since start, the rates of the last sampled second, and the Prometheus counter
/// of each outcome, registered once for the sale (an arrival increments one, with no
/// label to allocate and no registry to search).
#[derive(Debug)]
pub struct Counters {
    totals: [AtomicU64; OUTCOMES],
    last: Mutex<([u64; OUTCOMES], [f64; OUTCOMES])>,
    exported: [Counter; OUTCOMES],
}

impl Counters {
    /// Counters of `sale`.
    pub fn new(sale: &str) -> Self {
        // Handles taken before the recorder is installed would count nowhere, forever.
        flashgate_common::telemetry::metrics();
        Self {
            totals: Default::default(),
            last: Mutex::default(),
            exported: Outcome::ALL.map(|outcome| match outcome {
                Outcome::Admitted => {
                    metrics::counter!("flashgate_admission_tickets_issued_total", "sale" => sale.to_owned())
                }
                Outcome::Prequeued => {
                    metrics::counter!("flashgate_admission_tickets_prequeued_total", "sale" => sale.to_owned())
                }
                _ => metrics::counter!(
                    "flashgate_admission_rejected_total",
                    "sale" => sale.to_owned(),
                    "reason" => outcome.as_str()
                ),
            }),
        }
    }

    /// Counts one arrival.
    pub fn record(&self, outcome: Outcome) {
        self.totals[outcome as usize].fetch_add(1, Ordering::Relaxed);
        self.exported[outcome as usize].increment(1);
    }

    /// Turns the totals into rates over `elapsed_secs` since the previous sample.
    pub fn sample(&self, elapsed_secs: f64) {
        let now: [u64; OUTCOMES] = std::array::from_fn(|i| self.totals[i].load(Ordering::Relaxed));
        if let Ok(mut last) = self.last.lock() {
            let rates =
                std::array::from_fn(|i| (now[i] - last.0[i]) as f64 / elapsed_secs.max(0.001));
            *last = (now, rates);
        }
    }

    /// `(outcome, per second)` for every outcome, from the last sample.
    pub fn rates(&self) -> Vec<(&'static str, f64)> {
        let rates = self.last.lock().map(|l| l.1).unwrap_or_default();
        Outcome::ALL
            .iter()
            .map(|o| (o.as_str(), rates[*o as usize]))
            .collect()
    }
}
