//! `crowd`: a flash sale's shoppers in an open loop, for the rates and tails k6 cannot
//! drive on two cores (issue 18). k6 spends a hundred-odd microseconds of CPU per request
//! and, past its VUs, drops arrivals; this driver spends a few, so the figures are the
//! servers'.
//!
//! Arrivals climb from nothing to `--peak` a second over `--ramp-secs` and stay there
//! `--hold-secs` (no ramp: a step, the spike). Each arrival is one shopper, a task on its
//! own schedule, who does what `loadtest/k6/flash-sale.js` does:
//! - `flashgate`: takes a ticket at the door (waiting out 429/503 as `Retry-After` says),
//!   polls at the interval the door suggests (as the waiting room does), confirms the payment at the
//!   emulator when paying in the browser, until a final status or `--deadline-secs`;
//! - `baseline`: one `POST /checkout` (the card charged inside it);
//! - `healthz`: one `GET /healthz`, the server's cheapest answer: the spike's floor.
//!
//! A tenth of the shoppers (`--decline-share`) use a declined card, `--browser-share` pay
//! in the browser, the rest with a saved card, by the same rule as the k6 script.
//! Every time counts from the shopper's scheduled arrival, so a late answer is not hidden by
//! a driver that fell behind. Connections are kept alive and shared, as browsers behind
//! one network would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::http::{Head, connect, read_body, read_head};

/// `crowd` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    /// Which checkout the shoppers meet.
    #[arg(long, value_enum)]
    system: System,
    /// The door (flashgate) or the checkout (baseline), `host:port`.
    #[arg(long)]
    addr: String,
    /// The Stripe emulator, `host:port`, for the shoppers who pay in the browser.
    #[arg(long)]
    stripe: Option<String>,
    /// The sale.
    #[arg(long)]
    sale: String,
    /// Arrivals a second at the peak.
    #[arg(long)]
    peak: f64,
    /// Seconds from no arrivals to the peak (0: a step).
    #[arg(long, default_value_t = 0.0)]
    ramp_secs: f64,
    /// Seconds at the peak.
    #[arg(long)]
    hold_secs: f64,
    /// Share of shoppers with a declined card.
    #[arg(long, default_value_t = 0.1)]
    decline_share: f64,
    /// Share of shoppers who confirm their payment in the browser.
    #[arg(long, default_value_t = 0.3)]
    browser_share: f64,
    /// A shopper gives up this long after arriving.
    #[arg(long, default_value_t = 60)]
    deadline_secs: u64,
    /// Tries at the door before giving up (429 and 503 are waited out).
    #[arg(long, default_value_t = 30)]
    max_door_tries: u32,
    /// Customer ids are this prefix and the shopper's number.
    #[arg(long, default_value = "crowd-")]
    prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum System {
    Flashgate,
    Baseline,
    /// One `GET /healthz` a shopper: the cheapest answer the server has, for the same
    /// arrivals and connections, so a spike's tail can be told from the machine's.
    Healthz,
}

const FINAL: [&str; 5] = ["paid", "failed", "expired", "sold_out", "refunded"];
const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the crowd and returns its report.
pub(crate) async fn run(args: Args) -> anyhow::Result<Value> {
    anyhow::ensure!(args.peak > 0.0, "--peak must be positive");
    let args = Arc::new(args);
    let door = Arc::new(Pool::new(&args.addr));
    let stripe = Arc::new(Pool::new(args.stripe.as_deref().unwrap_or(&args.addr)));
    let record = Arc::new(Mutex::new(Record::default()));
    let started = Instant::now();
    let mut shoppers = Vec::new();
    for (i, at) in arrivals(args.peak, args.ramp_secs, args.hold_secs).enumerate() {
        let arrived = started + at;
        tokio::time::sleep_until(arrived.into()).await;
        let shopper = Shopper {
            i,
            started,
            arrived,
            answered: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            args: args.clone(),
            door: door.clone(),
            stripe: stripe.clone(),
            record: record.clone(),
        };
        shoppers.push(tokio::spawn(shopper.run()));
    }
    let arriving_secs = started.elapsed().as_secs_f64();
    for shopper in shoppers {
        shopper.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let record = std::mem::take(&mut *record.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let mut report = record.report(&args, arriving_secs, secs);
    report["connections"] = json!(door.opened.load(Ordering::Relaxed));
    Ok(report)
}

/// Arrival times: the ramp's arrivals at `t = sqrt(2 i ramp / peak)` (a rate climbing
/// linearly to `peak`), then one every `1 / peak` seconds for `hold` seconds.
fn arrivals(peak: f64, ramp: f64, hold: f64) -> impl Iterator<Item = Duration> {
    let in_ramp = peak * ramp / 2.0;
    let total = (in_ramp + peak * hold).floor() as usize;
    (0..total).map(move |i| {
        let i = i as f64;
        let at = if i < in_ramp {
            (2.0 * i * ramp / peak).sqrt()
        } else {
            ramp + (i - in_ramp) / peak
        };
        Duration::from_secs_f64(at)
    })
}

/// Kept-alive connections to one server, shared by the shoppers.
struct Pool {
    addr: String,
    idle: Mutex<Vec<BufStream<TcpStream>>>,
    /// Connections opened.
    opened: AtomicU64,
}

impl Pool {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            idle: Mutex::new(Vec::new()),
            opened: AtomicU64::new(0),
        }
    }

    /// Sends one request and reads its answer and body, on an idle connection or a new
    /// one; a kept-alive connection the server had closed is replaced once.
    async fn send(&self, request: &[u8]) -> anyhow::Result<(Head, Vec<u8>)> {
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let fresh = reused.is_none();
        let mut io = match reused {
            Some(io) => io,
            None => self.connect().await?,
        };
        let answer = match exchange(&mut io, request).await {
            Err(_) if !fresh => {
                io = self.connect().await?;
                exchange(&mut io, request).await?
            }
            other => other?,
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(io);
        }
        Ok(answer)
    }

    async fn connect(&self) -> anyhow::Result<BufStream<TcpStream>> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        connect(&self.addr).await
    }

    /// A GET of `path`.
    fn get(&self, path: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).into_bytes()
    }

    /// A POST of `body` as `content_type`, with `headers` (each ending in CRLF).
    fn post(&self, path: &str, headers: &str, content_type: &str, body: &str) -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .into_bytes()
    }
}

async fn exchange(
    io: &mut BufStream<TcpStream>,
    request: &[u8],
) -> anyhow::Result<(Head, Vec<u8>)> {
    io.write_all(request).await?;
    io.flush().await?;
    let head = read_head(io).await?;
    let mut body = Vec::new();
    read_body(io, &head, Some(&mut body)).await?;
    Ok((head, body))
}

/// What the crowd saw.
#[derive(Default)]
struct Record {
    /// Per shopper: arrival second, time to the first answer (any status).
    first: Vec<(u32, Duration)>,
    /// Every answer's time from its request.
    answers: Vec<Duration>,
    /// Per shopper: how late the driver started it (its own CPU share, not the server).
    late: Vec<Duration>,
    to_ticket: Vec<Duration>,
    to_final: Vec<Duration>,
    outcomes: BTreeMap<&'static str, u64>,
    /// Answers by status, a refusal's with its problem code (`503 redis_unavailable`).
    statuses: BTreeMap<String, u64>,
    /// Shoppers whose first answer came after a `5xx` (told to come back, they did).
    answered_after_5xx: u64,
    /// Requests that got no answer (refused connection, closed, 30 s without an answer).
    errors: u64,
    arrivals: u64,
}

impl Record {
    fn report(mut self, args: &Args, arriving_secs: f64, secs: f64) -> Value {
        let mut per_second: BTreeMap<u32, Vec<Duration>> = BTreeMap::new();
        for (second, latency) in &self.first {
            per_second.entry(*second).or_default().push(*latency);
        }
        let series: Vec<Value> = per_second
            .into_iter()
            .map(|(second, mut l)| {
                let n = l.len();
                let q = crate::stats::latency(&mut l);
                json!([second, n, q["p50_ms"], q["p99_ms"]])
            })
            .collect();
        let mut first: Vec<Duration> = self.first.iter().map(|(_, l)| *l).collect();
        let requests = self.answers.len() as u64 + self.errors;
        json!({
            "system": format!("{:?}", args.system).to_lowercase(),
            "peak": args.peak,
            "ramp_secs": args.ramp_secs,
            "hold_secs": args.hold_secs,
            "arrivals": self.arrivals,
            "arriving_secs": arriving_secs,
            "secs": secs,
            "requests": requests,
            "errors": self.errors,
            "statuses": self.statuses,
            "outcomes": self.outcomes,
            // Shoppers whose first answer was not a 5xx.
            "answered": first.len(),
            "answered_after_5xx": self.answered_after_5xx,
            "first_answer": crate::stats::latency(&mut first),
            "answers": crate::stats::latency(&mut self.answers),
            "driver_late": crate::stats::latency(&mut self.late),
            "to_ticket": crate::stats::latency(&mut self.to_ticket),
            "to_final": crate::stats::latency(&mut self.to_final),
            "series": series,
        })
    }
}

/// One shopper, from arrival to a final answer.
struct Shopper {
    i: usize,
    started: Instant,
    arrived: Instant,
    answered: AtomicBool,
    /// Whether a `5xx` came before the first answer.
    refused: AtomicBool,
    args: Arc<Args>,
    door: Arc<Pool>,
    stripe: Arc<Pool>,
    record: Arc<Mutex<Record>>,
}

/// How a shopper pays: the k6 script's rule, so both drivers make the same crowd.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Payer {
    Declined,
    Browser,
    Card,
}

impl Shopper {
    fn payer(&self) -> Payer {
        let slot = ((self.i * 7919) % 1000) as f64 / 1000.0;
        if slot < self.args.decline_share {
            Payer::Declined
        } else if slot < self.args.decline_share + self.args.browser_share {
            Payer::Browser
        } else {
            Payer::Card
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Record) -> T) -> Option<T> {
        self.record.lock().ok().map(|mut r| f(&mut r))
    }

    fn end(&self, outcome: &'static str) {
        let since = self.arrived.elapsed();
        self.with(|r| {
            *r.outcomes.entry(outcome).or_default() += 1;
            r.to_final.push(since);
        });
    }

    /// One request; its answer's status and body, or `None` (counted) without an answer.
    async fn call(&self, pool: &Pool, request: Vec<u8>) -> Option<(Head, Vec<u8>)> {
        let sent = Instant::now();
        let answer = tokio::time::timeout(TIMEOUT, pool.send(&request)).await;
        let took = sent.elapsed();
        match answer {
            Ok(Ok(answer)) => {
                let first = self.arrived.elapsed();
                let second = self.arrived.duration_since(self.started).as_secs() as u32;
                // An overloaded server's 5xx is no answer to the shopper: the first answer
                // is the first that says something (a ticket, a refusal, a wait).
                let status = answer.0.status;
                let is_first = status < 500 && !self.answered.swap(true, Ordering::Relaxed);
                if status >= 500 {
                    self.refused.store(true, Ordering::Relaxed);
                }
                let key = match problem_code(status, &answer.1) {
                    Some(code) => format!("{status} {code}"),
                    None => status.to_string(),
                };
                let after_5xx = is_first && self.refused.load(Ordering::Relaxed);
                self.with(|r| {
                    if is_first {
                        r.first.push((second, first));
                        r.answered_after_5xx += u64::from(after_5xx);
                    }
                    r.answers.push(took);
                    *r.statuses.entry(key).or_default() += 1;
                });
                Some(answer)
            }
            _ => {
                self.with(|r| r.errors += 1);
                None
            }
        }
    }

    async fn run(self) {
        let late = self.arrived.elapsed();
        self.with(|r| {
            r.arrivals += 1;
            r.late.push(late);
        });
        match self.args.system {
            System::Flashgate => self.flashgate().await,
            System::Baseline => self.baseline().await,
            System::Healthz => self.healthz().await,
        }
    }

    async fn healthz(&self) {
        let request = self.door.get("/healthz");
        self.end(match self.call(&self.door, request).await {
            Some((head, _)) if head.status == 200 => "ok",
            Some((head, _)) if head.status >= 500 => "overloaded",
            Some(_) => "unexpected",
            None => "overloaded",
        });
    }

    async fn baseline(&self) {
        let card = if self.payer() == Payer::Declined {
            "pm_card_chargeDeclined"
        } else {
            "pm_card_visa"
        };
        let body = json!({
            "sale_id": self.args.sale,
            "customer_id": format!("{}{}", self.args.prefix, self.i),
            "quantity": 1,
            "payment_method": card,
        })
        .to_string();
        let request = self.door.post("/checkout", "", "application/json", &body);
        match self.call(&self.door, request).await {
            Some((head, _)) => self.end(match head.status {
                201 => "ordered",
                402 => "failed",
                410 => "sold_out",
                s if s >= 500 => "overloaded",
                _ => "unexpected",
            }),
            None => self.end("overloaded"),
        }
    }

    async fn flashgate(&self) {
        let how = self.payer();
        let mut body = json!({
            "customer_id": format!("{}{}", self.args.prefix, self.i),
            "quantity": 1,
        });
        match how {
            Payer::Card => body["payment_method"] = json!("pm_card_visa"),
            Payer::Declined => body["payment_method"] = json!("pm_card_chargeDeclined"),
            Payer::Browser => {}
        }
        let Some(mut ticket) = self.take_ticket(&body.to_string()).await else {
            return;
        };
        let deadline = self.arrived + Duration::from_secs(self.args.deadline_secs);
        let mut confirmed = false;
        loop {
            let status = ticket["status"].as_str().unwrap_or_default().to_owned();
            if let Some(done) = FINAL.iter().find(|s| **s == status) {
                return self.end(done);
            }
            if Instant::now() > deadline {
                return self.end("stuck");
            }
            if how == Payer::Browser && !confirmed && ticket["payment"].is_object() {
                confirmed = self.confirm(&ticket["payment"]).await;
            }
            // As the waiting room does: when the door says (500 ms near the front, up to
            // 10 s deep in the queue).
            let wait = ticket["poll_after_ms"]
                .as_u64()
                .unwrap_or(500)
                .clamp(100, 10_000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let path = format!(
                "/v1/tickets/{}",
                ticket["ticket"].as_str().unwrap_or_default()
            );
            let request = self.door.get(&path);
            if let Some((head, answer)) = self.call(&self.door, request).await
                && head.status == 200
                && let Ok(next) = serde_json::from_slice::<Value>(&answer)
            {
                ticket = next;
            }
        }
    }

    /// Takes a ticket; `None` once the shopper has an outcome without one.
    async fn take_ticket(&self, body: &str) -> Option<Value> {
        let path = format!("/v1/sales/{}/tickets", self.args.sale);
        for tries in 0..self.args.max_door_tries {
            if self.arrived.elapsed() > Duration::from_secs(self.args.deadline_secs) {
                break;
            }
            let request = self.door.post(&path, "", "application/json", body);
            let Some((head, answer)) = self.call(&self.door, request).await else {
                // No answer (refused, closed, 30 s): a browser's retry, a second later.
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            match head.status {
                200 | 202 => {
                    let since = self.arrived.elapsed();
                    self.with(|r| r.to_ticket.push(since));
                    return serde_json::from_slice(&answer).ok().or_else(|| {
                        self.end("unexpected");
                        None
                    });
                }
                410 => {
                    self.end("sold_out_at_door");
                    return None;
                }
                429 | 503 => {
                    let wait = head.retry_after.unwrap_or(1.0) * (0.5 + jitter(self.i, tries));
                    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                }
                _ => {
                    self.end("unexpected");
                    return None;
                }
            }
        }
        self.end("gave_up");
        None
    }

    /// Confirms the payment as the browser would; whether the emulator took it.
    async fn confirm(&self, payment: &Value) -> bool {
        let (Some(intent), Some(secret)) = (
            payment["payment_intent"].as_str(),
            payment["client_secret"].as_str(),
        ) else {
            return false;
        };
        let body = format!("client_secret={secret}&payment_method=pm_card_visa");
        let path = format!("/v1/payment_intents/{intent}/confirm");
        // The browser's call, with the shop's publishable key.
        let request = self.stripe.post(
            &path,
            "Authorization: Bearer pk_test_flashgate\r\n",
            "application/x-www-form-urlencoded",
            &body,
        );
        let answer = tokio::time::timeout(TIMEOUT, self.stripe.send(&request)).await;
        matches!(answer, Ok(Ok((head, _))) if head.status == 200)
    }
}

/// A refusal's problem code (`door_busy`, `redis_unavailable`, …), so a report tells one
/// `503` from another.
fn problem_code(status: u16, body: &[u8]) -> Option<String> {
    if status < 400 {
        return None;
    }
    let problem: Value = serde_json::from_slice(body).ok()?;
    problem["code"].as_str().map(str::to_owned)
}

/// A number in [0, 1) from a shopper and a try (splitmix64): the spread of the waits a
/// browser adds after a 429, the same in every run.
fn jitter(shopper: usize, tries: u32) -> f64 {
    let mut x = (shopper as u64) << 8 ^ u64::from(tries);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}
