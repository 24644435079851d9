//! The workers' behaviour, on the whole stack against the real services: reservations
//! (batched, idempotent under redelivery, dead-lettering poison without stopping, the
//! wait-list) and payments (one idempotency chain from ticket to finalized order,
//! reconciliation, expiry racing payment).
#![allow(clippy::unwrap_used)]

mod maintenance;
mod payments;
mod reservations;
mod support {
    pub(crate) use flashgate_testkit::*;
}
