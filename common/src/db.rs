//! PostgreSQL pool and migrations.

use std::str::FromStr;

use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::Result;
use crate::config::DatabaseConfig;

/// The embedded migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects a pool; connections carry the configured statement timeout.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool> {
    let statement_timeout = config.statement_timeout_ms.to_string();
    let options = PgConnectOptions::from_str(config.url.expose_secret())?
        .application_name("flashgate")
        .options([("statement_timeout", statement_timeout.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout())
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Whether a database error is worth retrying: lost connections, pool timeouts,
/// serialization failures, deadlocks, lock and statement timeouts, a server shutting down.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            matches!(
                code.as_ref(),
                "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "53300"
            ) || code.starts_with("08")
        }),
        _ => false,
    }
}

/// The constraint a database error violated, if it is a constraint violation. Callers
/// turn known constraints into domain errors at the query site.
pub fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(e) => e.constraint(),
        _ => None,
    }
}
