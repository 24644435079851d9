//! What every worker task shares.

use std::sync::Arc;

use flashgate_common::amqp::{Amqp, Publisher};
use flashgate_common::live::Redis;
use flashgate_common::{Config, Error, db};
use sqlx::PgPool;

use crate::stripe_api;

/// Connections and configuration of the worker role.
pub struct Context {
    /// Configuration.
    pub config: Arc<Config>,
    /// PostgreSQL.
    pub pool: PgPool,
    /// Redis.
    pub redis: Redis,
    /// RabbitMQ.
    pub amqp: Amqp,
    /// Confirmed publisher (payment tasks, order events).
    pub publisher: Publisher,
    /// Stripe.
    pub stripe: stripe_api::Client,
}

impl Context {
    /// Connects everything; the Stripe key is required.
    pub async fn connect(config: Arc<Config>) -> flashgate_common::Result<Self> {
        let key = config.stripe.api_key.clone().ok_or_else(|| {
            Error::Config("stripe.api_key is required by the worker role (`flashgate all` embeds the emulator)".into())
        })?;
        let amqp = Amqp::new(&config.amqp)?;
        Ok(Self {
            pool: db::connect(&config.database).await?,
            redis: Redis::connect(&config.redis)?,
            publisher: Publisher::new(amqp.clone()),
            stripe: stripe_api::client(&config.stripe, &key)?,
            amqp,
            config,
        })
    }
}

/// The idempotency key of one Stripe side effect of an order. Derived, never random, so
/// every retry of that effect, by any process, after any crash, sends the same key.
pub(crate) fn idempotency_key(order: uuid::Uuid, effect: &str) -> ::stripe::IdempotencyKey {
    ::stripe::IdempotencyKey::new(format!("flashgate-{effect}-{order}"))
        .expect("a short, non-empty key")
}
