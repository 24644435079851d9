//! flashgate's product catalog: browsing traffic (10–100× checkout's, on a handful of hot
//! products) served from a small in-process cache and Redis in front of PostgreSQL. A hot
//! key's expiry causes one query (coalescing, early refresh), a dead or hung Redis
//! degrades to PostgreSQL behind a concurrency limit (breaker), and product writes reach
//! every process (pub/sub invalidation). Availability is live, never older than a second.

mod availability;
mod cache;
mod catalog;
mod error;
mod http;
mod invalidation;
mod lookup;
mod pages;
mod products;
mod stats;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, put};
use flashgate_common::Config;
use flashgate_common::http::{self as common_http, ready, require_admin};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use catalog::Catalog;
pub use error::FillError;
pub use products::{Product, ProductInput, upsert as upsert_product};
pub use stats::Stats;

/// The catalog's API.
#[derive(utoipa::OpenApi)]
#[openapi(paths(http::list_products, http::get_product, http::put_product))]
struct CatalogApi;

/// The catalog's routes, their document and readiness checks.
pub fn routes(catalog: Arc<Catalog>, config: &Config) -> common_http::RoleHttp {
    let admin = Router::new()
        .route("/admin/v1/products/{sku}", put(http::put_product))
        .route_layer(middleware::from_fn_with_state(
            config.admin_token.clone(),
            require_admin,
        ));
    let api = Router::new()
        .route("/v1/products", get(http::list_products))
        .route("/v1/products/{sku}", get(http::get_product))
        .merge(admin)
        .with_state(catalog.clone());
    // Redis is deliberately not a readiness check: without it the catalog serves from
    // PostgreSQL, and taking every catalog out of the load balancer would be the outage.
    let checks = vec![ready::postgres(catalog.pool.clone())];
    common_http::RoleHttp {
        api,
        openapi: common_http::openapi::complete(
            <CatalogApi as utoipa::OpenApi>::openapi(),
            "flashgate catalog",
        ),
        checks,
        max_body_bytes: 64 * 1024,
    }
}

/// Runs the catalog on `listener` until `shutdown`.
pub async fn run(
    config: Arc<Config>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> flashgate_common::Result<()> {
    let catalog = Arc::new(Catalog::connect(&config).await?);
    serve(catalog, &config, listener, shutdown).await
}

/// Serves `catalog` on `listener`, following invalidations, until `shutdown`. Tests use
/// it to keep a handle on the catalog they run.
pub async fn serve(
    catalog: Arc<Catalog>,
    config: &Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> flashgate_common::Result<()> {
    let listening = tokio::spawn(catalog.clone().listen(shutdown.clone()));
    let ops = common_http::bind_ops(config.catalog.ops_listen)?;
    tracing::info!(addr = %listener.local_addr()?, ops = ?config.catalog.ops_listen, "catalog listening");
    let routes = routes(catalog, config);
    common_http::serve_role(listener, ops, routes, shutdown, config).await?;
    listening.await.ok();
    Ok(())
}
