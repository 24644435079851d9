//! End-to-end tests: the whole stack in one process against the real services.
#![allow(clippy::unwrap_used)]

mod accessibility;
mod bots;
mod checkout;
mod cli;
mod console;
mod controller;
mod door;
mod failover;
mod lost;
mod outages;
mod pass;
mod pay_in_page;
mod prequeue;
mod reservations;
mod support;
mod trail;
mod waiting_room;
