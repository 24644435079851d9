//! Errors of the shared plumbing.
//!
//! Policy: these are infrastructure failures (a pool that cannot connect, a broker that
//! refused a message, configuration that does not validate). Service crates wrap them in
//! their own error enums, which decide what the client sees; the cause chain is logged
//! once, where the request or delivery ends.

/// Convenience alias used across the shared crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure in shared infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration could not be read or does not validate.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// PostgreSQL failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Redis failed or timed out.
    #[error("redis error")]
    Redis(#[from] redis::RedisError),
    /// RabbitMQ failed.
    #[error("amqp error")]
    Amqp(#[from] lapin::Error),
    /// No healthy RabbitMQ connection could be had from the pool.
    #[error("amqp pool error: {0}")]
    AmqpPool(String),
    /// The broker did not confirm a publish (nack, unroutable, or timeout).
    #[error("publish not confirmed: {0}")]
    NotConfirmed(&'static str),
    /// A message could not be encoded or decoded.
    #[error("message codec error")]
    Codec(#[from] serde_json::Error),
    /// A socket or file failed (listening, serving).
    #[error("i/o error")]
    Io(#[from] std::io::Error),
    /// The Stripe client could not be built.
    #[error("stripe client error: {0}")]
    Stripe(String),
}

impl Error {
    /// Whether retrying the same operation later may succeed (connection loss, timeouts,
    /// lock or statement timeouts, a broker that is down).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Database(e) => crate::db::is_transient(e),
            Error::Redis(_) | Error::Amqp(_) | Error::AmqpPool(_) | Error::NotConfirmed(_) => true,
            Error::Io(_) => true,
            Error::Config(_) | Error::Migrate(_) | Error::Codec(_) | Error::Stripe(_) => false,
        }
    }
}
