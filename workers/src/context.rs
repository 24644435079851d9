//! What every worker task shares.

use std::sync::Arc;

use flashgate_common::amqp::{Amqp, Publisher};
use flashgate_common::live::Redis;
use flashgate_common::pressure::Pressure;
use flashgate_common::{Config, Error, db};
use sqlx::PgPool;
use tokio_util::sync::{CancellationToken, DropGuard};

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
    /// Whether a door is behind, and the pace of payments meanwhile.
    pub pressure: Arc<Pressure>,
    /// Stops following the doors' signal with the context.
    _reading: DropGuard,
}

impl Context {
    /// Connects everything; the Stripe key is required.
    pub async fn connect(config: Arc<Config>) -> flashgate_common::Result<Self> {
        let key = config.stripe.api_key.clone().ok_or_else(|| {
            Error::Config("stripe.api_key is required by the worker role (`flashgate all` embeds the emulator)".into())
        })?;
        let amqp = Amqp::new(&config.amqp)?;
        let redis = Redis::connect(&config.redis)?;
        let reading = CancellationToken::new();
        // Nothing to follow while the doors never signal (`admission.pressure_lag_ms` 0).
        let per_second = if config.admission.pressure_lag_ms == 0 {
            0
        } else {
            config.worker.pressed_payments_per_second
        };
        let pressure = Pressure::follow(redis.clone(), per_second, reading.clone());
        Ok(Self {
            pool: db::connect(&config.database).await?,
            redis,
            pressure,
            _reading: reading.drop_guard(),
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
