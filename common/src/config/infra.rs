//! Configuration of the services flashgate talks to.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::require;

/// PostgreSQL connection and pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection URL; may carry a password, so it is a secret.
    pub url: SecretString,
    /// Pool size per process. Reservation batches hold one connection each, so a few
    /// connections serve thousands of tickets a second; more only adds lock contention.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing fast (503).
    pub acquire_timeout_ms: u64,
    /// Server-side `statement_timeout`: a stuck query fails and is retried instead of
    /// holding the hot sale row.
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/flashgate".into(),
            max_connections: 16,
            acquire_timeout_ms: 3000,
            statement_timeout_ms: 5000,
        }
    }
}

impl DatabaseConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        require(
            problems,
            self.max_connections > 0,
            "database.max_connections must be > 0",
        );
        require(
            problems,
            self.acquire_timeout_ms > 0,
            "database.acquire_timeout_ms must be > 0",
        );
    }

    /// [`Self::acquire_timeout_ms`] as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

/// Redis connections and key namespace.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// Connection URL; with Sentinels, the primary used until one of them answers.
    pub url: String,
    /// Sentinel URLs (`redis://host:port`). Set: the primary is the one they name for
    /// [`Self::sentinel_master`], asked again every [`Self::sentinel_poll_ms`], and every
    /// connection moves to a new primary once they fail over.
    pub sentinels: Vec<String>,
    /// The name the Sentinels monitor the primary under.
    pub sentinel_master: String,
    /// How often the Sentinels are asked which node is primary.
    pub sentinel_poll_ms: u64,
    /// Prefix of every key and channel, so several deployments (or tests) share one Redis.
    pub prefix: String,
    /// Multiplexed connections per process. One connection pipelines every concurrent
    /// request; a few spread the socket work over the runtime's threads.
    pub connections: usize,
    /// Every command fails after this long, so a hung Redis never hangs a request.
    pub response_timeout_ms: u64,
    /// Connecting fails after this long.
    pub connect_timeout_ms: u64,
    /// Lifetime of per-ticket keys (status, customer, idempotency), past any sale.
    pub ticket_ttl_secs: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            sentinels: Vec::new(),
            sentinel_master: "flashgate".into(),
            sentinel_poll_ms: 250,
            prefix: "fg:".into(),
            connections: 4,
            response_timeout_ms: 1000,
            connect_timeout_ms: 500,
            ticket_ttl_secs: 7 * 24 * 3600,
        }
    }
}

impl RedisConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        require(
            problems,
            self.connections > 0,
            "redis.connections must be > 0",
        );
        require(
            problems,
            self.response_timeout_ms > 0,
            "redis.response_timeout_ms must be > 0",
        );
        require(
            problems,
            !self.prefix.contains(['{', '}']),
            "redis.prefix must not contain braces",
        );
        require(
            problems,
            self.sentinel_poll_ms > 0,
            "redis.sentinel_poll_ms must be > 0",
        );
    }
}

/// RabbitMQ connection and queue settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// Connection URL; carries credentials, so it is a secret.
    pub url: SecretString,
    /// Every node of a cluster, tried in turn (a connection to a node that goes away is
    /// reopened on the next). Empty: `url` alone.
    pub urls: Vec<SecretString>,
    /// Prefix of every queue and exchange name, so tests and deployments can share a broker.
    pub prefix: String,
    /// Connections in the pool (publishers share them; each consumer holds one).
    pub pool_size: usize,
    /// Confirm-mode channels a publisher spreads its messages over.
    pub publish_channels: usize,
    /// A publish not confirmed within this long counts as failed (the ticket is not issued).
    pub confirm_timeout_ms: u64,
    /// Deliveries of one message before the broker dead-letters it (quorum `x-delivery-limit`).
    pub delivery_limit: u32,
    /// Delete queues unused for this long (`x-expires`); only for throwaway test queues.
    pub queue_expires_ms: Option<u64>,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            urls: Vec::new(),
            prefix: String::new(),
            pool_size: 8,
            publish_channels: 4,
            confirm_timeout_ms: 5000,
            delivery_limit: 5,
            queue_expires_ms: None,
        }
    }
}

impl AmqpConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        require(problems, self.pool_size > 0, "amqp.pool_size must be > 0");
        require(
            problems,
            self.publish_channels > 0,
            "amqp.publish_channels must be > 0",
        );
        require(
            problems,
            self.delivery_limit > 0,
            "amqp.delivery_limit must be > 0",
        );
    }

    /// The URLs connections are opened to: [`Self::urls`], or [`Self::url`] alone.
    pub fn node_urls(&self) -> Vec<String> {
        if self.urls.is_empty() {
            vec![self.url.expose_secret().to_owned()]
        } else {
            self.urls
                .iter()
                .map(|u| u.expose_secret().to_owned())
                .collect()
        }
    }

    /// [`Self::confirm_timeout_ms`] as a duration.
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }
}

/// The Stripe API.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeConfig {
    /// Secret key. Unset: `flashgate all` embeds the Stripe emulator and uses it.
    pub api_key: Option<SecretString>,
    /// Publishable key: the waiting room's payment form (Stripe.js) and the demo's
    /// shoppers that confirm in the browser use it.
    pub publishable_key: String,
    /// API base with a trailing slash; production leaves the default.
    pub base_url: String,
    /// Stripe.js, which the waiting room loads to take the payment; production leaves
    /// the default. `flashgate all` with the embedded emulator points it at the
    /// emulator's stand-in (`/js/v3/`).
    pub js_url: String,
    /// One HTTP attempt fails after this long and is retried with the same idempotency key.
    pub timeout_ms: u64,
}

impl Default for StripeConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            publishable_key: "pk_test_flashgate".into(),
            base_url: "https://api.stripe.com/".into(),
            js_url: "https://js.stripe.com/v3/".into(),
            timeout_ms: 10_000,
        }
    }
}

impl StripeConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        require(
            problems,
            self.base_url.ends_with('/'),
            "stripe.base_url must end with '/'",
        );
        require(
            problems,
            self.js_url.starts_with("https://") || self.js_url.starts_with("http://"),
            "stripe.js_url must be an http(s) URL",
        );
        require(
            problems,
            self.publishable_key.starts_with("pk_"),
            "stripe.publishable_key must be a publishable key (pk_…)",
        );
        require(
            problems,
            self.timeout_ms > 0,
            "stripe.timeout_ms must be > 0",
        );
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logs and metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set. Each HTTP request answered is
    /// logged at INFO with target `flashgate::access` (`…,flashgate::access=off` drops
    /// those lines).
    pub log_filter: String,
    /// Where to send the spans as OpenTelemetry traces (OTLP over HTTP with protobuf, e.g.
    /// `http://127.0.0.1:4318/v1/traces`, a Collector's or Jaeger's). Unset: no export.
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            log_filter: "info,sqlx=warn,lapin=warn,hyper=warn,stripe=error".into(),
            otlp_endpoint: None,
        }
    }
}

/// How an HTTP role stops on SIGTERM: not ready first, then a bounded drain.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// How long `/readyz` answers `503` while the role still serves, so load balancers
    /// take it out before it stops accepting (longer than their check interval).
    pub not_ready_ms: u64,
    /// How long requests in flight may then take to finish before their connections are
    /// closed.
    pub deadline_ms: u64,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            not_ready_ms: 2000,
            deadline_ms: 10_000,
        }
    }
}

/// How an HTTP role holds its clients' connections.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// Connections a role's public listener holds at once (0: no limit, the default). Past
    /// it new connections wait in the kernel's listen queue until a held one closes (its
    /// client closes it, or it stays idle for the header timeout): a guard on the role's
    /// memory (each held connection costs it 10–11 KiB while idle, about 5 KiB parked,
    /// and hyper's two 8 KiB buffers more while it is being answered), paid for in waiting.
    pub max: usize,
    /// How long a connection may stay idle waiting for a request (from its opening or
    /// from the answer before), and how long a request's head may take once its first
    /// bytes came; past either, it is closed (a client trickling bytes holds nothing for
    /// longer).
    pub header_timeout_ms: u64,
    /// Park a kept-alive connection between its requests: its socket alone held, none of
    /// the HTTP server's buffers (`flashgate_common::http` `park`). An idle connection
    /// then costs about 5 KiB instead of 10–11, each request 1–2 µs more CPU (12.2
    /// against 11.0 µs a `/healthz`, `loadtest/README.md` History). Off by default.
    pub park_idle: bool,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            max: 0,
            header_timeout_ms: 20_000,
            park_idle: false,
        }
    }
}

impl ConnectionsConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        if self.header_timeout_ms == 0 {
            problems.push("connections.header_timeout_ms must be positive".into());
        }
    }

    /// [`Self::header_timeout_ms`] as a duration.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }
}
