//! The front door against the real PostgreSQL, Redis and RabbitMQ (no workers).
#![allow(clippy::unwrap_used)]

mod admin;
mod backpressure;
mod bad_input;
mod identity;
mod support;
mod tickets;
