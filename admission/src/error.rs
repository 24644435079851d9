//! Errors of the front door, and what a client sees of each.
//!
//! Policy: anything the client can fix or wait out is a specific problem with a stable
//! code (4xx, or 503 with `Retry-After` when a dependency is saturated or down). Anything
//! else is a 500 that says nothing internal; its cause chain is logged once, here, inside
//! the request's span. A ticket is never reported as queued unless the broker confirmed it.

use axum::response::{IntoResponse, Response};
use flashgate_common::http::Problem;

/// Convenience alias for handlers and their helpers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client-facing answer decided by the handler.
    #[error("{}: {}", .0.code, .0.detail)]
    Problem(Problem),
    /// PostgreSQL failed.
    #[error("database")]
    Database(#[from] sqlx::Error),
    /// Shared infrastructure failed (Redis, broker, configuration).
    #[error(transparent)]
    Infra(#[from] flashgate_common::Error),
    /// Redis failed.
    #[error("redis")]
    Redis(#[from] redis::RedisError),
}

impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        Self::Problem(problem)
    }
}

impl Error {
    /// The client's answer; anything unexpected is logged here, once.
    pub fn into_problem(self) -> Problem {
        match self {
            Self::Problem(problem) => problem,
            Self::Database(sqlx::Error::PoolTimedOut) => {
                tracing::warn!("database pool exhausted");
                Problem::unavailable("database_busy", "the database is saturated; retry", 1)
            }
            Self::Redis(ref e)
                if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() =>
            {
                tracing::warn!(error = %e, "redis unavailable");
                Problem::unavailable("redis_unavailable", "live state is unavailable; retry", 1)
            }
            Self::Infra(ref e) if e.is_transient() => {
                tracing::warn!(error = ?e, "dependency unavailable");
                Problem::unavailable(
                    "dependency_unavailable",
                    "a dependency is unavailable; retry",
                    1,
                )
            }
            other => {
                tracing::error!(error = ?other, "request failed");
                Problem::internal()
            }
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.into_problem().into_response()
    }
}
