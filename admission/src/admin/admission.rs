//! `PATCH /admin/v1/sales/{sale_id}/admission`: rate, burst, pause and wait-list, live.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use flashgate_common::domain::SaleId;
use flashgate_common::http::{ApiJson, ApiPath, Problem};
use flashgate_common::ledger::sales::{self, AdmissionChange, AdmissionDoc};
use flashgate_common::live::Redis;
use sqlx::PgPool;

use super::{actor, audit};
use crate::Result;
use crate::state::AppState;

/// Checks a change asks for something, in range.
fn validate(change: &AdmissionChange) -> Result<()> {
    if change.rate_per_second.is_none()
        && change.burst.is_none()
        && change.paused.is_none()
        && change.waitlist.is_none()
        && change.pow_difficulty.is_none()
        && change.captcha.is_none()
        && change.controller.is_none()
    {
        return Err(Problem::unprocessable(
            "empty_change",
            "give at least one of rate_per_second, burst, paused, waitlist, pow_difficulty, captcha, controller",
        )
        .into());
    }
    if let Some(problem) = change
        .controller
        .as_ref()
        .and_then(|c| c.as_ref()?.problem())
    {
        return Err(Problem::unprocessable("invalid_admission", problem).into());
    }
    if change
        .pow_difficulty
        .is_some_and(|bits| !(0..=flashgate_common::pow::MAX_BITS as i32).contains(&bits))
    {
        return Err(Problem::unprocessable(
            "invalid_admission",
            "pow_difficulty must be 0..=28 (leading zero bits)",
        )
        .into());
    }
    let in_range = |v: Option<i32>| v.is_none_or(|v| (1..=1_000_000).contains(&v));
    if !in_range(change.rate_per_second) || !in_range(change.burst) {
        return Err(Problem::unprocessable(
            "invalid_admission",
            "rate_per_second and burst must be 1..=1000000",
        )
        .into());
    }
    Ok(())
}

/// Changes a sale's admission live: rate, burst, pause, wait-list, proof-of-work
/// difficulty, the closed-loop controller (audited).
#[utoipa::path(patch, path = "/admin/v1/sales/{sale_id}/admission", tag = "operators",
    security(("admin_token" = [])),
    params(("sale_id" = String, Path, description = "The sale"),
           ("X-Actor" = Option<String>, Header, description = "Who, for the audit log")),
    request_body = AdmissionChange,
    responses(
        (status = 200, description = "The admission settings now", body = AdmissionDoc),
        (status = 400, description = "Malformed JSON, query or path", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Nothing to change, or a value out of range", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn patch_admission(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(change): ApiJson<AdmissionChange>,
) -> Result<Json<AdmissionDoc>> {
    let sale_id = SaleId::parse(sale_id)
        .map_err(|_| Problem::not_found("sale_not_found", "no sale with this id"))?;
    captcha_possible(&state, change.captcha)?;
    let doc = update_admission(
        &state.pool,
        &state.redis,
        &actor(&headers),
        &sale_id,
        change,
    )
    .await?;
    state.sales.reload(&sale_id).await?;
    Ok(Json(doc))
}

/// A sale may ask for a captcha only from a door with a provider.
pub(super) fn captcha_possible(state: &AppState, captcha: Option<bool>) -> Result<()> {
    if captcha == Some(true) && state.captcha.is_none() {
        return Err(Problem::unprocessable(
            "captcha_unavailable",
            "this door has no captcha provider (admission.captcha)",
        )
        .into());
    }
    Ok(())
}

/// Applies an admission change, audited, and tells every door.
pub async fn update_admission(
    pool: &PgPool,
    redis: &Redis,
    actor: &str,
    id: &SaleId,
    change: AdmissionChange,
) -> Result<AdmissionDoc> {
    validate(&change)?;
    let mut tx = pool.begin().await?;
    let old = sales::lock_admission(&mut tx, id)
        .await?
        .ok_or_else(|| Problem::not_found("sale_not_found", "no sale with this id"))?;
    let new = sales::set_admission(&mut tx, id, &change).await?;
    let as_json = |d: &AdmissionDoc| serde_json::to_value(d).unwrap_or_default();
    audit::record(
        &mut tx,
        id.as_str(),
        actor,
        "admission.update",
        Some(as_json(&old)),
        as_json(&new),
    )
    .await?;
    tx.commit().await?;
    super::announce(redis, id).await;
    Ok(new)
}
