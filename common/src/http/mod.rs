//! HTTP plumbing shared by every service: problem+json errors, extractors whose
//! rejections are problems too, `/healthz` `/readyz` `/metrics` (on the role's listener
//! or an ops listener of their own), request ids, tracing and access logs, latency
//! metrics, panic containment, and serving that drains: not ready first, then a deadline.

mod auth;
mod extract;
mod layers;
pub mod openapi;
mod ops;
mod problem;
pub mod ready;

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

pub use auth::require_admin;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use layers::{SHOPPERS, with_common_layers};
pub use ops::{ReadinessCheck, healthz_router, ops_router};
pub use problem::{Problem, ProblemBody};

use crate::config::DrainConfig;

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

/// Serves `router` on `listener` until `shutdown` is cancelled; then keeps serving for
/// `drain.not_ready_ms` (while `/readyz` answers `503`, so load balancers stop sending
/// new requests), stops accepting, and gives the requests in flight `drain.deadline_ms`
/// to finish; past it, it returns without them (the process ends and closes their
/// connections). Handlers can extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: &DrainConfig,
) -> std::io::Result<()> {
    let closing = CancellationToken::new();
    let not_ready = Duration::from_millis(drain.not_ready_ms);
    let stop_accepting = {
        let closing = closing.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(not_ready).await;
            closing.cancel();
        }
    };
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(stop_accepting)
        .into_future();
    let deadline = Duration::from_millis(drain.deadline_ms);
    tokio::select! {
        result = served => result,
        () = async { closing.cancelled().await; tokio::time::sleep(deadline).await } => {
            tracing::warn!(
                deadline_ms = drain.deadline_ms,
                "requests still in flight at the drain deadline: stopping without them"
            );
            Ok(())
        }
    }
}

/// A role's HTTP face: its API routes (state applied, common layers not yet), their
/// OpenAPI document and the checks behind its `/readyz`.
pub struct RoleHttp {
    /// The API.
    pub api: Router,
    /// The API's document, completed by [`openapi::complete`]; served at `/openapi.json`.
    pub openapi: utoipa::openapi::OpenApi,
    /// What `/readyz` asks.
    pub checks: Vec<ReadinessCheck>,
    /// Largest request body the API takes (`413` past it).
    pub max_body_bytes: usize,
}

/// Serves a role until `shutdown`, draining as [`serve`] does: the API and the
/// operational routes on `listener`, or, given an `ops` listener, the operational routes
/// there and only `/healthz` beside the API.
pub async fn serve_role(
    listener: TcpListener,
    ops: Option<TcpListener>,
    role: RoleHttp,
    shutdown: CancellationToken,
    drain: &DrainConfig,
) -> std::io::Result<()> {
    let RoleHttp {
        api,
        openapi,
        checks,
        max_body_bytes,
    } = role;
    let api = api.merge(openapi::route(&openapi));
    let ops_routes = ops_router(checks, shutdown.clone());
    let Some(ops) = ops else {
        let router = with_common_layers(api.merge(ops_routes), max_body_bytes);
        return serve(listener, router, shutdown, drain).await;
    };
    let public = with_common_layers(api.merge(healthz_router()), max_body_bytes);
    let (api, ops) = tokio::join!(
        serve(listener, public, shutdown.clone(), drain),
        serve(ops, with_common_layers(ops_routes, 1024), shutdown, drain),
    );
    api.and(ops)
}

/// Binds a role's ops listener, when it has one.
pub fn bind_ops(addr: Option<SocketAddr>) -> std::io::Result<Option<TcpListener>> {
    addr.map(bind).transpose()
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

    /// A request sent on a new connection; the status line, or the error that ended it.
    async fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        match answer.lines().next() {
            Some(status) => Ok(status.to_owned()),
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }

    /// On shutdown a role stays up, not ready, for `not_ready_ms`, then stops accepting;
    /// a request that would never finish does not hold it past the deadline.
    #[tokio::test]
    async fn a_role_shutting_down_turns_not_ready_then_drains_to_a_deadline() {
        let shutdown = CancellationToken::new();
        let router = Router::new()
            .route("/stuck", axum::routing::get(std::future::pending::<()>))
            .merge(ops_router(Vec::new(), shutdown.clone()));
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let drain = DrainConfig {
            not_ready_ms: 400,
            deadline_ms: 300,
        };
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve(listener, router, shutdown, &drain).await }
        });
        assert_eq!(get(addr, "/readyz").await.unwrap(), "HTTP/1.1 200 OK");
        let stuck = tokio::spawn(get(addr, "/stuck"));
        shutdown.cancel();
        assert_eq!(
            get(addr, "/readyz").await.unwrap(),
            "HTTP/1.1 503 Service Unavailable",
            "still accepting, not ready"
        );
        let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "stopped at the deadline");
        assert!(!stuck.is_finished(), "the stuck request never finished");
        assert!(get(addr, "/readyz").await.is_err(), "no longer accepting");
        stuck.abort();
    }

    /// With an ops listener, `/readyz` and `/metrics` are served there only; `/healthz`
    /// on both.
    #[tokio::test]
    async fn an_ops_listener_takes_readiness_and_metrics_off_the_public_one() {
        let any = || bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let (public, ops) = (any(), any());
        let (public_addr, ops_addr) = (public.local_addr().unwrap(), ops.local_addr().unwrap());
        let role = RoleHttp {
            api: Router::new().route("/v1/thing", axum::routing::get(|| async { "thing" })),
            openapi: openapi::complete(Default::default(), "test"),
            checks: Vec::new(),
            max_body_bytes: 1024,
        };
        let shutdown = CancellationToken::new();
        let drain = DrainConfig {
            not_ready_ms: 0,
            deadline_ms: 1000,
        };
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve_role(public, Some(ops), role, shutdown, &drain).await }
        });
        let ok = "HTTP/1.1 200 OK";
        let missing = "HTTP/1.1 404 Not Found";
        for (addr, path, status) in [
            (public_addr, "/v1/thing", ok),
            (public_addr, "/healthz", ok),
            (public_addr, "/readyz", missing),
            (public_addr, "/metrics", missing),
            (ops_addr, "/readyz", ok),
            (ops_addr, "/metrics", ok),
            (ops_addr, "/healthz", ok),
            (ops_addr, "/v1/thing", missing),
        ] {
            assert_eq!(get(addr, path).await.unwrap(), status, "{addr} {path}");
        }
        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "both listeners stopped");
    }
}
