//! flashgate's workers: the RabbitMQ consumers that reserve stock in batches and take
//! payment through Stripe with idempotency keys, and the maintenance loop that expires
//! holds, cancels and refunds through Stripe, relays order events and reconciles lost
//! webhooks. No state lives in memory beyond the batch in hand: kill a worker at any
//! line and nothing is oversold, charged twice or lost.

mod context;
pub mod dlq;
mod error;
pub mod maintenance;
pub mod pay;
pub mod reserve;
mod resolve;
mod session;
mod stripe_api;

use std::sync::Arc;
use std::time::Duration;

use flashgate_common::Config;
use flashgate_common::http::{self, ready};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use context::Context;
pub use error::{Error, Result};

/// Runs the consumers and the maintenance loop, and serves health and metrics on
/// `listener`, until `shutdown`; consumers finish and ack what they hold first.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> flashgate_common::Result<()> {
    let ctx = Arc::new(Context::connect(config).await?);
    let work = tokio::spawn(work(ctx.clone(), shutdown.clone()));
    let checks = vec![
        ready::postgres(ctx.pool.clone()),
        ready::redis(ctx.redis.clone()),
        ready::amqp(ctx.amqp.clone()),
    ];
    tracing::info!(addr = %listener.local_addr()?, "workers listening");
    let routes = http::RoleHttp {
        api: axum::Router::new(),
        openapi: http::openapi::complete(Default::default(), "flashgate worker"),
        checks,
        max_body_bytes: 1024,
    };
    http::serve_role(listener, None, routes, shutdown, &ctx.config).await?;
    work.await.ok();
    Ok(())
}

async fn work(ctx: Arc<Context>, shutdown: CancellationToken) {
    let mut delay = Duration::from_millis(200);
    while let Err(e) = ctx.amqp.declare_topology().await {
        tracing::warn!(error = ?e, "broker unavailable; declaring the queues again shortly");
        if shutdown
            .run_until_cancelled(tokio::time::sleep(delay))
            .await
            .is_none()
        {
            return;
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    tokio::join!(
        reserve::run(ctx.clone(), shutdown.clone()),
        pay::run(ctx.clone(), shutdown.clone()),
        maintenance::run(ctx.clone(), shutdown.clone()),
    );
}
