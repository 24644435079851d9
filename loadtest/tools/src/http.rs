//! `http-bench`: a lean HTTP/1.1 load driver for the rate measurements (door, polls,
//! product reads, /healthz). k6 spends a hundred-odd microseconds of CPU per request;
//! on a 2-core machine it, not the server, would set the rate. This driver writes a
//! prepared request on a kept-alive connection and reads the answer by its length, a few
//! microseconds each, so the number is the server's.
//!
//! Closed loop (no `--rate`): `--connections` connections send back to back for `--secs`.
//! Open loop (`--rate`): each connection sends on a fixed schedule and latency is counted
//! from the scheduled time, so a slow answer is not hidden by the requests it delayed.
//! `{n}` in the path or body is replaced by a request counter (fresh customers).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// `http-bench` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Server address, `host:port`.
    #[arg(long)]
    addr: String,
    /// Request path; repeat to rotate over several (`{n}` = request counter).
    #[arg(long = "path")]
    paths: Vec<String>,
    /// File with one path per line, rotated over (instead of `--path`).
    #[arg(long)]
    paths_file: Option<std::path::PathBuf>,
    /// POST this JSON body (`{n}` = request counter) instead of a GET.
    #[arg(long)]
    body: Option<String>,
    /// Connections.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Duration.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Requests a second over all connections (open loop); closed loop without it.
    #[arg(long)]
    rate: Option<f64>,
}

/// One answered request: when it finished (ms since start), its latency, its status.
type Sample = (u32, u32, u16);

/// Runs the bench and returns its report.
pub(crate) async fn run(args: Args) -> anyhow::Result<Value> {
    let paths = Arc::new(load_paths(&args)?);
    let counter = Arc::new(AtomicU64::new(0));
    // Every connection is open before the clock starts, so no scheduled request waits for
    // a connect (an open loop counts latency from the schedule). One that fails is retried
    // (and counted) by its loop.
    let mut streams = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        streams.push(connect(&args.addr).await.ok());
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.secs);
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(c, stream)| {
            let (args, paths, counter) = (args.clone(), paths.clone(), counter.clone());
            tokio::spawn(async move {
                connection(&args, c, stream, &paths, &counter, started, deadline).await
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = 0u64;
    for task in tasks {
        let (mine, failed) = task.await?;
        samples.extend(mine);
        errors += failed;
    }
    Ok(report(&args, samples, errors))
}

fn load_paths(args: &Args) -> anyhow::Result<Vec<String>> {
    let mut paths = args.paths.clone();
    if let Some(file) = &args.paths_file {
        let text = std::fs::read_to_string(file).context("reading --paths-file")?;
        paths.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    }
    if paths.is_empty() {
        bail!("give --path or --paths-file");
    }
    Ok(paths)
}

fn request(args: &Args, path: &str, n: u64) -> Vec<u8> {
    let path = path.replace("{n}", &n.to_string());
    match &args.body {
        None => format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", args.addr).into_bytes(),
        Some(body) => {
            let body = body.replace("{n}", &n.to_string());
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                args.addr,
                body.len()
            )
            .into_bytes()
        }
    }
}

/// One connection's loop; reconnects after an error. Returns its samples and errors.
async fn connection(
    args: &Args,
    index: usize,
    mut stream: Option<BufStream<TcpStream>>,
    paths: &[String],
    counter: &AtomicU64,
    started: Instant,
    deadline: Instant,
) -> (Vec<Sample>, u64) {
    let interval = args
        .rate
        .map(|r| Duration::from_secs_f64(args.connections as f64 / r.max(0.001)));
    let mut next = started
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / args.connections as f64)
        });
    let (mut samples, mut errors) = (Vec::new(), 0);
    while next < deadline && Instant::now() < deadline {
        if let Some(i) = interval {
            tokio::time::sleep_until(next.into()).await;
            next += i;
        }
        let n = counter.fetch_add(1, Ordering::Relaxed);
        // Open loop: latency counts from when the request was due, not when it went out.
        let sent = interval.map_or_else(Instant::now, |i| next - i);
        match exchange(
            &mut stream,
            &args.addr,
            &request(args, &paths[n as usize % paths.len()], n),
        )
        .await
        {
            Ok(status) => {
                let done = Instant::now();
                let at = done.duration_since(started).as_millis() as u32;
                samples.push((at, done.duration_since(sent).as_micros() as u32, status));
            }
            Err(_) => {
                errors += 1;
                stream = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (samples, errors)
}

async fn exchange(
    stream: &mut Option<BufStream<TcpStream>>,
    addr: &str,
    request: &[u8],
) -> anyhow::Result<u16> {
    if stream.is_none() {
        *stream = Some(connect(addr).await?);
    }
    let Some(io) = stream.as_mut() else {
        bail!("no connection");
    };
    io.write_all(request).await?;
    io.flush().await?;
    read_response(io).await
}

pub(crate) async fn connect(addr: &str) -> anyhow::Result<BufStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(BufStream::new(tcp))
}

/// A response's status line and the headers a driver acts on.
pub(crate) struct Head {
    pub(crate) status: u16,
    length: usize,
    chunked: bool,
    /// `Retry-After`, in seconds.
    pub(crate) retry_after: Option<f64>,
}

/// Reads a response's status line and headers.
pub(crate) async fn read_head(io: &mut BufStream<TcpStream>) -> anyhow::Result<Head> {
    let mut line = String::new();
    io.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .context("no status line")?
        .parse()?;
    let mut head = Head {
        status,
        length: 0,
        chunked: false,
        retry_after: None,
    };
    loop {
        line.clear();
        if io.read_line(&mut line).await? == 0 {
            bail!("connection closed in the headers");
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            head.length = v.trim().parse()?;
        } else if let Some(v) = header.strip_prefix("retry-after:") {
            head.retry_after = v.trim().parse().ok();
        }
        head.chunked |= header.starts_with("transfer-encoding:") && header.contains("chunked");
    }
    Ok(head)
}

/// Reads one response (Content-Length or chunked body); returns its status.
async fn read_response(io: &mut BufStream<TcpStream>) -> anyhow::Result<u16> {
    let head = read_head(io).await?;
    read_body(io, &head, None).await?;
    Ok(head.status)
}

/// Reads the body of the response whose head was read, into `keep` when given (else
/// skipped).
pub(crate) async fn read_body(
    io: &mut BufStream<TcpStream>,
    head: &Head,
    mut keep: Option<&mut Vec<u8>>,
) -> anyhow::Result<()> {
    if !head.chunked {
        return take(io, head.length, keep).await;
    }
    let mut line = String::new();
    loop {
        line.clear();
        io.read_line(&mut line).await?;
        let size = usize::from_str_radix(line.trim(), 16)?;
        take(io, size, keep.as_deref_mut()).await?;
        skip(io, 2).await?;
        if size == 0 {
            return Ok(());
        }
    }
}

async fn take(
    io: &mut BufStream<TcpStream>,
    n: usize,
    keep: Option<&mut Vec<u8>>,
) -> anyhow::Result<()> {
    match keep {
        None => skip(io, n).await,
        Some(body) => {
            let from = body.len();
            body.resize(from + n, 0);
            io.read_exact(&mut body[from..]).await?;
            Ok(())
        }
    }
}

async fn skip(io: &mut BufStream<TcpStream>, mut n: usize) -> anyhow::Result<()> {
    let mut buf = [0u8; 8192];
    while n > 0 {
        let want = n.min(buf.len());
        let read = io.read(&mut buf[..want]).await?;
        if read == 0 {
            bail!("connection closed in the body");
        }
        n -= read;
    }
    Ok(())
}

fn report(args: &Args, samples: Vec<Sample>, errors: u64) -> Value {
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_second: BTreeMap<u32, Vec<Duration>> = BTreeMap::new();
    let mut all = Vec::with_capacity(samples.len());
    for (at, micros, status) in samples {
        *statuses.entry(status.to_string()).or_default() += 1;
        let latency = Duration::from_micros(u64::from(micros));
        per_second.entry(at / 1000).or_default().push(latency);
        all.push(latency);
    }
    let series: Vec<Value> = per_second
        .into_iter()
        .filter(|(second, _)| u64::from(*second) < args.secs)
        .map(|(second, mut l)| {
            let n = l.len();
            let q = crate::stats::latency(&mut l);
            json!([second, n, q["p50_ms"], q["p99_ms"]])
        })
        .collect();
    json!({
        "requests": all.len(),
        "secs": args.secs,
        "per_sec": all.len() as f64 / args.secs as f64,
        "offered_per_sec": args.rate,
        "connections": args.connections,
        "errors": errors,
        "statuses": statuses,
        "latency": crate::stats::latency(&mut all),
        "series": series,
    })
}
