//! A TCP proxy in front of a real service, for failure tests: it passes traffic, refuses
//! connections (the service is down), black-holes them (the service hangs), or swallows
//! the answer of the next connections after forwarding their request (the effect happened,
//! the answer was lost), or hangs (a network dropping packets: nothing moves, nothing is
//! closed, and everything moves on when it passes again). Switching to refuse or
//! black-hole also cuts open connections.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Close every connection at once.
    Refuse,
    /// Accept and read, never answer.
    Blackhole,
    /// Forward the next N connections' requests but drop their answers.
    DropAnswers(u32),
    /// Hold every byte of open and new connections, closing nothing, until the mode
    /// changes.
    Hang,
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    cut: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free local port, passing traffic.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (mode, _) = watch::channel(ProxyMode::Pass);
        let (cut, _) = watch::channel(0);
        let accept = tokio::spawn(accept_loop(listener, upstream, mode.clone(), cut.clone()));
        Self {
            addr,
            mode,
            cut,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode; refusing or black-holing also cuts open connections.
    pub fn set(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
        if matches!(mode, ProxyMode::Refuse | ProxyMode::Blackhole) {
            self.cut.send_modify(|epoch| *epoch += 1);
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut.send_modify(|epoch| *epoch += 1);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    mode: watch::Sender<ProxyMode>,
    cut: watch::Sender<u64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let current = *mode.borrow();
        if let ProxyMode::DropAnswers(n) = current {
            mode.send_replace(if n > 1 {
                ProxyMode::DropAnswers(n - 1)
            } else {
                ProxyMode::Pass
            });
        }
        let cut = cut.subscribe();
        tokio::spawn(handle(client, upstream, current, cut, mode.subscribe()));
    }
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: ProxyMode,
    mut cut: watch::Receiver<u64>,
    now: watch::Receiver<ProxyMode>,
) {
    let work = async {
        match mode {
            ProxyMode::Refuse => {}
            ProxyMode::Blackhole => {
                let mut sink = [0u8; 4096];
                while client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            }
            ProxyMode::Pass | ProxyMode::Hang => {
                if now.clone().wait_for(passes).await.is_err() {
                    return;
                }
                if let Ok(server) = TcpStream::connect(upstream).await {
                    let (client_read, client_write) = client.split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, now.clone()),
                        pump(server_read, client_write, now.clone()),
                    );
                }
            }
            ProxyMode::DropAnswers(_) => drop_answer(&mut client, upstream).await,
        }
    };
    tokio::select! {
        () = work => {}
        _ = cut.changed() => {}
    }
}

/// Whether an open connection moves under the proxy's mode (only a hang holds it).
fn passes(mode: &ProxyMode) -> bool {
    *mode != ProxyMode::Hang
}

/// Copies one direction, holding what it read while the proxy hangs.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut now: watch::Receiver<ProxyMode>,
) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || now.wait_for(passes).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Forwards the client's bytes; when the server starts answering, closes both sides.
async fn drop_answer(client: &mut TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_read, _client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let forward = async {
        let mut buf = [0u8; 8192];
        while let Ok(n) = client_read.read(&mut buf).await {
            if n == 0 || server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        std::future::pending::<()>().await;
    };
    let first_answer = async {
        let mut buf = [0u8; 1];
        let _ = server_read.read(&mut buf).await;
    };
    tokio::select! {
        () = forward => {}
        () = first_answer => {}
    }
}
