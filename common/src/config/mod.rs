//! Typed, layered configuration: defaults, then an optional TOML file (`flashgate.toml`, or
//! the path in `FLASHGATE_CONFIG`), then `FLASHGATE_*` environment variables with `__`
//! between levels (`FLASHGATE_DATABASE__URL`; the admin token is `FLASHGATE_ADMIN_TOKEN`).
//! Everything is validated once at start; secrets never reach a log.

mod infra;
mod roles;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;

pub use infra::{
    AmqpConfig, DatabaseConfig, LogFormat, RedisConfig, StripeConfig, TelemetryConfig,
};
pub use roles::{
    AdmissionConfig, CatalogConfig, RateConfig, StripeSimConfig, WebhookConfig, WorkerConfig,
};

use crate::{Error, Result};

/// The whole configuration of a flashgate process, whatever roles it runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Bearer token of every admin API (sales, admission rate, products). Empty: the admin
    /// APIs refuse everyone.
    pub admin_token: AdminToken,
    /// PostgreSQL, the source of truth for stock, orders and events.
    pub database: DatabaseConfig,
    /// Redis: ticket status, queue positions, live stock numbers, the catalog cache.
    pub redis: RedisConfig,
    /// RabbitMQ: the ticket and payment queues.
    pub amqp: AmqpConfig,
    /// The front door.
    pub admission: AdmissionConfig,
    /// The reservation, payment and maintenance workers.
    pub worker: WorkerConfig,
    /// The Stripe webhook receiver.
    pub webhook: WebhookConfig,
    /// The product catalog.
    pub catalog: CatalogConfig,
    /// The Stripe API.
    pub stripe: StripeConfig,
    /// The Stripe emulator (`flashgate stripe-sim`, or embedded when no key is set).
    pub stripe_sim: StripeSimConfig,
    /// Logs and metrics.
    pub telemetry: TelemetryConfig,
}

impl Config {
    /// Loads and validates the configuration; `file` overrides `FLASHGATE_CONFIG`.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let explicit = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("FLASHGATE_CONFIG").map(PathBuf::from));
        if let Some(path) = &explicit
            && !path.exists()
        {
            return Err(Error::Config(format!("{} does not exist", path.display())));
        }
        let path = explicit.unwrap_or_else(|| PathBuf::from("flashgate.toml"));
        let config: Config = Figment::new()
            .merge(Toml::file(path))
            .merge(Env::prefixed("FLASHGATE_").split("__").ignore(&["config"]))
            .extract()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section; the error lists all problems at once.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        self.database.check(&mut problems);
        self.redis.check(&mut problems);
        self.amqp.check(&mut problems);
        self.admission.check(&mut problems);
        self.worker.check(&mut problems);
        self.webhook.check(&mut problems);
        self.catalog.check(&mut problems);
        self.stripe.check(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(problems.join("; ")))
        }
    }
}

/// A bearer token; compared in constant time, never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct AdminToken(SecretString);

impl AdminToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// Whether `presented` is this token. An empty token matches nothing.
    pub fn matches(&self, presented: &str) -> bool {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        let expected = self.0.expose_secret().as_bytes();
        !expected.is_empty() && bool::from(expected.ct_eq(presented.as_bytes()))
    }
}

impl Default for AdminToken {
    fn default() -> Self {
        Self::new("")
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([REDACTED])")
    }
}

/// Records a problem when `ok` is false.
pub(crate) fn require(problems: &mut Vec<String>, ok: bool, what: &str) {
    if !ok {
        problems.push(what.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn an_empty_admin_token_matches_nothing() {
        assert!(!AdminToken::default().matches(""));
        let token = AdminToken::new("s3cret-token");
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-tokeN"));
        assert_eq!(format!("{token:?}"), "AdminToken([REDACTED])");
    }

    #[test]
    fn all_problems_are_reported_together() {
        let mut config = Config::default();
        config.worker.batch_size = 0;
        config.admission.oversubscription_factor = 0.0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("worker.batch_size"), "{err}");
        assert!(err.contains("admission.oversubscription_factor"), "{err}");
    }

    #[test]
    fn a_retention_shorter_than_stripes_redelivery_window_is_refused() {
        let mut config = Config::default();
        config.worker.stripe_events_retention_days = 3;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("worker.stripe_events_retention_days"), "{err}");
    }
}
