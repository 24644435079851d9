//! `flashgate admin …`: a client of a door's admin API (`/admin/v1/…`), with the admin
//! token and no database credentials. Prints tables for people, `--json` for scripts.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{AdminArgs, AdminCommand, SaleArgs, SalesCommand, Switch};
use flashgate_common::Config;

/// The admin API of one door.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    actor: String,
}

impl Client {
    fn new(config: &Config, args: &AdminArgs) -> anyhow::Result<Self> {
        let base = match &args.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let listen = config.admission.listen;
                let host = if listen.ip().is_unspecified() {
                    std::net::IpAddr::from([127, 0, 0, 1])
                } else {
                    listen.ip()
                };
                format!("http://{}", std::net::SocketAddr::new(host, listen.port()))
            }
        };
        let token = args
            .token
            .clone()
            .unwrap_or_else(|| config.admin_token.expose_secret().to_owned());
        if token.is_empty() {
            anyhow::bail!(
                "no admin token: set FLASHGATE_ADMIN_TOKEN (or admin_token in the configuration)"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Ok(Self {
            http,
            base,
            token,
            actor: format!("cli:{user}"),
        })
    }

    /// Sends a request; a problem answer becomes an error that says what the API said.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .header("x-actor", &self.actor);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the admin API at {}: is the door running there? (--url, FLASHGATE_ADMIN_URL)",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().await?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .with_context(|| format!("{url} answered {status} with no JSON document"));
        }
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let detail = problem["detail"].as_str().unwrap_or(text.trim());
        let code = problem["code"].as_str().unwrap_or("");
        if status == StatusCode::UNAUTHORIZED {
            anyhow::bail!(
                "the admin API refused the token (401): check FLASHGATE_ADMIN_TOKEN against the door's admin_token"
            );
        }
        anyhow::bail!("{} {code}: {detail}", status.as_u16())
    }
}

/// Runs one `flashgate admin` command.
pub async fn run(config: &Config, args: AdminArgs) -> anyhow::Result<()> {
    let client = Client::new(config, &args)?;
    let json = args.json;
    let show = |value: &Value, render: fn(&Value) -> String| {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", render(value));
        }
    };
    let admission = |sale: String, change: Value| {
        let client = &client;
        async move {
            let path = format!("/admin/v1/sales/{}/admission", encode(&sale));
            client.call(Method::PATCH, &path, Some(change)).await
        }
    };
    match args.command {
        AdminCommand::Sales(SalesCommand::List { limit }) => {
            let list = client
                .call(Method::GET, &format!("/admin/v1/sales?limit={limit}"), None)
                .await?;
            show(&list, sales_table);
        }
        AdminCommand::Sale(sale) => {
            let path = format!("/admin/v1/sales/{}", encode(&sale.sale));
            let doc = client
                .call(Method::PUT, &path, Some(sale_body(&sale)))
                .await?;
            show(&doc, |doc| sales_table(&json!({ "sales": [doc] })));
        }
        AdminCommand::Rate { sale, rate, burst } => {
            if rate.is_none() && burst.is_none() {
                anyhow::bail!("give --rate, --burst or both");
            }
            let change = json!({ "rate_per_second": rate, "burst": burst });
            show(&admission(sale, without_nulls(change)).await?, fields);
        }
        AdminCommand::Pause { sale } => {
            show(&admission(sale, json!({ "paused": true })).await?, fields);
        }
        AdminCommand::Resume { sale } => {
            show(&admission(sale, json!({ "paused": false })).await?, fields);
        }
        AdminCommand::Waitlist { sale, state } => {
            let change = json!({ "waitlist": state == Switch::On });
            show(&admission(sale, change).await?, fields);
        }
        AdminCommand::Pow { sale, bits } => {
            let change = json!({ "pow_difficulty": bits });
            show(&admission(sale, change).await?, fields);
        }
        AdminCommand::Controller {
            sale,
            min,
            max,
            step,
            decrease_percent,
            max_queue_wait_secs,
            max_payment_backlog,
            max_db_ms,
            off,
        } => {
            let controller = if off {
                Value::Null
            } else {
                without_nulls(json!({
                    "min_rate": min, "max_rate": max, "step": step,
                    "decrease_percent": decrease_percent, "max_queue_wait_secs": max_queue_wait_secs,
                    "max_payment_backlog": max_payment_backlog, "max_db_ms": max_db_ms,
                }))
            };
            let change = json!({ "controller": controller });
            show(&admission(sale, change).await?, fields);
        }
        AdminCommand::Stats { sale, watch, count } => {
            let path = format!("/admin/v1/sales/{}/stats", encode(&sale));
            let Some(every) = watch else {
                show(&client.call(Method::GET, &path, None).await?, stats_view);
                return Ok(());
            };
            if !(every.is_finite() && every >= 0.1) {
                anyhow::bail!("--watch takes at least 0.1 seconds");
            }
            let clear = !json && std::io::stdout().is_terminal();
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(every));
            let mut shown = 0;
            while count.is_none_or(|n| shown < n) {
                ticker.tick().await;
                let stats = client.call(Method::GET, &path, None).await?;
                if clear {
                    print!("\x1b[2J\x1b[H");
                }
                if !json {
                    println!(
                        "{}  every {every} s, Ctrl-C to stop\n",
                        chrono::Utc::now().format("%H:%M:%S")
                    );
                }
                show(&stats, stats_view);
                shown += 1;
            }
        }
        AdminCommand::Audit {
            sale,
            limit,
            before,
        } => {
            let mut path = format!("/admin/v1/sales/{}/audit?limit={limit}", encode(&sale));
            if let Some(before) = before {
                let _ = write!(path, "&before={before}");
            }
            show(&client.call(Method::GET, &path, None).await?, audit_table);
        }
    }
    Ok(())
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn without_nulls(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    value
}

fn sale_body(args: &SaleArgs) -> Value {
    without_nulls(json!({
        "sku": args.sku,
        "stock": args.stock,
        "price": args.price,
        "currency": args.currency,
        "starts_at": args.starts_at,
        "hold_seconds": args.hold_seconds,
        "rate_per_second": args.rate,
        "burst": args.burst,
        "paused": args.paused.then_some(true),
        "waitlist": args.waitlist.map(|s| s == Switch::On),
        "waitlist_limit": args.waitlist_limit,
        "max_quantity_per_customer": args.max_quantity_per_customer,
        "prequeue_opens_at": args.prequeue_opens_at,
        "pow_difficulty": args.pow_difficulty,
    }))
}

/// A value as a table cell.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() != 0.0)
            .map_or_else(|| n.to_string(), |f| format!("{f:.1}")),
        other => other.to_string(),
    }
}

/// Left-aligned columns under upper-case headers, two spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = String>| {
        let mut text = String::new();
        for (cell, width) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        line(&mut row.iter().cloned());
    }
    out
}

/// An RFC 3339 time in a document.
fn instant(value: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = value.as_str()?;
    let parsed = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(parsed.with_timezone(&chrono::Utc))
}

/// `time` in UTC as `format`, `-` when there is none.
fn utc(time: Option<chrono::DateTime<chrono::Utc>>, format: &str) -> String {
    time.map_or_else(|| "-".into(), |t| t.format(format).to_string())
}

/// `sales list` and `sale`: one row per sale.
fn sales_table(list: &Value) -> String {
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = list["sales"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let starts = instant(&s["starts_at"]);
            let state = if s["paused"] == true {
                "paused"
            } else if starts.is_some_and(|t| t > now) {
                "scheduled"
            } else if s["available"] == 0 && s["reserved"] == 0 {
                "sold out"
            } else {
                "open"
            };
            let starts = utc(starts, "%Y-%m-%d %H:%M");
            let price = format!(
                "{} {}",
                cell(&s["price"]),
                cell(&s["currency"]).to_uppercase()
            );
            [
                cell(&s["sale_id"]),
                cell(&s["sku"]),
                state.into(),
                starts,
                price,
                cell(&s["stock"]),
                cell(&s["available"]),
                cell(&s["reserved"]),
                cell(&s["sold"]),
                format!("{}/{}", cell(&s["rate_per_second"]), cell(&s["burst"])),
                cell(&s["waitlist"]),
                cell(&s["waitlisted"]),
            ]
            .into()
        })
        .collect();
    table(
        &[
            "sale",
            "sku",
            "state",
            "starts (UTC)",
            "price",
            "stock",
            "available",
            "reserved",
            "sold",
            "rate/burst",
            "wait-list",
            "waiting",
        ],
        &rows,
    )
}

/// A flat document as `name  value` lines.
fn fields(doc: &Value) -> String {
    let rows: Vec<Vec<String>> = doc
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| vec![k.replace('_', " "), cell(v)])
        .collect();
    table(&["setting", "value"], &rows)
}

/// An object without its zero entries.
fn without_zeros(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.retain(|_, v| v.as_f64() != Some(0.0));
    }
    object
}

/// `name value, name value` of an object's numbers (`-` when it has none).
fn pairs(object: &Value) -> String {
    let parts: Vec<String> = object
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{} {}", k.replace('_', " "), cell(v)))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// `stats`: what an operator watches during a sale.
fn stats_view(stats: &Value) -> String {
    let a = &stats["admission"];
    let admission = format!(
        "{}/s, burst {}, {}, wait-list {}",
        cell(&a["rate_per_second"]),
        cell(&a["burst"]),
        if a["paused"] == true {
            "paused"
        } else {
            "admitting"
        },
        cell(&a["waitlist"]),
    );
    let rows = vec![
        vec!["sale".into(), cell(&stats["sale_id"])],
        vec![
            "stock".into(),
            format!(
                "{} units: {} available, {} reserved, {} sold",
                cell(&stats["stock"]["stock"]),
                cell(&stats["stock"]["available"]),
                cell(&stats["stock"]["reserved"]),
                cell(&stats["stock"]["sold"]),
            ),
        ],
        vec![
            "queue".into(),
            format!(
                "{} waiting ({} issued, {} decided)",
                cell(&stats["queue"]["depth"]),
                cell(&stats["queue"]["issued"]),
                cell(&stats["queue"]["decided"]),
            ),
        ],
        vec!["tickets".into(), pairs(&stats["tickets"])],
        vec!["admission".into(), admission],
        vec![
            "admitted/s (this door)".into(),
            cell(&a["admitted_per_second"]),
        ],
        vec![
            "refused/s (this door)".into(),
            pairs(&without_zeros(&a["rejected_per_second"])),
        ],
        vec!["service rate/s".into(), cell(&a["service_rate_per_second"])],
    ];
    table(&["", ""], &rows)
        .split_once('\n')
        .map_or_else(String::new, |(_, body)| body.to_owned())
}

/// `audit`: one row per change, with what changed.
fn audit_table(page: &Value) -> String {
    let rows: Vec<Vec<String>> = page["entries"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let at = utc(instant(&e["at"]), "%Y-%m-%d %H:%M:%S");
            vec![
                cell(&e["id"]),
                at,
                cell(&e["actor"]),
                cell(&e["action"]),
                changes(&e["old"], &e["new"]),
            ]
        })
        .collect();
    table(&["id", "at (UTC)", "actor", "action", "change"], &rows)
}

/// `name old → new` for each field that differs (every field on a create).
fn changes(old: &Value, new: &Value) -> String {
    let Some(new) = new.as_object() else {
        return cell(new);
    };
    let parts: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(k.as_str()) != Some(v))
        .filter(|(k, _)| !matches!(k.as_str(), "version" | "sale_id"))
        .map(|(k, v)| match old.get(k.as_str()) {
            Some(before) if !old.is_null() => format!("{k} {} → {}", cell(before), cell(v)),
            _ => format!("{k} {}", cell(v)),
        })
        .collect();
    if parts.is_empty() {
        "no change".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_aligns_its_columns_under_upper_case_headers() {
        let out = table(
            &["sale", "sold"],
            &[
                vec!["launch".into(), "5".into()],
                vec!["x".into(), "120".into()],
            ],
        );
        assert_eq!(out, "SALE    SOLD\nlaunch  5\nx       120\n");
    }

    #[test]
    fn an_audit_change_shows_only_what_differs() {
        let old = json!({ "rate_per_second": 5, "burst": 5, "paused": false });
        let new = json!({ "rate_per_second": 50, "burst": 5, "paused": true });
        assert_eq!(
            changes(&old, &new),
            "paused off → on, rate_per_second 5 → 50"
        );
        assert_eq!(changes(&Value::Null, &json!({ "stock": 3 })), "stock 3");
    }

    #[test]
    fn a_sale_id_is_one_path_segment() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
