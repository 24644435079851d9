//! The operators' API, behind `Authorization: Bearer <admin token>` (compared in constant
//! time): list sales, create or update one, change its admission live, read its stats and
//! its audit log, live (`/live`, Server-Sent Events, which the console at
//! `/admin/console` reads). Every change is written to `admission_audit` with who, when, old and
//! new. `flashgate admin …` is a client of this API.

mod admission;
mod audit;
mod console;
mod sale;
mod stats;

use axum::Router;
use axum::http::HeaderMap;
use axum::middleware;
use axum::routing::{get, patch, put};
use flashgate_common::http::require_admin;

use crate::state::AppState;
pub(crate) use admission::__path_patch_admission;
pub use admission::update_admission;
pub(crate) use audit::__path_get_audit;
pub use audit::{AuditEntry, AuditPage};
pub(crate) use console::{__path_live, __path_page as __path_console, page as console};
pub use flashgate_common::ledger::sales::{AdmissionChange, AdmissionDoc, Sale, SaleInput};
pub use sale::upsert_sale;
pub(crate) use sale::{__path_list_sales, __path_put_sale};
pub(crate) use stats::__path_get_stats;
pub use stats::{SaleStats, sale_stats};

/// The admin routes, guarded by the bearer token.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/v1/sales", get(sale::list_sales))
        .route("/admin/v1/sales/{sale_id}", put(sale::put_sale))
        .route("/admin/v1/sales/{sale_id}/audit", get(audit::get_audit))
        .route(
            "/admin/v1/sales/{sale_id}/admission",
            patch(admission::patch_admission),
        )
        .route("/admin/v1/sales/{sale_id}/stats", get(stats::get_stats))
        .route("/admin/v1/sales/{sale_id}/live", get(console::live))
        .route_layer(middleware::from_fn_with_state(
            state.config.admin_token.clone(),
            require_admin,
        ))
}

/// Tells every door a sale changed; a lost announcement only delays the change until
/// the doors' next periodic re-read.
async fn announce(redis: &flashgate_common::live::Redis, sale: &flashgate_common::domain::SaleId) {
    if let Err(e) = redis.announce_sale_change(sale).await {
        tracing::warn!(error = ?e, %sale, "sale change not announced; doors re-read it within a second");
    }
}

/// The `limit` a list was asked for (`default` when none), or `422 invalid_limit` when
/// it is outside 1..=`max`.
fn page_limit(asked: Option<i64>, default: i64, max: i64) -> crate::Result<i64> {
    let limit = asked.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        let detail = format!("limit must be 1..={max}");
        Err(flashgate_common::http::Problem::unprocessable("invalid_limit", detail).into())
    }
}

/// Who made an admin change: `X-Actor` when the caller names itself.
fn actor(headers: &HeaderMap) -> String {
    let named = headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 100);
    format!("api:{}", named.unwrap_or("admin"))
}
