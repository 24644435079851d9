//! `opening-bench`: the opening of a sale with a crowd in its pre-queue (issue 14).
//!
//! 1. Prepares one request per shopper, untimed: a fresh customer each, with a JWT signed
//!    as the shop's login would (`--jwt-secret`) and a solved proof-of-work challenge
//!    fetched from the door (`--pow`), so the timed phase measures what the door does
//!    with them, not what it costs to make them.
//! 2. Joins: `--connections` kept-alive connections send the requests back to back; the
//!    door's throughput, latency and answers, and this driver's CPU per request.
//! 3. With `--starts-at`: waits for the opening, then polls every pre-queued ticket until
//!    it shows a place (`queued` with a position, or any later status), each ticket only
//!    until then; reports when the last one did, and the database's view: when the draw
//!    committed and when the broker had confirmed every drawn ticket.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// `opening-bench` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// The door, `host:port`.
    #[arg(long)]
    addr: String,
    /// The sale.
    #[arg(long)]
    sale: String,
    /// Shoppers joining.
    #[arg(long)]
    shoppers: usize,
    /// Connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Customer ids are this prefix and a number.
    #[arg(long, default_value = "shopper-")]
    prefix: String,
    /// Sign each request's `Authorization: Bearer` JWT (HS256) with this secret.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// The JWT's `iss`.
    #[arg(long, default_value = "https://shop.loadtest")]
    issuer: String,
    /// The JWT's `aud`.
    #[arg(long, default_value = "flashgate")]
    audience: String,
    /// Fetch and solve the sale's proof-of-work challenge for each shopper beforehand.
    #[arg(long)]
    pow: bool,
    /// The sale's opening: wait for it and time until every ticket shows a place.
    #[arg(long)]
    starts_at: Option<DateTime<Utc>>,
    /// The door's process id: its CPU during the timed joins is reported.
    #[arg(long)]
    door_pid: Option<u32>,
    /// PostgreSQL, for the draw's and the broker's view (with `--starts-at`).
    #[arg(long, env = "FLASHGATE_DATABASE__URL")]
    database_url: Option<String>,
}

/// Runs the bench and returns its report.
pub(crate) async fn run(args: Args) -> anyhow::Result<Value> {
    let prepare_started = Instant::now();
    let requests = prepare(&args).await?;
    let prepare_secs = prepare_started.elapsed().as_secs_f64();
    let cpu_before = cpu_secs("self");
    let door = args.door_pid.map(|pid| pid.to_string());
    let door_before = door.as_deref().map(cpu_secs);
    let started = Instant::now();
    let answers = exchange_all(&args, requests).await?;
    let secs = started.elapsed().as_secs_f64();
    let driver_cpu = cpu_secs("self") - cpu_before;
    let door_cpu = door
        .as_deref()
        .map(cpu_secs)
        .zip(door_before)
        .map(|(after, before)| after - before);
    let mut statuses = std::collections::BTreeMap::<String, u64>::new();
    let mut latencies = Vec::with_capacity(answers.len());
    let mut tokens = Vec::new();
    let mut prequeued = 0;
    for (status, latency, body) in &answers {
        *statuses.entry(status.to_string()).or_default() += 1;
        latencies.push(*latency);
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if body["status"] == "prequeued" {
            prequeued += 1;
        }
        if let Some(token) = body["ticket"].as_str() {
            tokens.push(token.to_owned());
        }
    }
    let mut report = json!({
        "sale": args.sale,
        "shoppers": args.shoppers,
        "identity": args.jwt_secret.is_some(),
        "pow": args.pow,
        "prepare_secs": prepare_secs,
        "join": {
            "secs": secs,
            "per_sec": answers.len() as f64 / secs,
            "statuses": statuses,
            "prequeued": prequeued,
            "latency": crate::stats::latency(&mut latencies),
            "driver_cpu_us_per_request": driver_cpu / answers.len().max(1) as f64 * 1e6,
            "door_cpu_us_per_request": door_cpu.map(|cpu| cpu / answers.len().max(1) as f64 * 1e6),
        },
    });
    if args.pow {
        report["pow_check_us"] = json!(pow_check_micros());
    }
    if let Some(starts_at) = args.starts_at {
        report["opening"] = opening(&args, starts_at, tokens).await?;
    }
    Ok(report)
}

/// What the door does with a solved challenge in memory (signature, binding, expiry,
/// difficulty, the hash), in microseconds per check, over 100,000 checks.
fn pow_check_micros() -> f64 {
    use flashgate_admission::pow;
    use flashgate_admission::ticket_token::TicketSigner;
    let signer = TicketSigner::random();
    let sale = flashgate_common::domain::SaleId::parse("bench").expect("a sale id");
    let challenge = pow::sign(&signer, &sale, 12, "address:127.0.0.1", i64::MAX);
    let proof = pow::ProofOfWork {
        solution: flashgate_common::pow::solve(&challenge, 12),
        challenge,
    };
    let rounds = 100_000;
    let started = Instant::now();
    for _ in 0..rounds {
        let checked = pow::check(&signer, &sale, 12, "address:127.0.0.1", Some(&proof), 0);
        assert!(checked.is_ok());
    }
    started.elapsed().as_secs_f64() / f64::from(rounds) * 1e6
}

/// A process's CPU seconds (user + system), from /proc (`self` or a pid).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn jwt(args: &Args, secret: &str, customer: &str) -> String {
    let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({
        "sub": customer, "iss": args.issuer, "aud": args.audience,
        "exp": Utc::now().timestamp() + 3600,
    });
    let body = format!("{header}.{}", B64.encode(claims.to_string()));
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body.as_bytes());
    format!("{body}.{}", B64.encode(mac.finalize().into_bytes()))
}

async fn prepare(args: &Args) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut conn = crate::http::connect(&args.addr).await?;
    let mut requests = Vec::with_capacity(args.shoppers);
    // Solving costs this driver's CPU, not the door's: done before the clock starts.
    for n in 0..args.shoppers {
        let customer = format!("{}{n}", args.prefix);
        let mut body = json!({ "customer_id": customer, "quantity": 1 });
        let mut headers = String::new();
        if let Some(secret) = &args.jwt_secret {
            headers = format!("Authorization: Bearer {}\r\n", jwt(args, secret, &customer));
            body = json!({ "quantity": 1 });
        }
        if args.pow {
            let get = format!(
                "GET /v1/sales/{}/challenge HTTP/1.1\r\nHost: {}\r\n{headers}\r\n",
                args.sale, args.addr
            );
            let (status, body_bytes) = exchange(&mut conn, get.as_bytes()).await?;
            anyhow::ensure!(status == 200, "challenge answered {status}");
            let challenge: Value = serde_json::from_slice(&body_bytes)?;
            let text = challenge["challenge"].as_str().context("no challenge")?;
            let bits = challenge["difficulty"].as_u64().unwrap_or(0) as u32;
            body["proof_of_work"] = json!({
                "challenge": text,
                "solution": flashgate_common::pow::solve(text, bits),
            });
        }
        let body = body.to_string();
        requests.push(
            format!(
                "POST /v1/sales/{}/tickets HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                args.sale,
                args.addr,
                body.len()
            )
            .into_bytes(),
        );
    }
    Ok(requests)
}

type Answer = (u16, Duration, Vec<u8>);

async fn exchange_all(args: &Args, requests: Vec<Vec<u8>>) -> anyhow::Result<Vec<Answer>> {
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(requests.len())));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (requests, next, answers, addr) = (
            requests.clone(),
            next.clone(),
            answers.clone(),
            args.addr.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = crate::http::connect(&addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(i) else {
                    return anyhow::Ok(());
                };
                let sent = Instant::now();
                let (status, body) = exchange(&mut conn, request).await?;
                answers.lock().await.push((status, sent.elapsed(), body));
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Arc::try_unwrap(answers)
        .map_err(|_| anyhow::anyhow!("answers still shared"))?
        .into_inner())
}

/// After the opening: when each ticket first showed a place, and the database's view.
async fn opening(
    args: &Args,
    starts_at: DateTime<Utc>,
    tokens: Vec<String>,
) -> anyhow::Result<Value> {
    if let Ok(wait) = (starts_at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let opened = Instant::now();
    let pending = Arc::new(Mutex::new(tokens));
    let polls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (pending, polls, addr) = (pending.clone(), polls.clone(), args.addr.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = crate::http::connect(&addr).await?;
            let mut last = Duration::ZERO;
            loop {
                let Some(token) = pending.lock().await.pop() else {
                    return anyhow::Ok(last);
                };
                let get = format!("GET /v1/tickets/{token} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                let (_, body) = exchange(&mut conn, get.as_bytes()).await?;
                polls.fetch_add(1, Ordering::Relaxed);
                let ticket: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if ticket["status"] == "prequeued" || ticket.is_null() {
                    // Not drawn yet: back of the line.
                    pending.lock().await.insert(0, token);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                } else {
                    last = last.max(opened.elapsed());
                }
            }
        }));
    }
    let mut positioned = Duration::ZERO;
    for task in tasks {
        positioned = positioned.max(task.await??);
    }
    let mut view = json!({
        "every_ticket_placed_after_ms": positioned.as_secs_f64() * 1000.0,
        "polls": polls.load(Ordering::Relaxed),
    });
    if let Some(url) = &args.database_url {
        let pool = sqlx::PgPool::connect(url).await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM prequeue WHERE sale_id = $1 AND NOT published",
            )
            .bind(&args.sale)
            .fetch_one(&pool)
            .await?;
            if left == 0 || Instant::now() > deadline {
                view["unpublished_left"] = json!(left);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        view["every_ticket_confirmed_after_ms"] = json!(opened.elapsed().as_secs_f64() * 1000.0);
        let (drawn_after, drawn): (f64, i32) = sqlx::query_as(
            "SELECT extract(epoch FROM drawn_at - starts_at)::float8 * 1000, prequeued FROM sales WHERE id = $1",
        )
        .bind(&args.sale)
        .fetch_one(&pool)
        .await?;
        view["draw_committed_after_ms"] = json!(drawn_after);
        view["drawn"] = json!(drawn);
    }
    Ok(view)
}

/// Sends one request and reads its answer (Content-Length bodies: the door's).
async fn exchange(io: &mut BufStream<TcpStream>, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    io.write_all(request).await?;
    io.flush().await?;
    let head = crate::http::read_head(io).await?;
    let mut body = Vec::new();
    crate::http::read_body(io, &head, Some(&mut body)).await?;
    Ok((head.status, body))
}
