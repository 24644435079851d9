//! Errors of the catalog's read path.
//!
//! Policy: Redis failures never surface: they are counted, fed to the breaker, and the
//! read falls back to PostgreSQL. What remains is a fill that could not reach PostgreSQL
//! in time ([`FillError`]); the HTTP layer turns it into a 503 problem with
//! `Retry-After`, logged once there, saying nothing internal. Input errors are problems
//! built at the handler and never reach this type.

/// Why a fill failed. Cloneable: every coalesced waiter gets the same result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// Every database slot stayed busy.
    #[error("database saturated")]
    Busy,
    /// The database failed.
    #[error("database: {0}")]
    Database(String),
}

/// The result of a fill.
pub(crate) type Fill<T> = Result<T, FillError>;
