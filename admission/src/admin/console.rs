//! The operators' live console: `GET /admin/console` (one small page, no framework: a
//! list of sales, then one sale's numbers, charts, controls and audit log, updated live)
//! and the stream it reads, `GET /admin/v1/sales/{sale_id}/live` (Server-Sent Events,
//! behind the admin token: the sale's stats with this door's rates every second, and each
//! new audit entry, the controller's decisions included, as it is written).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use flashgate_common::domain::SaleId;
use flashgate_common::http::{ApiPath, Problem};
use futures_util::Stream;

use super::audit::AuditEntry;
use crate::Result;
use crate::state::AppState;

const PAGE: &str = include_str!("console.html");

/// How often the stream sends the stats.
const EVERY: Duration = Duration::from_secs(1);

/// A stream ends after this long; the console reconnects at once (a proxy's idle or
/// lifetime limit never cuts one mid-event, and a removed door's streams move on).
const LIFETIME: Duration = Duration::from_secs(300);

/// The console page (the admin token is asked for in the page and sent with each call).
#[utoipa::path(get, path = "/admin/console", tag = "operators",
    responses((status = 200, description = "The console", body = String, content_type = "text/html")))]
pub(crate) async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// A sale's stats every second, and each new audit entry, as Server-Sent Events
/// (`event: stats`, `event: audit`); the stream ends after five minutes (reconnect).
#[utoipa::path(get, path = "/admin/v1/sales/{sale_id}/live", tag = "operators",
    security(("admin_token" = [])),
    params(("sale_id" = String, Path, description = "The sale")),
    responses(
        (status = 200, description = "`text/event-stream`: `stats` (the stats document) every second, `audit` (an audit entry) as each is written", body = String, content_type = "text/event-stream"),
        (status = 400, description = "Malformed path", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn live(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let not_found = || Problem::not_found("sale_not_found", "no sale with this id");
    let sale_id = SaleId::parse(sale_id).map_err(|_| not_found())?;
    // The first stats now, so a missing sale is a 404 and not an empty stream.
    let first = super::stats::door_stats(&state, &sale_id).await?;
    let last_audit = newest_audit(&state, &sale_id).await?;
    let stream = futures_util::stream::unfold(
        (
            state,
            sale_id,
            Some(first),
            last_audit,
            tokio::time::Instant::now(),
        ),
        |(state, sale, mut pending, mut last_audit, started)| async move {
            if started.elapsed() >= LIFETIME {
                return None;
            }
            let stats = match pending.take() {
                Some(stats) => Ok(stats),
                None => {
                    tokio::time::sleep(EVERY).await;
                    super::stats::door_stats(&state, &sale).await
                }
            };
            let mut events = Vec::new();
            match stats {
                Ok(stats) => events.push(json_event("stats", &stats)),
                Err(e) => tracing::debug!(error = ?e, "console stats not read"),
            }
            if let Ok(entries) = audit_after(&state, &sale, last_audit).await {
                for entry in entries {
                    last_audit = last_audit.max(entry.id);
                    events.push(json_event("audit", &entry));
                }
            }
            let batch = futures_util::stream::iter(events.into_iter().map(Ok));
            Some((batch, (state, sale, None, last_audit, started)))
        },
    );
    use futures_util::StreamExt as _;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| Event::default().comment("unserializable"))
}

async fn newest_audit(state: &AppState, sale: &SaleId) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"SELECT COALESCE(max(id), 0) AS "id!" FROM admission_audit WHERE sale_id = $1"#,
        sale.as_str()
    )
    .fetch_one(&state.pool)
    .await?)
}

async fn audit_after(state: &AppState, sale: &SaleId, after: i64) -> Result<Vec<AuditEntry>> {
    Ok(sqlx::query_as!(
        AuditEntry,
        "SELECT id, at, actor, action, old, new FROM admission_audit
         WHERE sale_id = $1 AND id > $2 ORDER BY id LIMIT 50",
        sale.as_str(),
        after
    )
    .fetch_all(&state.pool)
    .await?)
}
