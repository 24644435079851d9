//! The cache layers: a small in-process L1, Redis behind a deadline and a circuit breaker,
//! and the entry format that carries what early refresh (XFetch) needs.

pub(crate) mod breaker;
pub(crate) mod guarded;
pub(crate) mod l1;
pub(crate) mod remote;
