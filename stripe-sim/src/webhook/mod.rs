//! Webhook delivery: events queue here as they are emitted, and a background dispatcher
//! POSTs them, signed as Stripe signs them, retrying with exponential backoff.
//!
//! API requests only ever `send` on an unbounded channel, so they never wait on
//! delivery. The channel may grow, but each job is a reference-counted payload already
//! kept in the event log; the real bound is on concurrent deliveries (see `courier`).

mod courier;
mod dispatcher;
mod signature;

use std::sync::Arc;

use crate::{Faults, WebhookEndpoint};

pub(crate) use courier::Courier;
pub(crate) use dispatcher::run;

/// One event to deliver to one endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) event_id: String,
    pub(crate) endpoint: WebhookEndpoint,
    /// The exact bytes to sign and send, identical on every attempt.
    pub(crate) body: Arc<str>,
    /// The faults in force when the event was queued: a switch turned off right after a
    /// request still applies to that request's events, however late the dispatcher runs.
    pub(crate) faults: Faults,
}
