//! flashgate's Stripe webhook receiver. Verifies `Stripe-Signature` over the raw body,
//! records each event id and applies its effect in one transaction (I4: every event at
//! most once, every paid order finalized once), and answers 2xx only once that commit is
//! durable. Order transitions only move forward, whatever order events arrive in.

mod apply;
mod error;
pub mod event;
pub mod signature;

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use flashgate_common::http::{self, ready};
use flashgate_common::live::Redis;
use flashgate_common::{Config, db};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use apply::Received;
pub use error::{Error, Result};
use signature::Verifier;

/// Shared state of the receiver.
#[derive(Clone)]
pub struct AppState {
    pool: PgPool,
    redis: Redis,
    verifier: Arc<Verifier>,
}

impl AppState {
    /// Connects to the services; at least one signing secret is required.
    pub async fn connect(config: &Config) -> flashgate_common::Result<Self> {
        let secrets = &config.webhook.secrets;
        if secrets.is_empty() {
            return Err(flashgate_common::Error::Config(
                "webhook.secrets must list the endpoint's signing secret(s)".into(),
            ));
        }
        let verifier = Verifier::new(
            secrets.iter().map(|s| s.expose_secret()),
            config.webhook.tolerance_secs,
        );
        Ok(Self {
            pool: db::connect(&config.database).await?,
            redis: Redis::connect(&config.redis)?,
            verifier: Arc::new(verifier),
        })
    }
}

/// The receiver's API.
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive))]
struct WebhookApi;

/// The receiver's routes, their document and readiness checks.
pub fn routes(state: AppState, max_body_bytes: usize) -> http::RoleHttp {
    let checks = vec![
        ready::postgres(state.pool.clone()),
        ready::redis(state.redis.clone()),
    ];
    let api = Router::new()
        .route("/v1/stripe/webhook", post(receive))
        .with_state(state);
    http::RoleHttp {
        api,
        openapi: http::openapi::complete(
            <WebhookApi as utoipa::OpenApi>::openapi(),
            "flashgate webhook receiver",
        ),
        checks,
        max_body_bytes,
    }
}

/// The answer to an event taken.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Receipt {
    /// Always true.
    received: bool,
    /// What the event did.
    outcome: Received,
}

/// Takes one Stripe event: `Stripe-Signature` verified, the event recorded and applied in
/// one transaction; `2xx` only once durable, so Stripe retries anything else.
#[utoipa::path(post, path = "/v1/stripe/webhook", tag = "stripe",
    params(("Stripe-Signature" = String, Header, description = "`t=…,v1=…` over the raw body")),
    request_body(content = Object, description = "A Stripe event", content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded (or recorded before)", body = Receipt),
        (status = 400, description = "Bad signature or not a Stripe event", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The PaymentIntent's order is not known yet; Stripe retries", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Not recorded; Stripe retries", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Receipt>> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    state
        .verifier
        .verify(signature, &body, chrono::Utc::now().timestamp())?;
    let event: event::Event =
        serde_json::from_slice(&body).map_err(|e| Error::Malformed(e.to_string()))?;
    let received = apply::apply(&state.pool, &state.redis, &event).await?;
    tracing::info!(event = %event.id, kind = %event.kind, ?received, "stripe event");
    Ok(Json(Receipt {
        received: true,
        outcome: received,
    }))
}

/// Runs the receiver on `listener` until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> flashgate_common::Result<()> {
    let state = AppState::connect(&config).await?;
    let ops = http::bind_ops(config.webhook.ops_listen)?;
    tracing::info!(addr = %listener.local_addr()?, ops = ?config.webhook.ops_listen, "webhook listening");
    let routes = routes(state, config.webhook.max_body_bytes);
    http::serve_role(listener, ops, routes, shutdown, &config).await?;
    Ok(())
}
