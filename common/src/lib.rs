//! Shared plumbing for every flashgate role: configuration, telemetry, connection pools,
//! the AMQP topology and message types, Redis keys and live state, the domain newtypes,
//! the ticket's log trail, and the ledger that moves stock between the sale's terms.
//! What one crate alone uses lives in that crate (ticket tokens in the door, Stripe's
//! client in the workers, signal handling in the binary).
//!
//! Nothing here owns a process: the service crates build their state from these pieces,
//! and the `flashgate` binary wires them together.

pub mod amqp;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod fairness;
pub mod http;
pub mod inflight;
pub mod ledger;
pub mod live;
pub mod pow;
pub mod pressure;
pub mod priority;
pub mod telemetry;
pub mod trail;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use config::Config;
pub use error::{Error, Result};
