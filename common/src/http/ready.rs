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

/// The broker answers: a channel is opened (and closed) on a pooled connection. Having a
/// connection is not enough: one cut off by a partition stays open until its heartbeat
/// fails, and a door would keep taking shoppers it cannot publish for meanwhile.
pub fn amqp(amqp: Amqp) -> ReadinessCheck {
    (
        "rabbitmq",
        Arc::new(move || {
            let amqp = amqp.clone();
            async move {
                let connection = amqp.connection().await.map_err(|e| e.to_string())?;
                let channel = connection
                    .create_channel()
                    .await
                    .map_err(|e| e.to_string())?;
                channel
                    .close(200, "readiness checked".into())
                    .await
                    .map_err(|e| e.to_string())
            }
            .boxed()
        }),
    )
}
