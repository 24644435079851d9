//! flashgate's front door. Hands every shopper a queue ticket at once, under layered,
//! live-tunable backpressure that knows the stock: a GCRA limiter per sale, keyed
//! limiters per client address and customer, queue-depth and broker watermarks, and an
//! immediate `410 sold_out` once nothing can come of a ticket. A ticket is answered
//! `202` only after the broker confirmed it. Polls read one Redis key.

pub mod admin;
pub mod captcha;
mod error;
mod i18n;
pub mod identity;
mod limits;
pub mod pass;
pub mod pow;
mod sales;
mod sales_api;
mod state;
pub mod ticket_token;
mod tickets;
mod waiting_room;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flashgate_common::amqp::{Amqp, Publisher};
use flashgate_common::http::{self, Problem, ready};
use flashgate_common::live::Redis;
use flashgate_common::{Config, db};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ticket_token::TicketSigner;

pub use error::{Error, Result};
pub use limits::ClientAddress;
pub use state::{AppState, Inner};

/// Connects to the services and builds the shared state.
pub async fn build_state(config: Arc<Config>) -> flashgate_common::Result<AppState> {
    let pool = db::connect(&config.database).await?;
    let redis = Redis::connect(&config.redis)?;
    let amqp = Amqp::new(&config.amqp)?;
    if let Err(e) = amqp.declare_topology().await {
        tracing::warn!(error = ?e, "could not declare the queues yet; tickets get 503 until the broker is back");
    }
    let secret = config.admission.ticket_secret.expose_secret();
    let signer = if secret.is_empty() {
        tracing::warn!(
            "admission.ticket_secret is not set: tickets will not survive a restart or work across processes"
        );
        TicketSigner::random()
    } else {
        TicketSigner::new(secret.as_bytes())
    };
    let identity = Arc::new(identity::Identity::new(&config.admission.identity).await?);
    let pass = pass::PassSigner::new(&config.admission.pass)?;
    let captcha = captcha::Captcha::new(&config.admission.captcha)?;
    let publisher = Publisher::new(amqp.clone());
    let batcher = tickets::TicketBatcher::start(tickets::Outlet {
        publisher: publisher.clone(),
        redis: redis.clone(),
        queue: amqp.topology().tickets(),
        batch_max: config.admission.publish_batch_max,
        in_flight: config.admission.publishes_in_flight,
    });
    Ok(AppState::new(Inner {
        sales: Arc::new(sales::SaleDirectory::new(pool.clone(), redis.clone())),
        limits: Arc::new(limits::Limits::new(&config.admission)),
        publisher,
        batcher,
        inflight: flashgate_common::inflight::InFlight::default(),
        pacer: tickets::Pacer::new(
            config.admission.max_pending_arrivals,
            config.admission.pace_above_pending,
        ),
        db_lookups: tokio::sync::Semaphore::new(
            (config.database.max_connections as usize / 4).max(1),
        ),
        config,
        pool,
        redis,
        amqp,
        signer,
        identity,
        pass,
        captcha,
        products: Default::default(),
    }))
}

/// The door's API: shoppers' tickets and the operators' admin routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    tickets::issue,
    tickets::poll,
    pass::pass,
    pass::jwks,
    sales_api::get_sale,
    sales_api::get_fairness,
    pow::challenge,
    waiting_room::join,
    waiting_room::page,
    admin::list_sales,
    admin::put_sale,
    admin::patch_admission,
    admin::get_stats,
    admin::get_audit,
    admin::live,
    admin::console,
))]
struct DoorApi;

/// The door's document, with the most units a ticket may ask for as configured.
fn document(max_quantity: i32) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{RefOr, Schema};
    let mut document = <DoorApi as utoipa::OpenApi>::openapi();
    let request = document
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("TicketRequest"));
    if let Some(RefOr::T(Schema::Object(request))) = request
        && let Some(RefOr::T(Schema::Object(quantity))) = request.properties.get_mut("quantity")
    {
        quantity.maximum = Some(utoipa::Number::Int(max_quantity as isize));
    }
    http::openapi::complete(document, "flashgate door (admission)")
}

/// The door's routes, their document and readiness checks.
pub fn routes(state: AppState) -> http::RoleHttp {
    let issue = post(tickets::issue)
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_address));
    let challenge = get(pow::challenge)
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_address));
    let api = Router::new()
        .route("/v1/sales/{sale_id}/tickets", issue)
        .route("/v1/sales/{sale_id}/challenge", challenge)
        .route("/sales/{sale_id}/join", get(waiting_room::join))
        .route("/v1/tickets/{ticket}", get(tickets::poll))
        .route("/v1/tickets/{ticket}/pass", get(pass::pass))
        .route("/.well-known/jwks.json", get(pass::jwks))
        .route("/v1/sales/{sale_id}", get(sales_api::get_sale))
        .route("/v1/sales/{sale_id}/fairness", get(sales_api::get_fairness))
        .route("/queue/{ticket}", get(waiting_room::page))
        .route("/admin/console", get(admin::console))
        .merge(admin::router(state.clone()))
        .with_state(state.clone());
    let checks = vec![
        ready::postgres(state.pool.clone()),
        ready::redis(state.redis.clone()),
        ready::amqp(state.amqp.clone()),
    ];
    http::RoleHttp {
        api,
        openapi: document(state.config.admission.max_quantity),
        checks,
        max_body_bytes: state.config.admission.max_body_bytes,
    }
}

async fn limit_address(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let client = state.limits.client_address(peer.ip(), request.headers());
    request
        .extensions_mut()
        .insert(limits::ClientAddress(client));
    let proven = asks_for_work(&state, request.uri().path()).await;
    match state.limits.check_address(client, proven) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            metrics::counter!("flashgate_admission_rejected_total", "sale" => "*", "reason" => "address_rate_limited").increment(1);
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "too many requests from this address",
            )
            .retry_after(limits::retry_after_secs(wait))
            .into_response()
        }
    }
}

/// Whether the request is for a sale that asks each arrival for proof of work (`/v1/sales/{sale}/…`).
async fn asks_for_work(state: &AppState, path: &str) -> bool {
    let Some(sale) = path
        .strip_prefix("/v1/sales/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| flashgate_common::domain::SaleId::parse(id).ok())
    else {
        return false;
    };
    state
        .sales
        .get(&sale)
        .await
        .ok()
        .flatten()
        .is_some_and(|s| s.settings().pow_difficulty() > 0 || s.settings().captcha)
}

/// Runs the door on `listener` until `shutdown`, then drains.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> flashgate_common::Result<()> {
    let state = build_state(config.clone()).await?;
    let refresh = tokio::spawn(state.sales.clone().refresh(
        Duration::from_millis(config.admission.live_refresh_ms),
        Duration::from_millis(config.admission.sale_cache_ms),
        shutdown.clone(),
    ));
    let prune = tokio::spawn(state.limits.clone().prune(shutdown.clone()));
    let listen = tokio::spawn(state.sales.clone().listen(shutdown.clone()));
    let keys = tokio::spawn(
        state
            .identity
            .clone()
            .refresh(config.admission.identity.clone(), shutdown.clone()),
    );
    let draws = tokio::spawn(tickets::run_prequeue(state.clone(), shutdown.clone()));
    let door = state.clone();
    let probe = tokio::spawn(flashgate_common::pressure::probe_door(
        state.redis.clone(),
        Duration::from_millis(config.admission.pressure_lag_ms),
        move || door.pacer.finished_count(),
        shutdown.clone(),
    ));
    let ops = http::bind_ops(config.admission.ops_listen)?;
    tracing::info!(addr = %listener.local_addr()?, ops = ?config.admission.ops_listen, "admission listening");
    http::serve_role(listener, ops, routes(state), shutdown, &config).await?;
    let _ = tokio::join!(refresh, prune, listen, keys, draws, probe);
    Ok(())
}
