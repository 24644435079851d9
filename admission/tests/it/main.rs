//! The front door against the real PostgreSQL, Redis and RabbitMQ (no workers).
#![allow(clippy::unwrap_used)]

mod admin;
mod backpressure;
mod support;
mod tickets;
