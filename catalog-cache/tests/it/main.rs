//! The catalog against the real PostgreSQL and Redis: stampedes, invalidation across
//! processes, Redis failures, availability, HTTP caching, listing, bad input.
#![allow(clippy::unwrap_used)]

mod availability;
mod bad_input;
mod http_caching;
mod invalidation;
mod listing;
mod redis_failure;
mod stampede;
mod support;
