//! HTTP plumbing shared by every service: problem+json errors, extractors whose
//! rejections are problems too, `/healthz` `/readyz` `/metrics` (on the role's listener
//! or an ops listener of their own), request ids, tracing and access logs, latency
//! metrics, panic containment, and serving that drains: not ready first, then a deadline.

mod auth;
mod extract;
mod layers;
pub mod openapi;
mod ops;
mod park;
mod problem;
pub mod ready;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub use auth::require_admin;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use layers::{SHOPPERS, with_common_layers};
pub use ops::{ReadinessCheck, healthz_router, ops_router};
pub use problem::{Problem, ProblemBody};

use crate::config::{Config, ConnectionsConfig, DrainConfig};

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
/// connections). At most `connections.max` connections are held at once (the rest wait
/// in the listen queue until one closes); a connection that takes longer than
/// `connections.header_timeout_ms` to send a request's head, or stays that long idle, is
/// closed. Between requests a kept-alive connection is parked, holding no HTTP state
/// ([`park`]). Handlers can extract `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: &DrainConfig,
    connections: &ConnectionsConfig,
) -> std::io::Result<()> {
    let closing = CancellationToken::new();
    let not_ready = Duration::from_millis(drain.not_ready_ms);
    tokio::spawn({
        let closing = closing.clone();
        async move {
            shutdown.cancelled().await;
            tokio::time::sleep(not_ready).await;
            closing.cancel();
        }
    });
    let held = Held::new(connections.max);
    // Per listener (its address), for an operator sizing `connections.max`.
    let listening = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let open = metrics::gauge!("flashgate_http_connections_open", "listener" => listening.clone());
    let parked =
        metrics::gauge!("flashgate_http_connections_parked", "listener" => listening.clone());
    let timed_out = metrics::counter!(
        "flashgate_http_header_timeouts_total",
        "listener" => listening
    );
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(connections.header_timeout());
    let kept = Arc::new(Kept {
        http1,
        header_timeout: connections.header_timeout(),
        park: connections.park_idle,
        closing: closing.clone(),
        parked,
        timed_out,
    });
    // Each connection's task holds a sender; the receiver hears `None` once all ended.
    let (alive, mut all_ended) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            () = closing.cancelled() => break,
            accepted = held.accept(&listener) => accepted,
        };
        let (stream, remote, slot) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                accept_failed(&error).await;
                continue;
            }
        };
        // Always `Ok` (`Infallible`).
        let Ok(service) = tower::Service::call(&mut make_service, remote).await;
        open.increment(1.0);
        let (open, kept, alive) = (open.clone(), Arc::clone(&kept), alive.clone());
        tokio::spawn(async move {
            kept.serve(stream, service).await;
            open.decrement(1.0);
            drop((slot, alive));
        });
    }
    drop((listener, alive));
    let deadline = Duration::from_millis(drain.deadline_ms);
    tokio::select! {
        None = all_ended.recv() => {}
        () = tokio::time::sleep(deadline) => {
            tracing::warn!(
                deadline_ms = drain.deadline_ms,
                "requests still in flight at the drain deadline: stopping without them"
            );
        }
    }
    Ok(())
}

/// How a listener serves each connection it accepted.
struct Kept {
    http1: hyper::server::conn::http1::Builder,
    header_timeout: Duration,
    /// Whether connections are parked between requests (`connections.park_idle`).
    park: bool,
    /// The drain: parked connections close, the others after the answer in flight.
    closing: CancellationToken,
    parked: metrics::Gauge,
    timed_out: metrics::Counter,
}

impl Kept {
    /// Serves one connection until its client closes it, it idles past the header
    /// timeout, or the drain.
    async fn serve<S>(&self, stream: TcpStream, service: S)
    where
        S: tower::Service<
                hyper::Request<axum::body::Body>,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Unpin
            + 'static,
        S::Future: Send + 'static,
    {
        if self.park {
            return self.serve_parking(stream, service).await;
        }
        let service = hyper_util::service::TowerToHyperService::new(
            tower::ServiceExt::map_request(service, |request: hyper::Request<_>| {
                request.map(axum::body::Body::new)
            }),
        );
        let connection = self
            .http1
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        tokio::pin!(connection);
        let mut draining = false;
        let ended = loop {
            tokio::select! {
                ended = connection.as_mut() => break ended,
                () = self.closing.cancelled(), if !draining => {
                    // Ends the connection once the answer in flight is written.
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        };
        if let Err(error) = ended {
            self.ended_with(&error);
        }
    }

    /// [`Self::serve`] with `park`: by hyper while the connection has a request, parked
    /// in between ([`park`]).
    async fn serve_parking<S>(&self, mut stream: TcpStream, service: S)
    where
        S: tower::Service<
                hyper::Request<axum::body::Body>,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            > + Clone
            + Send
            + Unpin
            + 'static,
        S::Future: Send + 'static,
    {
        let mut leftover = bytes::Bytes::new();
        loop {
            if leftover.is_empty() {
                // Parked: the socket alone, until the client sends its next request.
                self.parked.increment(1.0);
                let woke = tokio::select! {
                    readable = stream.readable() => readable.is_ok(),
                    () = tokio::time::sleep(self.header_timeout) => {
                        self.timed_out.increment(1);
                        false
                    }
                    () = self.closing.cancelled() => false,
                };
                self.parked.decrement(1.0);
                if !woke {
                    return;
                }
            }
            let answers = Arc::new(park::Answers::default());
            let io = park::Parkable::new(stream, leftover, Arc::clone(&answers));
            let service = park::Counted {
                inner: service.clone(),
                answers,
            };
            // Boxed: a parked connection's task is not the size of a served one.
            let mut connection = Box::new(
                self.http1
                    .serve_connection(hyper_util::rt::TokioIo::new(io), service),
            );
            let mut draining = false;
            let ended = loop {
                tokio::select! {
                    ended = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => break ended,
                    () = self.closing.cancelled(), if !draining => {
                        // Ends the connection once the answer in flight is written.
                        std::pin::Pin::new(&mut *connection).graceful_shutdown();
                        draining = true;
                    }
                }
            };
            let failed = match ended {
                Ok(()) => None,
                // Let go with a pipelined request half read: carried on below.
                Err(error) if error.is_incomplete_message() => Some(error),
                Err(error) => {
                    self.ended_with(&error);
                    return;
                }
            };
            let parts = connection.into_parts();
            let (socket, parked) = parts.io.into_inner().into_parts();
            stream = socket;
            if !parked {
                // hyper ended it: the client closed, asked to close, or the drain.
                match failed {
                    Some(error) => self.ended_with(&error),
                    None => drop(stream.shutdown().await),
                }
                return;
            }
            // What a pipelining client sent past the answered requests.
            leftover = parts.read_buf;
        }
    }

    /// A connection hyper ended with `error`: counted when it was the header timeout.
    fn ended_with(&self, error: &hyper::Error) {
        if error.is_timeout() {
            self.timed_out.increment(1);
        } else {
            tracing::trace!(%error, "connection ended with an error");
        }
    }
}

/// An accept that failed: a connection that died in the listen queue costs nothing; out
/// of file descriptors (or memory) the loop waits a little rather than spinning.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%error, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The connections a listener holds, against its limit.
struct Held {
    slots: Option<Arc<Semaphore>>,
}

impl Held {
    fn new(max: usize) -> Self {
        Self {
            slots: (max > 0).then(|| Arc::new(Semaphore::new(max))),
        }
    }

    /// The next connection, once one is free to be held; its slot is freed when dropped.
    async fn accept(
        &self,
        listener: &TcpListener,
    ) -> std::io::Result<(TcpStream, SocketAddr, Option<OwnedSemaphorePermit>)> {
        let slot = match &self.slots {
            Some(slots) => Some(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        let (stream, remote) = listener.accept().await?;
        // Answers are written whole; a connection that died already fails on its own.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::trace!(%error, "TCP_NODELAY not set");
        }
        Ok((stream, remote, slot))
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
    config: &Config,
) -> std::io::Result<()> {
    let (drain, connections) = (&config.drain, &config.connections);
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
        return serve(listener, router, shutdown, drain, connections).await;
    };
    let public = with_common_layers(api.merge(healthz_router()), max_body_bytes);
    let unlimited = ConnectionsConfig {
        max: 0,
        ..connections.clone()
    };
    let (api, ops) = tokio::join!(
        serve(listener, public, shutdown.clone(), drain, connections),
        // Operators and probes only: no limit to shut them out.
        serve(
            ops,
            with_common_layers(ops_routes, 1024),
            shutdown,
            drain,
            &unlimited
        ),
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

    /// Serves `/healthz` on a fresh listener with `connections`; its address.
    fn serve_healthz(connections: ConnectionsConfig) -> (SocketAddr, CancellationToken) {
        serve_router(healthz_router(), connections)
    }

    /// Serves `router` on a fresh listener with `connections`; its address.
    fn serve_router(
        router: Router,
        connections: ConnectionsConfig,
    ) -> (SocketAddr, CancellationToken) {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let drain = DrainConfig {
            not_ready_ms: 0,
            deadline_ms: 1000,
        };
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve(listener, router, shutdown, &drain, &connections).await }
        });
        (addr, shutdown)
    }

    /// Sends a kept-alive `GET /healthz` on `stream`; the answer's head, lower-cased.
    async fn keep_alive_get(stream: &mut TcpStream) -> String {
        use tokio::io::AsyncWriteExt as _;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        read_answer(stream).await.0
    }

    /// The next answer on `stream`: its head, lower-cased, and its body.
    async fn read_answer(stream: &mut TcpStream) -> (String, String) {
        use tokio::io::AsyncReadExt as _;
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "an answer");
            answer.push(byte[0]);
        }
        let head = String::from_utf8(answer).unwrap().to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    /// Whether the server closes `stream` within `within` (bytes it sends are read away).
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut sink = [0u8; 256];
        tokio::time::timeout(within, async {
            while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        })
        .await
        .is_ok()
    }

    /// A client that trickles a request's head, or keeps a connection idle, holds it no
    /// longer than the header timeout.
    #[tokio::test]
    async fn a_connection_without_a_whole_request_head_is_closed_at_the_header_timeout() {
        use tokio::io::AsyncWriteExt as _;
        let (addr, shutdown) = serve_healthz(ConnectionsConfig {
            max: 0,
            header_timeout_ms: 300,
            park_idle: false,
        });
        let mut trickling = TcpStream::connect(addr).await.unwrap();
        trickling
            .write_all(b"GET /healthz HTTP/1.1\r\nHo")
            .await
            .unwrap();
        assert!(
            closed_within(&mut trickling, Duration::from_secs(5)).await,
            "a half-sent head is cut off"
        );
        let mut idle = TcpStream::connect(addr).await.unwrap();
        assert!(keep_alive_get(&mut idle).await.starts_with("http/1.1 200"));
        assert!(
            closed_within(&mut idle, Duration::from_secs(5)).await,
            "an idle kept-alive connection is closed"
        );
        shutdown.cancel();
    }

    /// The header timeout bounds waiting for a request, not answering one: a slow handler
    /// and an answer streamed for longer (the console's event stream) are not cut off.
    #[tokio::test]
    async fn a_slow_answer_or_a_long_stream_outlasts_the_header_timeout() {
        async fn slow() -> axum::body::Body {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let chunks = futures_util::stream::unfold(0u8, |n| async move {
                if n == 6 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, std::io::Error>(vec![b'a' + n]), n + 1))
            });
            axum::body::Body::from_stream(chunks)
        }
        let router = Router::new().route("/slow", axum::routing::get(slow));
        let (addr, shutdown) = serve_router(
            router,
            ConnectionsConfig {
                max: 0,
                header_timeout_ms: 300,
                park_idle: false,
            },
        );
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        })
        .await
        .expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let body: String = answer
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .lines()
            .filter(|line| line.len() == 1 && line.bytes().all(|b| b.is_ascii_lowercase()))
            .collect();
        assert_eq!(body, "abcdef", "the whole stream: {answer}");
        shutdown.cancel();
    }

    /// At its limit a listener takes no new connection: the kernel holds it, and it is
    /// served once a held connection closes.
    #[tokio::test]
    async fn at_its_connection_limit_a_listener_serves_a_new_connection_once_one_closes() {
        let (addr, shutdown) = serve_healthz(ConnectionsConfig {
            max: 1,
            header_timeout_ms: 20_000,
            park_idle: true,
        });
        let mut first = TcpStream::connect(addr).await.unwrap();
        let head = keep_alive_get(&mut first).await;
        assert!(!head.contains("connection: close"), "kept alive: {head}");
        let mut second = TcpStream::connect(addr).await.unwrap();
        let mut waiting = tokio::spawn(async move { keep_alive_get(&mut second).await });
        let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
        assert!(early.is_err(), "answered past the limit");
        assert!(keep_alive_get(&mut first).await.starts_with("http/1.1 200"));
        drop(first);
        let head = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting connection is answered once the first closed")
            .unwrap();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        shutdown.cancel();
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
            async move {
                serve(
                    listener,
                    router,
                    shutdown,
                    &drain,
                    &ConnectionsConfig::default(),
                )
                .await
            }
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
        let mut config = Config::default();
        config.drain.not_ready_ms = 0;
        config.drain.deadline_ms = 1000;
        let server = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { serve_role(public, Some(ops), role, shutdown, &config).await }
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

    /// Waits up to 5 s for `done`, looking every 10 ms.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not within 5 s: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The value of `name` for `addr`'s listener in a Prometheus page.
    fn listener_series(page: &str, name: &str, addr: SocketAddr) -> Option<f64> {
        page.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix('{')?;
            rest.contains(&format!("listener=\"{addr}\""))
                .then(|| rest.rsplit(' ').next()?.parse().ok())
                .flatten()
        })
    }

    /// Between requests a kept-alive connection is parked: hyper's buffers let go, the
    /// socket alone held, and the client's next request served on the same connection.
    #[tokio::test]
    async fn kept_alive_connections_are_parked_between_requests_and_keep_serving() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let page = recorder.handle();
        // This test's runtime runs every task on this thread: the server's metrics land here.
        let _local = metrics::set_default_local_recorder(&recorder);
        let (addr, shutdown) = serve_healthz(ConnectionsConfig {
            max: 0,
            header_timeout_ms: 20_000,
            park_idle: true,
        });
        let mut clients = Vec::new();
        for _ in 0..20 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let head = keep_alive_get(&mut client).await;
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(!head.contains("connection: close"), "kept alive: {head}");
            clients.push(client);
        }
        let parked = || listener_series(&page.render(), "flashgate_http_connections_parked", addr);
        until("all 20 idle connections parked", || parked() == Some(20.0)).await;
        for client in &mut clients {
            for _ in 0..3 {
                let head = keep_alive_get(client).await;
                assert!(head.starts_with("http/1.1 200"), "{head}");
                assert!(
                    !head.contains("connection: close"),
                    "still kept alive: {head}"
                );
            }
        }
        until("parked again after more requests", || {
            parked() == Some(20.0)
        })
        .await;
        let open = listener_series(&page.render(), "flashgate_http_connections_open", addr);
        assert_eq!(open, Some(20.0), "one connection each, all still open");
        shutdown.cancel();
    }

    /// A request's head or body that arrives in pieces, and requests sent back to back
    /// without waiting (pipelined), are answered whole on the one connection.
    #[tokio::test]
    async fn requests_split_or_pipelined_are_answered_on_a_parking_connection() {
        use tokio::io::AsyncWriteExt as _;
        let echo = Router::new()
            .route(
                "/echo",
                axum::routing::post(|body: String| async move { body }),
            )
            .merge(healthz_router());
        let (addr, shutdown) = serve_router(
            echo,
            ConnectionsConfig {
                max: 0,
                header_timeout_ms: 20_000,
                park_idle: true,
            },
        );
        let mut client = TcpStream::connect(addr).await.unwrap();
        // The fault: each piece sent on its own, with the server given time to read it.
        let pause = || tokio::time::sleep(Duration::from_millis(50));
        for round in 0..3 {
            client
                .write_all(b"POST /echo HTTP/1.1\r\nHo")
                .await
                .unwrap();
            pause().await;
            client
                .write_all(b"st: x\r\nContent-Length: 5\r\n\r\nhel")
                .await
                .unwrap();
            pause().await;
            client.write_all(b"lo").await.unwrap();
            let (head, body) = read_answer(&mut client).await;
            assert!(head.starts_with("http/1.1 200"), "round {round}: {head}");
            assert_eq!(body, "hello", "round {round}");
        }
        let three = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none\
                     GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
                     POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthree";
        client.write_all(three.as_bytes()).await.unwrap();
        assert_eq!(read_answer(&mut client).await.1, "one");
        assert!(read_answer(&mut client).await.0.starts_with("http/1.1 200"));
        assert_eq!(read_answer(&mut client).await.1, "three");
        // Pipelined, the second request's head split: the first is answered while the
        // rest of the second is still on its way.
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHo")
            .await
            .unwrap();
        assert!(read_answer(&mut client).await.0.starts_with("http/1.1 200"));
        pause().await;
        client
            .write_all(b"st: x\r\nContent-Length: 4\r\n\r\nfour")
            .await
            .unwrap();
        assert_eq!(read_answer(&mut client).await.1, "four");
        let head = keep_alive_get(&mut client).await;
        assert!(
            !head.contains("connection: close"),
            "still kept alive: {head}"
        );
        shutdown.cancel();
    }

    /// A client that asks for the connection to close gets its answer, then the close.
    #[tokio::test]
    async fn a_client_asking_to_close_is_answered_then_closed() {
        use tokio::io::AsyncWriteExt as _;
        let (addr, shutdown) = serve_healthz(ConnectionsConfig {
            max: 0,
            header_timeout_ms: 20_000,
            park_idle: true,
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        assert!(
            keep_alive_get(&mut client)
                .await
                .starts_with("http/1.1 200")
        );
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = read_answer(&mut client).await;
        assert!(head.contains("connection: close"), "{head}");
        assert!(
            closed_within(&mut client, Duration::from_secs(5)).await,
            "closed after the answer"
        );
        shutdown.cancel();
    }
}
