//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use flashgate_common::Config;
use flashgate_common::amqp::{Amqp, Publisher};
use flashgate_common::live::Redis;
use sqlx::PgPool;

use crate::limits::Limits;
use crate::sales::SaleDirectory;
use crate::ticket_token::TicketSigner;
use crate::tickets::{IssueResult, TicketBatcher};
use flashgate_common::inflight::InFlight;

/// The door's shared state (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// Configuration.
    pub config: Arc<Config>,
    /// PostgreSQL.
    pub pool: PgPool,
    /// Redis.
    pub redis: Redis,
    /// RabbitMQ.
    pub amqp: Amqp,
    /// Confirmed publisher (its flow-control state gates the door).
    pub publisher: Publisher,
    /// Group commit of tickets to the broker.
    pub batcher: TicketBatcher,
    /// Ticket token signer.
    pub signer: TicketSigner,
    /// Known sales.
    pub sales: Arc<SaleDirectory>,
    /// Per-address and per-customer limiters.
    pub limits: Arc<Limits>,
    /// Ticket issues in flight, by customer and sale.
    pub inflight: InFlight<IssueResult>,
    /// Arrivals allowed at once past the in-memory checks (`admission.max_pending_arrivals`),
    /// told when to come back past `admission.pace_above_pending`.
    pub pacer: crate::tickets::Pacer,
    /// Polls allowed to read PostgreSQL at once (a quarter of the pool).
    pub db_lookups: tokio::sync::Semaphore,
    /// Who a shopper is (the body's word, or the shop's login's token).
    pub identity: Arc<crate::identity::Identity>,
    /// Signs passes for the shop's checkout (`None`: passes are off).
    pub pass: Option<crate::pass::PassSigner>,
    /// The captcha provider (`None`: no sale may ask for a captcha).
    pub captcha: Option<crate::captcha::Captcha>,
    /// Product names and images for the waiting room, kept a little while.
    pub(crate) products: crate::waiting_room::ProductNames,
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
