//! Configuration of each role.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::require;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A GCRA quota: a steady rate and the burst it may save up. A rate of 0 turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

/// The front door.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// A second listener for `/readyz`, `/metrics` and `/healthz` (they then leave the
    /// public one but for `/healthz`), e.g. on an internal interface. Unset: one listener.
    pub ops_listen: Option<SocketAddr>,
    /// HMAC key of ticket tokens; every admission process of a deployment needs the same.
    /// Empty: a random key per process (tickets then die with the process).
    pub ticket_secret: SecretString,
    /// How long a ticket token stays valid.
    pub ticket_ttl_secs: u64,
    /// Peers whose `X-Forwarded-For` is believed (load balancers). Others are the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Per client address, across sales. Keeps one address from taking a sale's whole rate.
    pub per_address: RateConfig,
    /// Per customer and sale. Generous enough for a double-click storm to get its ticket.
    pub per_customer: RateConfig,
    /// Tickets waiting in the queue above which new arrivals get 503 instead of a ticket.
    pub max_queue_depth: u64,
    /// New arrivals are told "sold out" (or wait-listed) once the tickets ahead exceed
    /// the units that could still be had times this factor.
    pub oversubscription_factor: f64,
    /// Request bodies above this size are refused (413) before parsing.
    pub max_body_bytes: usize,
    /// Largest quantity one ticket may ask for.
    pub max_quantity: i32,
    /// How often the live stock and queue numbers are re-read from Redis.
    pub live_refresh_ms: u64,
    /// How long a sale's settings are cached before being re-read from PostgreSQL.
    pub sale_cache_ms: u64,
    /// Most tickets published in one broker message (group commit: tickets that arrive
    /// while earlier publishes await their confirms go out together; one arriving at a
    /// quiet door goes out alone at once).
    pub publish_batch_max: usize,
    /// Ticket messages awaiting the broker's confirm at once.
    pub publishes_in_flight: usize,
    /// Arrivals at once in the part of the door that waits on Redis or the broker (a claim
    /// and its publish, or looking up a refused customer's ticket). Past it an arrival is
    /// answered `503 door_busy` at once instead of queueing behind Redis timeouts: a crowd
    /// larger than the door can serve is shed early and cheaply. 4,096 is about 20 times
    /// what one door serves in a millisecond-long Redis round trip on two cores.
    pub max_pending_arrivals: usize,
    /// Pending arrivals (as above) past which a new arrival is told when to come back
    /// (`429 door_paced`, from memory) instead of joining them: the moments handed out
    /// follow one another at the rate the door finishes claims, so a crowd larger than
    /// the door returns in its order at the pace the door can take, rather than all at
    /// once a second later. 0 (or `max_pending_arrivals` and above): off, and only
    /// `max_pending_arrivals` sheds, with `503`. 256: at a 20× spike (13,662 arrivals a
    /// second) 1,024 in flight queued the door's Redis calls past their time-out (p99 to
    /// a first answer 10.5 s), 256 did not (591 ms; `first-second-20261204-141121`, `-141316`).
    pub pace_above_pending: usize,
    /// Polls a second that a sale's waiting shoppers (queued, wait-listed and holding a
    /// unit), all of them together and across doors, are asked to make at most: each is
    /// told to come back no sooner than the tickets waiting ÷ this (up to 10 s), so a
    /// crowd ten times larger polls as often in total, not ten times as often. 0: no
    /// budget (only the position decides).
    pub poll_budget_per_second: u32,
    /// How late a 10 ms timer of the door's runtime must fire, while arrivals come in, for
    /// the door to count itself behind and tell the workers to hold their payments back
    /// (`worker.pressed_payments_per_second`; [`crate::pressure`]). 0 (the default):
    /// never; its A/B did not show a gain beyond the runs' spread (`loadtest/README.md`).
    pub pressure_lag_ms: u64,
    /// Who a shopper is: the body's `customer_id`, or the subject of a token the shop's
    /// login signed.
    pub identity: IdentityConfig,
    /// Passes the shop's checkout verifies offline: off without a signing key.
    pub pass: PassConfig,
    /// A captcha provider for the sales that ask arrivals to solve one (`captcha`), the
    /// alternative to proof of work; verified server-side.
    pub captcha: CaptchaConfig,
}

/// Which captcha provider the door verifies answers with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaProvider {
    /// No provider: no sale may ask for a captcha.
    #[default]
    None,
    /// Cloudflare Turnstile.
    Turnstile,
    /// hCaptcha.
    Hcaptcha,
}

impl CaptchaProvider {
    /// The provider's own verification endpoint.
    pub fn default_verify_url(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Turnstile => Some("https://challenges.cloudflare.com/turnstile/v0/siteverify"),
            Self::Hcaptcha => Some("https://api.hcaptcha.com/siteverify"),
        }
    }
}

/// `admission.captcha`: answers are checked by a POST of `secret`, `response` and
/// `remoteip` (form-encoded) to the provider's siteverify endpoint, which both providers
/// answer with `{"success": bool, ...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptchaConfig {
    /// `none`, `turnstile` or `hcaptcha`.
    pub provider: CaptchaProvider,
    /// The provider's secret key (SECRET).
    pub secret: Option<SecretString>,
    /// The public site key the join page shows the widget with.
    pub site_key: Option<String>,
    /// Where answers are verified (default: the provider's siteverify URL).
    pub verify_url: Option<String>,
    /// Longest wait for the provider; past it the arrival is answered `503`.
    pub timeout_ms: u64,
}

impl Default for CaptchaConfig {
    fn default() -> Self {
        Self {
            provider: CaptchaProvider::None,
            secret: None,
            site_key: None,
            verify_url: None,
            timeout_ms: 3000,
        }
    }
}

impl CaptchaConfig {
    fn check(&self, problems: &mut Vec<String>) {
        if self.provider == CaptchaProvider::None {
            return;
        }
        require(
            problems,
            self.secret.is_some() && self.site_key.is_some(),
            "admission.captcha needs secret and site_key with a provider",
        );
        require(
            problems,
            (100..=30_000).contains(&self.timeout_ms),
            "admission.captcha.timeout_ms must be 100..=30000",
        );
    }
}

/// A signed pass for a shopper holding a unit (`GET /v1/tickets/{ticket}/pass`), checked
/// by the shop with the public keys at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PassConfig {
    /// Ed25519 private key, PKCS#8 (SECRET): PEM (`openssl genpkey -algorithm ed25519`)
    /// or its DER in base64. Unset: no passes.
    pub signing_key: Option<SecretString>,
    /// Earlier public keys still published (JWK JSON objects), so passes signed before a
    /// key rotation verify until they expire.
    pub retired_keys: Vec<String>,
    /// How long a pass is good for, in seconds.
    pub ttl_secs: u64,
    /// The pass's `iss`.
    pub issuer: String,
    /// The pass's `aud` (the shop's checkout), if it checks one.
    pub audience: Option<String>,
}

impl Default for PassConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            retired_keys: Vec::new(),
            ttl_secs: 300,
            issuer: "flashgate".into(),
            audience: None,
        }
    }
}

/// How the door knows who is asking for a ticket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// The body's `customer_id`, as the client wrote it (development, trusted clients).
    #[default]
    None,
    /// `Authorization: Bearer <JWT>` signed by the shop's login; the customer is its `sub`.
    Jwt,
}

/// The shop's login tokens (`admission.identity.mode = "jwt"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// `none` or `jwt`.
    pub mode: IdentityMode,
    /// HS256 shared secret (SECRET). Tokens with `alg` HS256 are checked with it.
    pub hs256_secret: Option<SecretString>,
    /// A JWKS file with the login's public keys (RS256/RS384/RS512, PS256, ES256, EdDSA).
    pub jwks_file: Option<std::path::PathBuf>,
    /// A JWKS URL with the login's public keys, fetched at start and every
    /// `jwks_refresh_secs`.
    pub jwks_url: Option<String>,
    /// How often `jwks_url` is fetched again (keys rotate).
    pub jwks_refresh_secs: u64,
    /// The `iss` a token must carry.
    pub issuer: Option<String>,
    /// The `aud` a token must carry.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// With `jwt`, and for the sales that ask for proof of work, replaces
    /// `admission.per_address`: a crowd behind one address (a
    /// carrier-grade NAT, an office) is many customers, each already held to
    /// `admission.per_customer` and to one ticket, so the address limit only bounds
    /// one abusive address (tokens refused cost a signature check each). 1,000/s serves
    /// 2,000 shoppers behind one address posting and polling at once.
    pub per_address: RateConfig,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            mode: IdentityMode::None,
            hs256_secret: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            issuer: None,
            audience: None,
            leeway_secs: 30,
            per_address: RateConfig {
                per_second: 1000,
                burst: 2000,
            },
        }
    }
}

impl IdentityConfig {
    fn check(&self, problems: &mut Vec<String>) {
        if self.mode != IdentityMode::Jwt {
            return;
        }
        require(
            problems,
            self.hs256_secret.is_some() || self.jwks_file.is_some() || self.jwks_url.is_some(),
            "admission.identity.mode = \"jwt\" needs hs256_secret, jwks_file or jwks_url",
        );
        require(
            problems,
            self.issuer.as_deref().is_some_and(|i| !i.is_empty())
                && self.audience.as_deref().is_some_and(|a| !a.is_empty()),
            "admission.identity.mode = \"jwt\" needs issuer and audience",
        );
        require(
            problems,
            self.jwks_refresh_secs >= 10,
            "admission.identity.jwks_refresh_secs must be >= 10",
        );
    }
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            listen: addr(8080),
            ops_listen: None,
            ticket_secret: SecretString::from(""),
            ticket_ttl_secs: 24 * 3600,
            trusted_proxies: Vec::new(),
            per_address: RateConfig {
                per_second: 20,
                burst: 60,
            },
            per_customer: RateConfig {
                per_second: 5,
                burst: 60,
            },
            max_queue_depth: 250_000,
            oversubscription_factor: 3.0,
            max_body_bytes: 4096,
            max_quantity: 10,
            live_refresh_ms: 100,
            sale_cache_ms: 1000,
            publish_batch_max: 256,
            publishes_in_flight: 2,
            max_pending_arrivals: 4096,
            pace_above_pending: 256,
            poll_budget_per_second: 4000,
            pressure_lag_ms: 0,
            identity: IdentityConfig::default(),
            pass: PassConfig::default(),
            captcha: CaptchaConfig::default(),
        }
    }
}

impl AdmissionConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        self.identity.check(problems);
        self.captcha.check(problems);
        require(
            problems,
            (10..=3600).contains(&self.pass.ttl_secs),
            "admission.pass.ttl_secs must be 10..=3600",
        );
        require(
            problems,
            self.oversubscription_factor >= 1.0,
            "admission.oversubscription_factor must be >= 1",
        );
        require(
            problems,
            self.max_body_bytes >= 256,
            "admission.max_body_bytes must be >= 256",
        );
        require(
            problems,
            (1..=100).contains(&self.max_quantity),
            "admission.max_quantity must be 1..=100",
        );
        require(
            problems,
            self.ticket_ttl_secs >= 60,
            "admission.ticket_ttl_secs must be >= 60",
        );
        require(
            problems,
            self.live_refresh_ms > 0,
            "admission.live_refresh_ms must be > 0",
        );
        require(
            problems,
            (1..=4096).contains(&self.publish_batch_max),
            "admission.publish_batch_max must be 1..=4096",
        );
        require(
            problems,
            (1..=256).contains(&self.publishes_in_flight),
            "admission.publishes_in_flight must be 1..=256",
        );
        require(
            problems,
            self.max_pending_arrivals > 0,
            "admission.max_pending_arrivals must be > 0",
        );
    }
}

/// The workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// HTTP listen address (health and metrics).
    pub listen: SocketAddr,
    /// Most tickets one reservation transaction decides (counted in tickets, not messages:
    /// the door packs up to `publish_batch_max` in one). A batch only fills this far when
    /// the queue has a backlog (otherwise it closes after `batch_wait_ms`). Since a batch
    /// takes at most half the prefetch's messages, so that deciding, publishing and
    /// delivering overlap, larger batches no longer drain faster, and every batch in
    /// flight is held in memory: draining 200,000 queued tickets packed 8 a message, a
    /// fresh worker decided 62,113/s at 2,000 (one run) and 59,526–62,569/s at 16,000
    /// (three), and peaked at 85.0 MiB against 125.7 (`loadtest/run reserve`, 2026-12-05).
    pub batch_size: usize,
    /// Longest wait for a batch to fill once its first ticket arrived.
    pub batch_wait_ms: u64,
    /// Reservation consumers per process. One keeps a process's batches in strict arrival
    /// order (the queue is FIFO and prefetch keeps the next batch coming while one commits);
    /// more, like more worker processes, add throughput but keep order only within a batch.
    pub reserve_consumers: usize,
    /// Ticket messages one reservation consumer holds unacknowledged (RabbitMQ's prefetch;
    /// the door packs up to `publish_batch_max` tickets in one). A batch takes at most half
    /// of them, so the next batch is delivered while one is decided and published; much
    /// more only lets the first worker up take a backlog that several could share.
    pub reserve_prefetch: u16,
    /// Payment messages (each a batch of orders) handled at once per process.
    pub payment_prefetch: u16,
    /// Stripe calls in flight at once per process.
    pub payment_concurrency: usize,
    /// Payments a second the process takes up while a door says it is behind
    /// (`admission.pressure_lag_ms`; [`crate::pressure`]): the door's shoppers get the CPU
    /// the payments would spend in PostgreSQL and at Stripe, and the payments catch up once
    /// it is not. Reservations are not held back. 0: never holds back.
    pub pressed_payments_per_second: u32,
    /// Retries of one Stripe call stop after this long; kept well under the broker's
    /// consumer timeout so the message is redelivered rather than the channel closed.
    pub stripe_retry_budget_ms: u64,
    /// How often holds are expired and Stripe side effects (cancel, refund) retried.
    pub sweep_interval_ms: u64,
    /// Orders expired per sweep transaction.
    pub sweep_batch: i64,
    /// A hold that runs out while its payment is in progress at Stripe (the shopper is in
    /// a 3-D Secure step: `requires_action`; or `processing`) is extended to this many
    /// seconds from now instead of canceled, again at each expiry while it lasts.
    pub hold_extension_secs: u64,
    /// How far past the sale's hold extensions may take a hold (0: never extend): the
    /// operator's bound on how long a unit waits for a payment someone started. It also
    /// bounds how long an order with a saved card may wait for the workers to take up
    /// its payment (their backlog, not the shopper) before its hold counts from then.
    pub hold_extension_max_secs: u64,
    /// A unit held for a shopper who pays in the waiting room goes back this long after
    /// their page last asked for it (the page asks while open, hidden or not; 0: never
    /// early). Only once the page was seen: a shopper never seen (an API client, or a
    /// Redis that lost its data) keeps the whole hold.
    pub presence_timeout_secs: u64,
    /// Orders pending payment longer than this are reconciled against Stripe.
    pub reconcile_after_secs: u64,
    /// Days an applied Stripe event is kept to recognise a redelivery. Stripe retries a
    /// delivery for up to 3 days, so fewer than 4 could apply a late retry twice.
    pub stripe_events_retention_days: u32,
    /// Days an order event is kept in the outbox after it was relayed (unrelayed ones are
    /// never dropped).
    pub order_events_retention_days: u32,
    /// Days an operator's change stays in the admission audit log.
    pub audit_retention_days: u32,
    /// The worker's CPU priority below the door's (0–19, a nice value; 0: the same): the
    /// queue lets reservations and payments wait a moment, a shopper at the door should
    /// not (`flashgate_common::priority`).
    pub nice: u8,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            listen: addr(8083),
            batch_size: 2_000,
            batch_wait_ms: 5,
            reserve_consumers: 1,
            reserve_prefetch: 2000,
            payment_prefetch: 8,
            payment_concurrency: 64,
            pressed_payments_per_second: 50,
            stripe_retry_budget_ms: 30_000,
            sweep_interval_ms: 1000,
            sweep_batch: 500,
            hold_extension_secs: 60,
            hold_extension_max_secs: 300,
            presence_timeout_secs: 90,
            reconcile_after_secs: 600,
            nice: 10,
            stripe_events_retention_days: 30,
            order_events_retention_days: 7,
            audit_retention_days: 365,
        }
    }
}

impl WorkerConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        require(problems, self.nice <= 19, "worker.nice must be 0–19");
        require(
            problems,
            (1..=65_536).contains(&self.batch_size),
            "worker.batch_size must be 1..=65536",
        );
        require(
            problems,
            self.reserve_consumers > 0,
            "worker.reserve_consumers must be > 0",
        );
        require(
            problems,
            self.payment_concurrency > 0,
            "worker.payment_concurrency must be > 0",
        );
        require(
            problems,
            self.reserve_prefetch > 0,
            "worker.reserve_prefetch must be > 0",
        );
        require(
            problems,
            self.payment_prefetch > 0,
            "worker.payment_prefetch must be > 0",
        );
        require(
            problems,
            self.sweep_interval_ms > 0,
            "worker.sweep_interval_ms must be > 0",
        );
        require(
            problems,
            self.sweep_batch > 0,
            "worker.sweep_batch must be > 0",
        );
        require(
            problems,
            self.stripe_events_retention_days >= 4,
            "worker.stripe_events_retention_days must be >= 4 (Stripe redelivers for up to 3 days)",
        );
        require(
            problems,
            self.order_events_retention_days >= 1 && self.audit_retention_days >= 1,
            "worker.order_events_retention_days and worker.audit_retention_days must be >= 1",
        );
    }

    /// [`Self::batch_wait_ms`] as a duration.
    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }
}

/// The Stripe webhook receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// A second listener for `/readyz`, `/metrics` and `/healthz` (they then leave the
    /// public one but for `/healthz`), e.g. on an internal interface. Unset: one listener.
    pub ops_listen: Option<SocketAddr>,
    /// Endpoint signing secrets (`whsec_…`); several during a rotation.
    pub secrets: Vec<SecretString>,
    /// Largest accepted distance between the signature's timestamp and now.
    pub tolerance_secs: u64,
    /// Event bodies above this size are refused.
    pub max_body_bytes: usize,
    /// The receiver's CPU priority below the door's (0–19, a nice value; 0: the same):
    /// Stripe waits seconds for an answer, a shopper at the door should not.
    pub nice: u8,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            listen: addr(8082),
            ops_listen: None,
            secrets: Vec::new(),
            tolerance_secs: 300,
            max_body_bytes: 512 * 1024,
            nice: 10,
        }
    }
}

impl WebhookConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        require(
            problems,
            self.tolerance_secs > 0,
            "webhook.tolerance_secs must be > 0",
        );
        require(problems, self.nice <= 19, "webhook.nice must be 0–19");
    }
}

/// The product catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// A second listener for `/readyz`, `/metrics` and `/healthz` (they then leave the
    /// public one but for `/healthz`), e.g. on an internal interface. Unset: one listener.
    pub ops_listen: Option<SocketAddr>,
    /// Entries in the in-process cache.
    pub l1_capacity: usize,
    /// Lifetime of an in-process entry; short, so invalidation misses heal quickly.
    pub l1_ttl_ms: u64,
    /// Lifetime of a Redis entry, before jitter.
    pub redis_ttl_secs: u64,
    /// Availability is re-read at most this often (it comes from live counters); values
    /// above 1000 are refused, since availability must never be more than a second old.
    pub availability_ttl_ms: u64,
    /// PostgreSQL queries in flight at once when Redis is unavailable.
    pub db_concurrency: usize,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            listen: addr(8081),
            ops_listen: None,
            l1_capacity: 10_000,
            l1_ttl_ms: 2000,
            redis_ttl_secs: 300,
            availability_ttl_ms: 1000,
            db_concurrency: 8,
        }
    }
}

impl CatalogConfig {
    pub(crate) fn check(&self, problems: &mut Vec<String>) {
        require(
            problems,
            self.l1_capacity > 0,
            "catalog.l1_capacity must be > 0",
        );
        require(
            problems,
            self.db_concurrency > 0,
            "catalog.db_concurrency must be > 0",
        );
    }
}

/// The Stripe emulator.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeSimConfig {
    /// Listen address of `flashgate stripe-sim` (the embedded one takes a free port).
    pub listen: SocketAddr,
    /// Where events are delivered; `flashgate all` points it at its own webhook receiver.
    pub webhook_url: Option<String>,
    /// Signing secret for that endpoint.
    pub webhook_secret: SecretString,
}

impl Default for StripeSimConfig {
    fn default() -> Self {
        Self {
            listen: addr(12111),
            webhook_url: None,
            webhook_secret: SecretString::from("whsec_flashgate_dev"),
        }
    }
}
