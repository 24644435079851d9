//! Integration tests: each spawns its own emulator on 127.0.0.1:0 and talks to it
//! through async-stripe (raw HTTP only where headers or non-Stripe calls are the point),
//! with a real local HTTP endpoint receiving its webhooks.

#![allow(clippy::unwrap_used)]

mod browser;
mod control;
mod declines;
mod errors;
mod events;
mod faults;
mod idempotency;
mod idempotency_saving;
mod payment_intents;
mod refunds;
mod support;
mod webhook_faults;
mod webhooks;
