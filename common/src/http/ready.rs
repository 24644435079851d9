//! Readiness checks for the services every role depends on.

use std::sync::Arc;

use futures_util::FutureExt;
use sqlx::PgPool;

use super::ReadinessCheck;
use crate::amqp::Amqp;
use crate::live::Redis;

/// PostgreSQL answers a query.
pub fn postgres(pool: PgPool) -> ReadinessCheck {
    (
        "postgres",
        Arc::new(move || {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            .boxed()
        }),
    )
}

/// Redis answers a PING.
pub fn redis(redis: Redis) -> ReadinessCheck {
    (
        "redis",
        Arc::new(move || {
            let redis = redis.clone();
            async move { redis.ping().await.map_err(|e| e.to_string()) }.boxed()
        }),
    )
}

/// A RabbitMQ connection can be had.
pub fn amqp(amqp: Amqp) -> ReadinessCheck {
    (
        "rabbitmq",
        Arc::new(move || {
            let amqp = amqp.clone();
            async move {
                amqp.connection()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            .boxed()
        }),
    )
}
