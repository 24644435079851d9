//! The cache layers: a small in-process L1, Redis behind a deadline and a circuit breaker,
//! and the entry format that carries what early refresh (XFetch) needs.

pub mod breaker;
pub mod guarded;
pub mod l1;
pub mod remote;
