//! `GET /admin/v1/sales/{sale_id}/stats`: tickets by status, stock terms, admission
//! settings and this process's admitted and rejected rates, queue depth, the last
//! minute's times in queue and to a final answer, payments, and latencies.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use flashgate_common::domain::SaleId;
use flashgate_common::http::{ApiPath, Problem, SHOPPERS};
use flashgate_common::ledger::vitals::{self, SaleVitals};
use flashgate_common::telemetry::window::Recent;
use serde::Serialize;
use sqlx::PgPool;

use crate::Result;
use crate::state::AppState;

/// The stats document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = SaleStats)]
pub struct SaleStats {
    /// Sale id.
    pub sale_id: String,
    /// Tickets by status (`queued` counts tickets issued and not yet decided).
    pub tickets: BTreeMap<String, i64>,
    /// Stock terms: stock, available, reserved, sold.
    pub stock: BTreeMap<String, i64>,
    /// Admission settings and this door's rates.
    #[schema(value_type = Object)]
    pub admission: serde_json::Value,
    /// Tickets issued, decided and waiting.
    pub queue: BTreeMap<String, i64>,
    /// Times in queue and to a final answer, and how payments went, over the last minute.
    pub vitals: SaleVitals,
    /// How fast the door, the database and Stripe answer now.
    pub latency: Latency,
}

/// How fast things answer now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Latency {
    /// This door's answers to shoppers over the last ten seconds (`errors`: 5xx).
    pub door: Recent,
    /// How long the database took to answer these stats, in milliseconds.
    pub database_ms: f64,
    /// The workers' Stripe calls over their last ten seconds (`errors`: no answer or a
    /// server error; a declined card is an answer). `p99_ms` is the slowest worker's.
    pub stripe: Recent,
}

/// Counts from PostgreSQL; `issued` is the highest sequence number handed out.
pub async fn sale_stats(pool: &PgPool, id: &SaleId, issued: i64) -> Result<Option<SaleStats>> {
    let started = Instant::now();
    let Some(sale) = sqlx::query!(
        "SELECT stock, reserved, sold, decided, rate_per_second, burst, paused, waitlist, pow_difficulty, controller
         FROM sales WHERE id = $1",
        id.as_str()
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let issued = issued.max(sale.decided);
    let mut tickets = ticket_counts(pool, id).await?;
    tickets.insert("queued".into(), issued - sale.decided);
    let (stock, reserved, sold) = (
        i64::from(sale.stock),
        i64::from(sale.reserved),
        i64::from(sale.sold),
    );
    let stock = BTreeMap::from([
        ("stock".into(), stock),
        ("available".into(), stock - reserved - sold),
        ("reserved".into(), reserved),
        ("sold".into(), sold),
    ]);
    let queue = BTreeMap::from([
        ("issued".into(), issued),
        ("decided".into(), sale.decided),
        ("depth".into(), issued - sale.decided),
    ]);
    let admission = serde_json::json!({
        "rate_per_second": sale.rate_per_second, "burst": sale.burst,
        "paused": sale.paused, "waitlist": sale.waitlist,
        "pow_difficulty": sale.pow_difficulty, "controller": sale.controller,
    });
    let vitals = vitals::sale_vitals(pool, id).await?;
    let database_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0;
    let latency = Latency {
        door: SHOPPERS.recent(),
        database_ms,
        stripe: vitals::stripe(pool).await?,
    };
    Ok(Some(SaleStats {
        sale_id: id.to_string(),
        tickets,
        stock,
        admission,
        queue,
        vitals,
        latency,
    }))
}

/// Orders by status, plus tickets that never got an order (sold out, wait-listed).
async fn ticket_counts(pool: &PgPool, id: &SaleId) -> Result<BTreeMap<String, i64>> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status!", count(*) AS "n!" FROM orders WHERE sale_id = $1 GROUP BY status
           UNION ALL
           SELECT decision, count(*) FROM tickets
           WHERE sale_id = $1 AND decision IN ('sold_out', 'waitlisted') GROUP BY decision"#,
        id.as_str()
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}

/// Tickets by status, stock terms, queue, admission settings and this door's rates.
#[utoipa::path(get, path = "/admin/v1/sales/{sale_id}/stats", tag = "operators",
    security(("admin_token" = [])),
    params(("sale_id" = String, Path, description = "The sale")),
    responses(
        (status = 200, description = "The stats", body = SaleStats),
        (status = 400, description = "Malformed JSON, query or path", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_stats(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
) -> Result<Json<SaleStats>> {
    let not_found = || Problem::not_found("sale_not_found", "no sale with this id");
    let sale_id = SaleId::parse(sale_id).map_err(|_| not_found())?;
    Ok(Json(door_stats(&state, &sale_id).await?))
}

/// The stats of a sale with this door's rates (`404` when there is no such sale).
pub(crate) async fn door_stats(state: &AppState, sale_id: &SaleId) -> Result<SaleStats> {
    let not_found = || Problem::not_found("sale_not_found", "no sale with this id");
    let handle = state.sales.get(sale_id).await?.ok_or_else(not_found)?;
    let mut stats = sale_stats(&state.pool, sale_id, handle.live().published)
        .await?
        .ok_or_else(not_found)?;
    let rates = handle.counters.rates();
    let admitted = rates
        .iter()
        .find(|(name, _)| *name == "admitted")
        .map_or(0.0, |r| r.1);
    let rejected: BTreeMap<&str, f64> = rates
        .into_iter()
        .filter(|(name, _)| *name != "admitted")
        .collect();
    stats.admission["admitted_per_second"] = serde_json::json!(admitted);
    stats.admission["rejected_per_second"] = serde_json::json!(rejected);
    stats.admission["service_rate_per_second"] = serde_json::json!(handle.live().service_rate);
    Ok(stats)
}
