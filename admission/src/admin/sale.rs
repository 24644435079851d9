//! `PUT /admin/v1/sales/{sale_id}`: create or update a sale.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use flashgate_common::db::violated_constraint;
use flashgate_common::domain::{Currency, SaleId, Sku};
use flashgate_common::http::{ApiJson, ApiPath, ApiQuery, Problem};
use flashgate_common::ledger::sales::{self, Sale, SaleInput};
use flashgate_common::live::Redis;
use sqlx::PgPool;

use super::{actor, audit};
use crate::Result;
use crate::state::AppState;

fn within(value: i64, min: i64, max: i64, field: &str) -> Result<()> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    Err(Problem::unprocessable(
        "invalid_sale",
        format!("{field} must be between {min} and {max}"),
    )
    .into())
}

/// Checks a sale's numbers are in range; returns its currency, parsed.
fn validate(input: &SaleInput) -> Result<Currency> {
    within(input.stock, 0, 10_000_000, "stock")?;
    within(input.price, 1, 100_000_000_000, "price")?;
    within(
        i64::from(input.rate_per_second),
        1,
        1_000_000,
        "rate_per_second",
    )?;
    within(i64::from(input.burst), 1, 1_000_000, "burst")?;
    if let Some(limit) = input.waitlist_limit {
        within(i64::from(limit), 1, 100_000_000, "waitlist_limit")?;
    }
    if let Some(most) = input.max_quantity_per_customer {
        within(i64::from(most), 1, 100, "max_quantity_per_customer")?;
    }
    if let (Some(opens), Some(starts)) = (input.prequeue_opens_at, input.starts_at)
        && opens > starts
    {
        return Err(Problem::unprocessable(
            "invalid_sale",
            "prequeue_opens_at must not be after starts_at",
        )
        .into());
    }
    if let Some(bits) = input.pow_difficulty {
        within(
            i64::from(bits),
            0,
            i64::from(flashgate_common::pow::MAX_BITS),
            "pow_difficulty",
        )?;
    }
    if let Some(hold) = input.hold_seconds {
        within(i64::from(hold), 5, 86_400, "hold_seconds")?;
    }
    if let Some(problem) = input.branding.as_ref().and_then(|b| b.problem()) {
        return Err(Problem::unprocessable("invalid_sale", problem).into());
    }
    Currency::parse(input.currency.to_ascii_lowercase())
        .map_err(|e| Problem::unprocessable("invalid_sale", e.to_string()).into())
}

/// Creates or updates a sale (audited; every door follows within a second).
#[utoipa::path(put, path = "/admin/v1/sales/{sale_id}", tag = "operators",
    security(("admin_token" = [])),
    params(("sale_id" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", description = "The sale"),
           ("X-Actor" = Option<String>, Header, description = "Who, for the audit log")),
    request_body = SaleInput,
    responses(
        (status = 201, description = "Created", body = flashgate_common::ledger::sales::SaleDocument),
        (status = 200, description = "Updated", body = flashgate_common::ledger::sales::SaleDocument),
        (status = 400, description = "Malformed JSON, query or path", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 409, description = "Stock below what is held and sold, or the sku of a sale that began", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value out of range, an unknown sku or a bad sale id", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn put_sale(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<SaleInput>,
) -> Result<(StatusCode, Json<Sale>)> {
    let sale_id = SaleId::parse(sale_id)
        .map_err(|e| Problem::unprocessable("invalid_sale_id", e.to_string()))?;
    super::admission::captcha_possible(&state, input.captcha)?;
    let (created, doc) =
        upsert_sale(&state.pool, &state.redis, &actor(&headers), &sale_id, input).await?;
    state.sales.reload(&sale_id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(doc)))
}

/// Creates or updates a sale, audited; returns whether it was created.
pub async fn upsert_sale(
    pool: &PgPool,
    redis: &Redis,
    actor: &str,
    id: &SaleId,
    input: SaleInput,
) -> Result<(bool, Sale)> {
    let currency = validate(&input)?;
    let mut tx = pool.begin().await?;
    let old = sales::lock_sale(&mut tx, id).await?;
    if old
        .as_ref()
        .is_some_and(|o| o.sku != input.sku && o.terms.decided > 0)
    {
        let why = "the product of a sale with tickets cannot change";
        return Err(Problem::new(StatusCode::CONFLICT, "sku_locked", why).into());
    }
    let new = sales::write_sale(&mut tx, id, &input, &currency)
        .await
        .map_err(upsert_problem)?;
    let as_json = |d: &Sale| serde_json::to_value(d).unwrap_or_default();
    audit::record(
        &mut tx,
        id.as_str(),
        actor,
        "sale.upsert",
        old.as_ref().map(as_json),
        as_json(&new),
    )
    .await?;
    tx.commit().await?;
    publish(redis, id, &input.sku, &new).await;
    Ok((old.is_none(), new))
}

/// After the commit: the new terms for the read path, the change for every door, and
/// the product's new sale for the catalog. Each is healed by a later refresh if lost.
async fn publish(redis: &Redis, id: &SaleId, sku: &Sku, new: &Sale) {
    if let Err(e) = redis.write_terms(id, &new.terms).await {
        tracing::warn!(error = ?e, sale = %id, "sale terms not published to redis; the refresh will");
    }
    super::announce(redis, id).await;
    if let Err(e) = redis.announce_product_change(sku).await {
        tracing::warn!(error = ?e, sale = %id, "catalog not told about the sale; its cache expires on its own");
    }
}

fn upsert_problem(error: sqlx::Error) -> crate::Error {
    match violated_constraint(&error) {
        Some("sales_no_oversell") => Problem::new(
            StatusCode::CONFLICT,
            "stock_below_committed",
            "stock cannot go below the units already reserved or sold",
        )
        .into(),
        Some("sales_sku_fkey") => {
            Problem::unprocessable("unknown_sku", "no product with this sku; create it first")
                .into()
        }
        _ => error.into(),
    }
}

/// `GET /admin/v1/sales`: the newest sales first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SaleList {
    /// The sales.
    #[schema(value_type = Vec<flashgate_common::ledger::sales::SaleDocument>)]
    sales: Vec<Sale>,
}

/// `?limit=`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    limit: Option<i64>,
}

/// Most sales one list holds.
const MAX_LIST: i64 = 1000;

/// The newest sales first (by opening time).
#[utoipa::path(get, path = "/admin/v1/sales", tag = "operators",
    security(("admin_token" = [])),
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Most sales (default 100)")),
    responses(
        (status = 200, description = "The sales", body = SaleList),
        (status = 400, description = "Malformed JSON, query or path", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 422, description = "`limit` out of range (`invalid_limit`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_sales(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<SaleList>> {
    let limit = super::page_limit(params.limit, 100, MAX_LIST)?;
    let sales = sales::list(&state.pool, limit).await?;
    Ok(Json(SaleList { sales }))
}
