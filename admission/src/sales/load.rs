//! Reading sale settings from PostgreSQL.

use chrono::{DateTime, Utc};
use flashgate_common::domain::{SaleId, SaleTerms};
use sqlx::PgPool;

/// A sale's settings and committed terms.
#[derive(Debug, Clone, PartialEq)]
pub struct SaleSettings {
    /// The sale.
    pub id: SaleId,
    /// The product sold.
    pub sku: String,
    /// Unit price, minor units.
    pub price: i64,
    /// Currency.
    pub currency: String,
    /// Opening time.
    pub starts_at: DateTime<Utc>,
    /// How long a reservation holds units.
    pub hold_seconds: i32,
    /// Admission rate.
    pub rate_per_second: i32,
    /// Admission burst.
    pub burst: i32,
    /// Paused by an operator.
    pub paused: bool,
    /// Arrivals past the oversubscription limit are queued (wait-listed), not refused.
    pub waitlist: bool,
    /// The operator's cap on the wait-list (`None`: derived from the held units).
    pub waitlist_limit: Option<i32>,
    /// Stock terms as committed.
    pub terms: SaleTerms,
}

/// Loads the settings of `ids`.
pub(super) async fn load(pool: &PgPool, ids: &[String]) -> sqlx::Result<Vec<SaleSettings>> {
    let rows = sqlx::query!(
        r#"SELECT id AS "id: SaleId", sku, price, currency, starts_at, hold_seconds, rate_per_second, burst,
                  paused, waitlist, waitlist_limit, version, stock, reserved, sold, decided, waitlisted
           FROM sales WHERE id = ANY($1)"#,
        ids
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SaleSettings {
            id: r.id,
            sku: r.sku,
            price: r.price,
            currency: r.currency,
            starts_at: r.starts_at,
            hold_seconds: r.hold_seconds,
            rate_per_second: r.rate_per_second,
            burst: r.burst,
            paused: r.paused,
            waitlist: r.waitlist,
            waitlist_limit: r.waitlist_limit,
            terms: flashgate_common::sale_terms!(r),
        })
        .collect())
}
