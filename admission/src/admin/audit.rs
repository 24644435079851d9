//! The audit log of admin changes: written inside the transaction that made the change,
//! read back newest first by `GET /admin/v1/sales/{sale_id}/audit`.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use flashgate_common::domain::SaleId;
use flashgate_common::http::{ApiPath, ApiQuery, Problem};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;
use crate::state::AppState;

pub(super) use flashgate_common::ledger::audit::record;

/// One audited change.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Increasing id; pass the last one seen as `before` for the next page.
    pub id: i64,
    /// When the change committed.
    pub at: DateTime<Utc>,
    /// Who made it (`api:<X-Actor>` or `cli:<user>`).
    pub actor: String,
    /// What was changed (`sale.upsert`, `admission.update`).
    pub action: String,
    /// The settings before (none on create).
    #[schema(value_type = Option<Object>)]
    pub old: Option<Value>,
    /// The settings after.
    #[schema(value_type = Object)]
    pub new: Value,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
}

/// `?limit=&before=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    limit: Option<i64>,
    before: Option<i64>,
}

/// Most entries a page holds.
const MAX_PAGE: i64 = 500;

/// Who changed a sale, when, from what to what; newest first.
#[utoipa::path(get, path = "/admin/v1/sales/{sale_id}/audit", tag = "operators",
    security(("admin_token" = [])),
    params(("sale_id" = String, Path, description = "The sale"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 500, description = "Most entries (default 50)"),
           ("before" = Option<i64>, Query, description = "Only entries older than this id")),
    responses(
        (status = 200, description = "A page of the log", body = AuditPage),
        (status = 400, description = "Malformed JSON, query or path", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`limit` out of range (`invalid_limit`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn get_audit(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>> {
    let limit = super::page_limit(params.limit, 50, MAX_PAGE)?;
    let not_found = || Problem::not_found("sale_not_found", "no sale with this id");
    let sale_id = SaleId::parse(sale_id).map_err(|_| not_found())?;
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM sales WHERE id = $1) AS "exists!""#,
        sale_id.as_str()
    )
    .fetch_one(&state.pool)
    .await?;
    if !exists {
        return Err(not_found().into());
    }
    let entries = sqlx::query_as!(
        AuditEntry,
        "SELECT id, at, actor, action, old, new FROM admission_audit
         WHERE sale_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        sale_id.as_str(),
        params.before.unwrap_or(i64::MAX),
        limit
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(AuditPage { entries }))
}
