//! HTTP plumbing shared by every service: problem+json errors, extractors whose
//! rejections are problems too, `/healthz` `/readyz` `/metrics`, request ids, tracing,
//! latency metrics, panic containment, and graceful serving.

mod auth;
mod extract;
mod layers;
mod ops;
mod problem;
pub mod ready;

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::require_admin;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use layers::with_common_layers;
pub use ops::{ReadinessCheck, ops_router};
pub use problem::Problem;

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains in-flight
/// requests. Handlers can extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
