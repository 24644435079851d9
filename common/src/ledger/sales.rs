//! A sale's own row: created and changed by the operator (stock, price, hold, admission
//! settings). The stock may change under a live sale; the table's check keeps it at or
//! above what is held and sold (I1), and the caller turns that refusal into a `409`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::domain::{Currency, SaleId, SaleTerms, Sku};

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
    /// The stock terms it shows.
    pub fn terms(&self) -> SaleTerms {
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

/// Locks and reads a sale.
pub async fn lock_sale(tx: &mut PgConnection, id: &SaleId) -> sqlx::Result<Option<SaleDoc>> {
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

/// Creates or updates a sale from `input` (`currency` is its validated currency).
pub async fn write_sale(
    tx: &mut PgConnection,
    id: &SaleId,
    input: &SaleInput,
    currency: &Currency,
) -> sqlx::Result<SaleDoc> {
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
}

/// Locks and reads a sale's admission settings.
pub async fn lock_admission(
    tx: &mut PgConnection,
    id: &SaleId,
) -> sqlx::Result<Option<AdmissionDoc>> {
    sqlx::query_as!(
        AdmissionDoc,
        "SELECT id AS sale_id, rate_per_second, burst, paused, waitlist FROM sales WHERE id = $1 FOR UPDATE",
        id.as_str()
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Applies an admission change to a sale that exists.
pub async fn set_admission(
    tx: &mut PgConnection,
    id: &SaleId,
    change: &AdmissionChange,
) -> sqlx::Result<AdmissionDoc> {
    sqlx::query_as!(
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
    .await
}
