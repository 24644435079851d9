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
    AmqpConfig, ConnectionsConfig, DatabaseConfig, DrainConfig, LogFormat, RedisConfig,
    StripeConfig, TelemetryConfig,
};
pub use roles::{
    AdmissionConfig, CaptchaConfig, CaptchaProvider, CatalogConfig, IdentityConfig, IdentityMode,
    PassConfig, RateConfig, StripeSimConfig, WebhookConfig, WorkerConfig,
};

use crate::{Error, Result};

/// `FLASHGATE_` variables that are not settings: the configuration file's path, and the
/// door `flashgate admin` talks to.
const NOT_SETTINGS: [&str; 2] = ["config", "admin_url"];

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
    /// How HTTP roles stop: not ready first, then a bounded drain.
    pub drain: DrainConfig,
    /// How HTTP roles hold connections: how many at once, how long a request's head may take.
    pub connections: ConnectionsConfig,
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
            .merge(
                Env::prefixed("FLASHGATE_")
                    .split("__")
                    .ignore(&NOT_SETTINGS),
            )
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
        self.connections.check(&mut problems);
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

    /// The token itself, to present it (the `flashgate admin` client).
    pub fn expose_secret(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
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
    fn identity_from_a_login_needs_its_keys_issuer_and_audience() {
        let mut config = Config::default();
        config.admission.identity.mode = IdentityMode::Jwt;
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("needs hs256_secret, jwks_file or jwks_url"),
            "{err}"
        );
        assert!(err.contains("needs issuer and audience"), "{err}");
        config.admission.identity.hs256_secret = Some(SecretString::from("s"));
        config.admission.identity.issuer = Some("https://login/".into());
        config.admission.identity.audience = Some("flashgate".into());
        config.validate().unwrap();
    }

    #[test]
    fn a_retention_shorter_than_stripes_redelivery_window_is_refused() {
        let mut config = Config::default();
        config.worker.stripe_events_retention_days = 3;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("worker.stripe_events_retention_days"), "{err}");
    }

    /// Dotted names of every setting, with the Debug form of its default: read off the
    /// pretty Debug form of the defaults, where a section's fields sit one level (four
    /// spaces) deeper than the section.
    fn settings(config: &Config) -> Vec<(String, String)> {
        let text = format!("{config:#?}");
        let (mut sections, mut settings) = (Vec::<String>::new(), Vec::new());
        for line in text.lines() {
            let depth = (line.len() - line.trim_start().len()) / 4;
            let Some((name, value)) = line.trim().split_once(": ") else {
                continue;
            };
            if depth == 0
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            sections.truncate(depth - 1);
            if value.ends_with('{') {
                sections.push(name.to_owned());
            } else {
                let mut path = sections.clone();
                path.push(name.to_owned());
                settings.push((path.join("."), value.to_owned()));
            }
        }
        settings
    }

    fn keys(dict: &figment::value::Dict, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in dict {
            let path = format!("{prefix}{key}");
            match value.as_dict() {
                Some(section) => keys(section, &format!("{path}."), out),
                None => out.push(path),
            }
        }
    }

    #[test]
    fn a_sample_configuration_names_every_setting() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/flashgate.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let sample: Config = Figment::from(Toml::string(&text)).extract().unwrap();
        sample.validate().unwrap();
        // The values written are the defaults (secrets are redacted on both sides).
        assert_eq!(format!("{sample:#?}"), format!("{:#?}", Config::default()));

        let dict: figment::value::Dict = Figment::from(Toml::string(&text)).extract().unwrap();
        let mut written = Vec::new();
        keys(&dict, "", &mut written);
        let all = settings(&Config::default());
        assert!(all.len() > 60, "the settings were read off: {all:?}");
        for (name, default) in &all {
            let leaf = name.rsplit('.').next().unwrap();
            // A setting unset by default is shown as a commented example.
            let shown = written.contains(name)
                || (default.starts_with("None") && text.contains(&format!("Example: {leaf} =")));
            assert!(shown, "deploy/flashgate.toml does not name {name}");
        }
        for name in &written {
            assert!(
                all.iter().any(|(n, _)| n == name),
                "{name} is not a setting"
            );
        }
    }

    #[test]
    fn every_variable_the_deployment_kit_sets_is_a_setting() {
        let all = settings(&Config::default());
        for file in [
            "compose.yaml",
            "example.env",
            "Dockerfile",
            "systemd/flashgate@.service",
        ] {
            let path = format!("{}/../deploy/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            let names = text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            for variable in names.filter(|w| w.starts_with("FLASHGATE_") && w.len() > 10) {
                let name = variable["FLASHGATE_".len()..]
                    .to_ascii_lowercase()
                    .replace("__", ".");
                assert!(
                    NOT_SETTINGS.contains(&name.as_str()) || all.iter().any(|(n, _)| *n == name),
                    "deploy/{file} sets {variable}, which is not a setting"
                );
            }
        }
    }
}
