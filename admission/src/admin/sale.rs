//! `PUT /admin/v1/sales/{sale_id}`: create or update a sale.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use flashgate_common::db::violated_constraint;
use flashgate_common::domain::{Currency, SaleId, SaleTerms, Sku};
use flashgate_common::http::{ApiJson, ApiPath, Problem};
use flashgate_common::live::Redis;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{actor, audit};
use crate::Result;
use crate::state::AppState;

/// The body of a sale upsert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleInput {
    /// The product sold (must exist in the catalog).
    pub sku: Sku,
    /// Units for sale.
    pub stock: i64,
    /// Unit price in minor units.
    pub price: i64,
    /// ISO 4217 currency (case-insensitive).
    pub currency: String,
    /// Opening time; default now (on create) or unchanged.
    pub starts_at: Option<DateTime<Utc>>,
    /// How long a reservation holds units; default 600 (on create) or unchanged.
    pub hold_seconds: Option<i32>,
    /// Admission rate.
    pub rate_per_second: i32,
    /// Admission burst.
    pub burst: i32,
    /// Start paused; default false (on create) or unchanged.
    pub paused: Option<bool>,
    /// Keep a wait-list past the oversubscription limit, so units that come back reach
    /// the shoppers turned away meanwhile; default true (on create) or unchanged.
    pub waitlist: Option<bool>,
    /// Most tickets on the wait-list. Default: as many as the units that could still come
    /// back (available and held) could serve, times the oversubscription factor.
    #[serde(default)]
    pub waitlist_limit: Option<i32>,
}

/// A sale as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SaleDoc {
    /// Sale id.
    #[serde(rename = "sale_id")]
    pub id: String,
    /// Product.
    pub sku: String,
    /// Units for sale.
    pub stock: i32,
    /// Units held.
    pub reserved: i32,
    /// Units sold.
    pub sold: i32,
    /// Units nobody holds.
    pub available: i32,
    /// Tickets decided.
    pub decided: i64,
    /// Unit price.
    pub price: i64,
    /// Currency.
    pub currency: String,
    /// Opening time.
    pub starts_at: DateTime<Utc>,
    /// Hold length.
    pub hold_seconds: i32,
    /// Admission rate.
    pub rate_per_second: i32,
    /// Admission burst.
    pub burst: i32,
    /// Paused.
    pub paused: bool,
    /// Wait-list on.
    pub waitlist: bool,
    /// Tickets on the wait-list now.
    #[serde(default)]
    pub waitlisted: i32,
    /// The operator's cap on the wait-list, if any.
    #[serde(default)]
    pub waitlist_limit: Option<i32>,
    /// Version of the stock terms.
    pub version: i64,
}

impl SaleDoc {
    fn terms(&self) -> SaleTerms {
        SaleTerms {
            version: self.version,
            stock: i64::from(self.stock),
            reserved: i64::from(self.reserved),
            sold: i64::from(self.sold),
            decided: self.decided,
            waitlisted: i64::from(self.waitlisted),
        }
    }
}

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

impl SaleInput {
    fn validated_currency(&self) -> Result<Currency> {
        within(self.stock, 0, 10_000_000, "stock")?;
        within(self.price, 1, 100_000_000_000, "price")?;
        within(
            i64::from(self.rate_per_second),
            1,
            1_000_000,
            "rate_per_second",
        )?;
        within(i64::from(self.burst), 1, 1_000_000, "burst")?;
        if let Some(limit) = self.waitlist_limit {
            within(i64::from(limit), 1, 100_000_000, "waitlist_limit")?;
        }
        if let Some(hold) = self.hold_seconds {
            within(i64::from(hold), 5, 86_400, "hold_seconds")?;
        }
        Currency::parse(self.currency.to_ascii_lowercase())
            .map_err(|e| Problem::unprocessable("invalid_sale", e.to_string()).into())
    }
}

/// The handler: 201 when created, 200 when updated.
pub async fn put_sale(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<SaleInput>,
) -> Result<(StatusCode, Json<SaleDoc>)> {
    let sale_id = SaleId::parse(sale_id)
        .map_err(|e| Problem::unprocessable("invalid_sale_id", e.to_string()))?;
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
) -> Result<(bool, SaleDoc)> {
    let currency = input.validated_currency()?;
    let mut tx = pool.begin().await?;
    let old = select_for_update(&mut tx, id).await?;
    if old
        .as_ref()
        .is_some_and(|o| o.sku != input.sku.as_str() && o.decided > 0)
    {
        let why = "the product of a sale with tickets cannot change";
        return Err(Problem::new(StatusCode::CONFLICT, "sku_locked", why).into());
    }
    let new = write(&mut tx, id, &input, &currency).await?;
    let as_json = |d: &SaleDoc| serde_json::to_value(d).unwrap_or_default();
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

async fn write(
    tx: &mut sqlx::PgConnection,
    id: &SaleId,
    input: &SaleInput,
    currency: &Currency,
) -> Result<SaleDoc> {
    sqlx::query_as!(
        SaleDoc,
        r#"INSERT INTO sales (id, sku, stock, price, currency, starts_at, hold_seconds, rate_per_second, burst, paused, waitlist,
                              waitlist_limit)
           VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()), COALESCE($7, 600), $8, $9, COALESCE($10, false), COALESCE($11, true),
                   $12)
           ON CONFLICT (id) DO UPDATE SET
               sku = EXCLUDED.sku, stock = EXCLUDED.stock, price = EXCLUDED.price, currency = EXCLUDED.currency,
               starts_at = COALESCE($6, sales.starts_at), hold_seconds = COALESCE($7, sales.hold_seconds),
               rate_per_second = EXCLUDED.rate_per_second, burst = EXCLUDED.burst,
               paused = COALESCE($10, sales.paused), waitlist = COALESCE($11, sales.waitlist),
               waitlist_limit = COALESCE($12, sales.waitlist_limit),
               version = sales.version + 1, updated_at = now()
           RETURNING id, sku, stock, reserved, sold, stock - reserved - sold AS "available!", decided, price, currency,
                     starts_at, hold_seconds, rate_per_second, burst, paused, waitlist, waitlisted, waitlist_limit, version"#,
        id.as_str(),
        input.sku.as_str(),
        input.stock as i32,
        input.price,
        currency.as_str(),
        input.starts_at,
        input.hold_seconds,
        input.rate_per_second,
        input.burst,
        input.paused,
        input.waitlist,
        input.waitlist_limit
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(upsert_problem)
}

/// After the commit: the new terms for the read path, the change for every door, and
/// the product's new sale for the catalog. Each is healed by a later refresh if lost.
async fn publish(redis: &Redis, id: &SaleId, sku: &Sku, new: &SaleDoc) {
    if let Err(e) = redis.write_terms(id, &new.terms()).await {
        tracing::warn!(error = ?e, sale = %id, "sale terms not published to redis; the refresh will");
    }
    super::announce(redis, id).await;
    if let Err(e) = redis.announce_product_change(sku).await {
        tracing::warn!(error = ?e, sale = %id, "catalog not told about the sale; its cache expires on its own");
    }
}

async fn select_for_update(
    tx: &mut sqlx::PgConnection,
    id: &SaleId,
) -> sqlx::Result<Option<SaleDoc>> {
    sqlx::query_as!(
        SaleDoc,
        r#"SELECT id, sku, stock, reserved, sold, stock - reserved - sold AS "available!", decided, price, currency,
                  starts_at, hold_seconds, rate_per_second, burst, paused, waitlist, waitlisted, waitlist_limit, version
           FROM sales WHERE id = $1 FOR UPDATE"#,
        id.as_str()
    )
    .fetch_optional(&mut *tx)
    .await
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
