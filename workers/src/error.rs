//! Errors of the workers, and what each means for the message in hand.
//!
//! Policy: a transient failure (database restart, lost connection, lock or statement
//! timeout, Stripe 429/5xx, broker hiccup) leaves the message unacknowledged so it is
//! redelivered after a backoff; the broker dead-letters it past the delivery limit. A
//! permanent failure (undecodable message, unknown sale, a request Stripe refuses) sends
//! the message to the dead-letter queue at once, so it cannot block the others. Either
//! way the cause is logged once, where the delivery is settled.

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure while handling a message or a maintenance step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// PostgreSQL failed.
    #[error("database")]
    Database(#[from] sqlx::Error),
    /// Shared infrastructure failed (Redis, broker).
    #[error(transparent)]
    Infra(#[from] flashgate_common::Error),
    /// Redis failed.
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    /// The broker failed.
    #[error("amqp")]
    Amqp(#[from] lapin::Error),
    /// Stripe refused or failed.
    #[error("stripe: {0:?}")]
    Stripe(flashgate_common::stripe::Failure),
    /// The message can never be handled (undecodable, refers to nothing).
    #[error("poison message: {0}")]
    Poison(String),
}

impl Error {
    /// Whether a redelivery later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(e) => flashgate_common::db::is_transient(e),
            Self::Infra(e) => e.is_transient(),
            Self::Redis(_) | Self::Amqp(_) => true,
            Self::Stripe(failure) => failure.is_retryable(),
            Self::Poison(_) => false,
        }
    }
}
