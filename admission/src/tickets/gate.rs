//! The checks an arrival passes before it may claim a ticket, cheapest first and all in
//! memory: the sale's state, what the stock can still serve, the customer's and the
//! sale's rate, the queue's depth and the broker's flow control.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use flashgate_common::domain::CustomerId;
use flashgate_common::http::Problem;

use crate::limits::retry_after_secs;
use crate::sales::{Admission, Outcome, SaleHandle, SaleState};
use crate::state::AppState;

/// Why an arrival was turned away, and how it is counted.
pub(super) struct Refusal {
    /// The answer.
    pub problem: Problem,
    /// The counter it goes to.
    pub outcome: Outcome,
}

impl Refusal {
    fn new(problem: Problem, outcome: Outcome) -> Self {
        Self { problem, outcome }
    }

    /// Whether a customer who already holds a ticket should get it back instead.
    pub(super) fn defers_to_held_ticket(&self) -> bool {
        matches!(self.outcome, Outcome::SoldOut | Outcome::NotOpen)
    }
}

/// Lets the arrival through (`Ok(waitlisted)`) or says why not.
pub(super) fn check(
    state: &AppState,
    sale: &SaleHandle,
    customer: &CustomerId,
) -> Result<bool, Refusal> {
    let waitlisted = check_stock(state, sale)?;
    check_customer(state, sale, customer)?;
    if let Err(wait) = sale.check_rate() {
        let problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "the sale is admitting at its limit; retry",
        )
        .retry_after(retry_after_secs(wait));
        return Err(Refusal::new(problem, Outcome::RateLimited));
    }
    check_queue(state, sale)?;
    Ok(waitlisted)
}

/// The customer's own rate.
pub(super) fn check_customer(
    state: &AppState,
    sale: &SaleHandle,
    customer: &CustomerId,
) -> Result<(), Refusal> {
    let Err(wait) = state
        .limits
        .check_customer(sale.id().as_str(), customer.as_str())
    else {
        return Ok(());
    };
    let problem = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "this customer is asking too often",
    )
    .retry_after(retry_after_secs(wait));
    Err(Refusal::new(problem, Outcome::CustomerRateLimited))
}

fn check_stock(state: &AppState, sale: &SaleHandle) -> Result<bool, Refusal> {
    let now = Utc::now();
    match sale.state(now) {
        SaleState::Paused => {
            let problem = Problem::new(
                StatusCode::CONFLICT,
                "sale_not_open",
                "the sale is paused; try again later",
            );
            return Err(Refusal::new(problem, Outcome::NotOpen));
        }
        SaleState::Scheduled => {
            let settings = sale.settings();
            let (starts, opens) = (settings.starts_at, settings.prequeue_opens_at);
            let detail = match opens.filter(|_| settings.fairness.drawn_at.is_none()) {
                Some(opens) => format!(
                    "the pre-queue opens at {}, the sale at {}",
                    opens.to_rfc3339(),
                    starts.to_rfc3339()
                ),
                None => format!("the sale opens at {}", starts.to_rfc3339()),
            };
            let problem = Problem::new(StatusCode::CONFLICT, "sale_not_open", detail)
                .retry_after(not_open_retry_after(now, opens, starts));
            return Err(Refusal::new(problem, Outcome::NotOpen));
        }
        SaleState::SoldOut | SaleState::Open => {}
    }
    match sale.admission(state.config.admission.oversubscription_factor) {
        Admission::Admit => Ok(false),
        Admission::Waitlist => Ok(true),
        Admission::SoldOut => Err(Refusal::new(
            Problem::new(StatusCode::GONE, "sold_out", "every unit is sold"),
            Outcome::SoldOut,
        )),
        Admission::Oversubscribed => Err(Refusal::new(
            Problem::new(
                StatusCode::GONE,
                "sold_out",
                "the tickets ahead of you already claim every unit left; admission reopens if reservations expire",
            ),
            Outcome::SoldOut,
        )),
    }
}

/// Seconds to wait before the sale (or its pre-queue) opens, drawn at random over the
/// pre-queue's window: every moment of the window is as good as another (the order is
/// drawn at the opening), so the crowd need not come back in one instant. Without a
/// window (the sale opens first come, first served) it is the time to the opening.
pub(super) fn not_open_retry_after(
    now: DateTime<Utc>,
    prequeue_opens_at: Option<DateTime<Utc>>,
    starts_at: DateTime<Utc>,
) -> u64 {
    let secs = |at: DateTime<Utc>| (at - now).num_seconds().clamp(1, 3600) as u64;
    match prequeue_opens_at {
        Some(opens) if opens > now && opens < starts_at => {
            let (first, last) = (secs(opens), secs(starts_at).max(secs(opens)));
            rand::random_range(first..=last)
        }
        _ => secs(starts_at),
    }
}

fn check_queue(state: &AppState, sale: &SaleHandle) -> Result<(), Refusal> {
    let live = sale.live();
    if live.queued() as u64 >= state.config.admission.max_queue_depth {
        let drain_secs = (live.queued() as f64 / live.service_rate.max(1.0)).ceil() as u64;
        let problem = Problem::unavailable(
            "queue_saturated",
            "the queue is full; retry shortly",
            drain_secs.clamp(1, 60),
        );
        return Err(Refusal::new(problem, Outcome::QueueSaturated));
    }
    if state.publisher.is_blocked() {
        let problem = Problem::unavailable(
            "broker_blocked",
            "the message broker is applying flow control; retry",
            5,
        );
        return Err(Refusal::new(problem, Outcome::QueueSaturated));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_arrivals_are_told_to_come_back_at_moments_spread_over_the_window() {
        let now = Utc::now();
        let opens = now + chrono::Duration::seconds(60);
        let starts = now + chrono::Duration::seconds(600);
        let waits: Vec<u64> = (0..300)
            .map(|_| not_open_retry_after(now, Some(opens), starts))
            .collect();
        assert!(waits.iter().all(|w| (59..=600).contains(w)), "{waits:?}");
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(
            distinct.len() > 100,
            "not spread: {} distinct",
            distinct.len()
        );
        // No window: the opening itself.
        assert!((599..=600).contains(&not_open_retry_after(now, None, starts)));
    }
}
