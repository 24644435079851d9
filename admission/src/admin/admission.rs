//! `PATCH /admin/v1/sales/{sale_id}/admission`: rate, burst, pause and wait-list, live.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use flashgate_common::domain::SaleId;
use flashgate_common::http::{ApiJson, ApiPath, Problem};
use flashgate_common::live::Redis;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{actor, audit};
use crate::Result;
use crate::state::AppState;

/// What to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionChange {
    /// New admission rate.
    pub rate_per_second: Option<i32>,
    /// New burst.
    pub burst: Option<i32>,
    /// Pause (true) or resume (false).
    pub paused: Option<bool>,
    /// Turn the wait-list on or off.
    pub waitlist: Option<bool>,
}

/// A sale's admission settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AdmissionDoc {
    /// Sale id.
    pub sale_id: String,
    /// Admission rate.
    pub rate_per_second: i32,
    /// Burst.
    pub burst: i32,
    /// Paused.
    pub paused: bool,
    /// Wait-list on.
    pub waitlist: bool,
}

impl AdmissionChange {
    fn validate(&self) -> Result<()> {
        if self.rate_per_second.is_none()
            && self.burst.is_none()
            && self.paused.is_none()
            && self.waitlist.is_none()
        {
            return Err(Problem::unprocessable(
                "empty_change",
                "give at least one of rate_per_second, burst, paused, waitlist",
            )
            .into());
        }
        let in_range = |v: Option<i32>| v.is_none_or(|v| (1..=1_000_000).contains(&v));
        if !in_range(self.rate_per_second) || !in_range(self.burst) {
            return Err(Problem::unprocessable(
                "invalid_admission",
                "rate_per_second and burst must be 1..=1000000",
            )
            .into());
        }
        Ok(())
    }
}

/// The handler.
pub async fn patch_admission(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(change): ApiJson<AdmissionChange>,
) -> Result<Json<AdmissionDoc>> {
    let sale_id = SaleId::parse(sale_id)
        .map_err(|_| Problem::not_found("sale_not_found", "no sale with this id"))?;
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

/// Applies an admission change, audited, and tells every door.
pub async fn update_admission(
    pool: &PgPool,
    redis: &Redis,
    actor: &str,
    id: &SaleId,
    change: AdmissionChange,
) -> Result<AdmissionDoc> {
    change.validate()?;
    let mut tx = pool.begin().await?;
    let old = sqlx::query_as!(
        AdmissionDoc,
        "SELECT id AS sale_id, rate_per_second, burst, paused, waitlist FROM sales WHERE id = $1 FOR UPDATE",
        id.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Problem::not_found("sale_not_found", "no sale with this id"))?;
    let new = sqlx::query_as!(
        AdmissionDoc,
        r#"UPDATE sales SET rate_per_second = COALESCE($2, rate_per_second), burst = COALESCE($3, burst),
               paused = COALESCE($4, paused), waitlist = COALESCE($5, waitlist), updated_at = now()
           WHERE id = $1
           RETURNING id AS sale_id, rate_per_second, burst, paused, waitlist"#,
        id.as_str(),
        change.rate_per_second,
        change.burst,
        change.paused,
        change.waitlist
    )
    .fetch_one(&mut *tx)
    .await?;
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
