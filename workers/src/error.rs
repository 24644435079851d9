//! Errors of the workers, and what each means for the message in hand.
//!
//! Policy: a transient failure (database restart, lost connection, lock or statement
//! timeout, Stripe 429/5xx, broker hiccup) is retried in place with backoff for up to
//! [`TRANSIENT_PATIENCE`]; only then is the message requeued, which counts toward the
//! delivery limit past which the broker dead-letters it. A
//! permanent failure (undecodable message, unknown sale, a request Stripe refuses) sends
//! the message to the dead-letter queue at once, so it cannot block the others. Either
//! way the cause is logged once, where the delivery is settled.

/// How long a message in hand waits out a transient failure (retrying with backoff)
/// before it is requeued, which counts toward the queue's delivery limit: an outage of
/// PostgreSQL or Stripe shorter than this dead-letters nothing. Well under RabbitMQ's
/// consumer timeout (30 minutes by default), past which the broker closes the channel.
pub(crate) const TRANSIENT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

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
    Stripe(crate::stripe_api::Failure),
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
