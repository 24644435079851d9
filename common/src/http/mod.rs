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
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

pub use auth::require_admin;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use layers::with_common_layers;
pub use ops::{ReadinessCheck, ops_router};
pub use problem::Problem;

/// Connections the kernel completes and holds for the server before it accepts them. The
/// standard library's 128 is too few for a crowd that connects at once: past it the kernel
/// drops the handshakes and each of those clients waits out a 1-second SYN retransmit
/// (`nstat` counted 339 listen overflows and 337 SYN retransmits over one afternoon of
/// load-test runs here). Linux caps the value at `net.core.somaxconn` (4096 by default
/// since 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) with a backlog
/// of [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::TcpStream;

    use super::*;

    /// A crowd that connects while the server accepts nobody is held by the kernel, not
    /// dropped: with the standard backlog of 128, the connects past it would wait out a
    /// 1-second SYN retransmit and miss the deadline below.
    #[tokio::test]
    async fn a_crowd_connecting_at_once_is_held_until_accepted() {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..1_000)
            .map(|_| tokio::time::timeout(Duration::from_millis(800), TcpStream::connect(addr)));
        let connected = futures_util::future::join_all(connects).await;
        let held = connected.iter().filter(|c| matches!(c, Ok(Ok(_)))).count();
        assert_eq!(held, 1_000, "connections held without an accept");
        drop(listener);
    }
}
