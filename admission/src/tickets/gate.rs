//! The checks an arrival passes before it may claim a ticket, cheapest first and all in
//! memory: the sale's state, what the stock can still serve, the customer's and the
//! sale's rate, the queue's depth and the broker's flow control.

use axum::http::StatusCode;
use chrono::Utc;
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
    let sale_id = sale.id();
    if let Err(wait) = state
        .limits
        .check_customer(sale_id.as_str(), customer.as_str())
    {
        let problem = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "this customer is asking too often",
        )
        .retry_after(retry_after_secs(wait));
        return Err(Refusal::new(problem, Outcome::CustomerRateLimited));
    }
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
            let starts = sale.settings().starts_at;
            let wait = (starts - now).num_seconds().clamp(1, 3600) as u64;
            let problem = Problem::new(
                StatusCode::CONFLICT,
                "sale_not_open",
                format!("the sale opens at {}", starts.to_rfc3339()),
            )
            .retry_after(wait);
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
