//! A TCP proxy in front of a real service, for failure tests: it passes traffic, refuses
//! connections (the service is down), black-holes them (the service hangs), or swallows
//! the answer of the next connections after forwarding their request (the effect happened,
//! the answer was lost), or hangs (a network dropping packets: nothing moves, nothing is
//! closed, and everything moves on when it passes again). Switching to refuse or
//! black-hole also cuts open connections.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

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
    mode: Arc<Mutex<ProxyMode>>,
    cut: watch::Sender<u64>,
    hung: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free local port, passing traffic.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let mode = Arc::new(Mutex::new(ProxyMode::Pass));
        let (cut, _) = watch::channel(0);
        let (hung, _) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            mode.clone(),
            cut.clone(),
            hung.clone(),
        ));
        Self {
            addr,
            mode,
            cut,
            hung,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode; refusing or black-holing also cuts open connections.
    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock().expect("proxy mode") = mode;
        self.hung.send_replace(mode == ProxyMode::Hang);
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
    mode: Arc<Mutex<ProxyMode>>,
    cut: watch::Sender<u64>,
    hung: watch::Sender<bool>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let current = {
            let mut mode = mode.lock().expect("proxy mode");
            let current = *mode;
            if let ProxyMode::DropAnswers(n) = current {
                *mode = if n > 1 {
                    ProxyMode::DropAnswers(n - 1)
                } else {
                    ProxyMode::Pass
                };
            }
            current
        };
        let cut = cut.subscribe();
        tokio::spawn(handle(client, upstream, current, cut, hung.subscribe()));
    }
}

async fn handle(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: ProxyMode,
    mut cut: watch::Receiver<u64>,
    hung: watch::Receiver<bool>,
) {
    let work = async {
        match mode {
            ProxyMode::Refuse => {}
            ProxyMode::Blackhole => {
                let mut sink = [0u8; 4096];
                while client.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            }
            ProxyMode::Pass | ProxyMode::Hang => {
                let mut gate = hung.clone();
                if gate.wait_for(|hung| !hung).await.is_err() {
                    return;
                }
                if let Ok(server) = TcpStream::connect(upstream).await {
                    let (client_read, client_write) = client.split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        pump(client_read, server_write, hung.clone()),
                        pump(server_read, client_write, hung.clone()),
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

/// Copies one direction, holding what it read while the proxy hangs.
async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    mut hung: watch::Receiver<bool>,
) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || hung.wait_for(|hung| !hung).await.is_err() {
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
