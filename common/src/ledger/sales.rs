//! A sale's own row: created and changed by the operator (stock, price, hold, admission
//! settings). The stock may change under a live sale; the table's check keeps it at or
//! above what is held and sold (I1), and the caller turns that refusal into a `409`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use super::branding::Branding;
use super::controller::ControllerSettings;
use crate::domain::{Currency, SaleId, SaleTerms, Sku};

/// The body of a sale upsert.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleInput {
    /// The product sold (must exist in the catalog).
    #[schema(value_type = String, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    pub sku: Sku,
    /// Units for sale.
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub stock: i64,
    /// Unit price in minor units.
    #[schema(minimum = 1, maximum = 100_000_000_000_i64)]
    pub price: i64,
    /// ISO 4217 currency (case-insensitive).
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// Opening time; default now (on create) or unchanged.
    pub starts_at: Option<DateTime<Utc>>,
    /// How long a reservation holds units; default 600 (on create) or unchanged.
    #[schema(minimum = 5, maximum = 86_400)]
    pub hold_seconds: Option<i32>,
    /// Admission rate.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_per_second: i32,
    /// Admission burst.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub burst: i32,
    /// Start paused; default false (on create) or unchanged.
    pub paused: Option<bool>,
    /// Keep a wait-list past the oversubscription limit, so units that come back reach
    /// the shoppers turned away meanwhile; default true (on create) or unchanged.
    pub waitlist: Option<bool>,
    /// Most tickets on the wait-list. Default: as many as the units that could still come
    /// back (available and held) could serve, times the oversubscription factor.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100_000_000)]
    pub waitlist_limit: Option<i32>,
    /// Most units one customer buys in the sale: the quantity of their one ticket.
    /// Default: the door's `admission.max_quantity` (on create) or unchanged.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub max_quantity_per_customer: Option<i32>,
    /// When shoppers may start joining the pre-queue of a sale that has not opened yet
    /// (at or before `starts_at`). Default: from the sale's creation (on create) or
    /// unchanged.
    #[serde(default)]
    pub prequeue_opens_at: Option<DateTime<Utc>>,
    /// Proof of work asked of each arrival, in leading zero bits of SHA-256 (0: none).
    /// Default: 0 (on create) or unchanged.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 28)]
    pub pow_difficulty: Option<i32>,
    /// Each arrival solves a captcha (the door's `admission.captcha` provider).
    /// Default: false (on create) or unchanged.
    #[serde(default)]
    pub captcha: Option<bool>,
    /// How the sale's waiting room looks (replaced whole; `{}` for the default look).
    /// Default: the default look (on create) or unchanged.
    #[serde(default, deserialize_with = "super::object_or_null")]
    pub branding: Option<Branding>,
}

/// A sale as stored, and as every role reads it: what it sells and at what price, how the
/// door admits to it, and its stock terms. Every read selects [`COLUMNS`]; serialized, it
/// is the sale document of the admin API (flat, with `available`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sale {
    /// The sale.
    pub id: SaleId,
    /// The product sold.
    pub sku: Sku,
    /// Unit price, minor units.
    pub price: i64,
    /// Currency.
    pub currency: Currency,
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
    /// Most units one customer buys (`None`: the door's `admission.max_quantity`).
    pub max_quantity_per_customer: Option<i32>,
    /// When the pre-queue opens (`None`: from the sale's creation).
    pub prequeue_opens_at: Option<DateTime<Utc>>,
    /// Proof of work asked of each arrival (leading zero bits; 0: none).
    pub pow_difficulty: i32,
    /// Each arrival solves a captcha.
    pub captcha: bool,
    /// How its waiting room looks.
    pub branding: Branding,
    /// The pre-queue's draw as far as it is public.
    pub fairness: Fairness,
    /// Stock terms as committed.
    pub terms: SaleTerms,
}

/// The public side of a sale's pre-queue draw (see [`crate::fairness`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fairness {
    /// SHA-256 of the seed (`None` for sales from before the pre-queue).
    pub commitment: Option<Vec<u8>>,
    /// The seed: read only once the draw revealed it.
    pub seed: Option<Vec<u8>>,
    /// When the pre-queue was drawn; until then arrivals join the pre-queue.
    pub drawn_at: Option<DateTime<Utc>>,
    /// SHA-256 of the sealed list of pre-queued tickets.
    pub digest: Option<Vec<u8>>,
    /// Tickets the draw numbered (1 to this); later claims are numbered after them.
    pub prequeued: i64,
}

/// The fairness part of a sale document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FairnessView {
    /// SHA-256 of the seed the pre-queue is drawn with, hex (public from creation).
    pub commitment: Option<String>,
    /// The seed, hex, once the pre-queue is drawn; `null` before.
    pub seed: Option<String>,
    /// SHA-256 of the sealed list of pre-queued tickets, hex, once drawn.
    pub digest: Option<String>,
    /// When the pre-queue was drawn.
    pub drawn_at: Option<DateTime<Utc>>,
    /// Tickets numbered by the draw.
    pub prequeued: i64,
}

impl Fairness {
    /// What shoppers and operators are shown.
    pub fn view(&self) -> FairnessView {
        FairnessView {
            commitment: self.commitment.as_deref().map(hex::encode),
            seed: self.seed.as_deref().map(hex::encode),
            digest: self.digest.as_deref().map(hex::encode),
            drawn_at: self.drawn_at,
            prequeued: self.prequeued,
        }
    }
}

/// The columns every read of a sale selects (`Sale`'s `FromRow` reads them by name).
pub const COLUMNS: &str = "id, sku, price, currency, starts_at, hold_seconds, rate_per_second, \
                           burst, paused, waitlist, waitlist_limit, max_quantity_per_customer, version, \
                           stock, reserved, sold, decided, waitlisted, prequeue_opens_at, \
                           fairness_commitment, prequeue_digest, drawn_at, prequeued, pow_difficulty, captcha, branding, \
                           CASE WHEN drawn_at IS NULL THEN NULL ELSE fairness_seed END AS revealed_seed";

impl<'r> sqlx::FromRow<'r, PgRow> for Sale {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            sku: row.try_get("sku")?,
            price: row.try_get("price")?,
            currency: row.try_get("currency")?,
            starts_at: row.try_get("starts_at")?,
            hold_seconds: row.try_get("hold_seconds")?,
            rate_per_second: row.try_get("rate_per_second")?,
            burst: row.try_get("burst")?,
            paused: row.try_get("paused")?,
            waitlist: row.try_get("waitlist")?,
            waitlist_limit: row.try_get("waitlist_limit")?,
            max_quantity_per_customer: row.try_get("max_quantity_per_customer")?,
            prequeue_opens_at: row.try_get("prequeue_opens_at")?,
            pow_difficulty: row.try_get("pow_difficulty")?,
            captcha: row.try_get("captcha")?,
            branding: row
                .try_get::<sqlx::types::Json<Branding>, _>("branding")
                .map(|json| json.0)
                .unwrap_or_default(),
            fairness: Fairness {
                commitment: row.try_get("fairness_commitment")?,
                seed: row.try_get("revealed_seed")?,
                drawn_at: row.try_get("drawn_at")?,
                digest: row.try_get("prequeue_digest")?,
                prequeued: i64::from(row.try_get::<i32, _>("prequeued")?),
            },
            terms: SaleTerms {
                version: row.try_get("version")?,
                stock: i64::from(row.try_get::<i32, _>("stock")?),
                reserved: i64::from(row.try_get::<i32, _>("reserved")?),
                sold: i64::from(row.try_get::<i32, _>("sold")?),
                decided: row.try_get("decided")?,
                waitlisted: i64::from(row.try_get::<i32, _>("waitlisted")?),
            },
        })
    }
}

/// The admin API's sale document: the terms flat beside the settings.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Sale)]
pub struct SaleDocument<'a> {
    /// The sale.
    #[schema(value_type = String)]
    sale_id: &'a SaleId,
    /// The product sold.
    #[schema(value_type = String)]
    sku: &'a Sku,
    /// Units for sale.
    stock: i64,
    /// Units held by reservations not yet paid.
    reserved: i64,
    /// Units paid for.
    sold: i64,
    /// Units neither held nor sold.
    available: i64,
    /// Tickets decided so far.
    decided: i64,
    /// Unit price, minor units.
    price: i64,
    /// ISO 4217 currency, lower case.
    #[schema(value_type = String)]
    currency: &'a Currency,
    /// Opening time.
    starts_at: DateTime<Utc>,
    /// How long a reservation holds units.
    hold_seconds: i32,
    /// Admission rate.
    rate_per_second: i32,
    /// Admission burst.
    burst: i32,
    /// Paused by an operator.
    paused: bool,
    /// Wait-list on.
    waitlist: bool,
    /// Tickets on the wait-list.
    waitlisted: i64,
    /// The operator's cap on the wait-list (`null`: derived from the held units).
    waitlist_limit: Option<i32>,
    /// Most units one customer buys (`null`: the door's `admission.max_quantity`).
    max_quantity_per_customer: Option<i32>,
    /// When the pre-queue opens (`null`: from the sale's creation).
    prequeue_opens_at: Option<DateTime<Utc>>,
    /// Proof of work asked of each arrival (leading zero bits; 0: none).
    pow_difficulty: i32,
    /// Each arrival solves a captcha.
    captcha: bool,
    /// How its waiting room looks.
    branding: &'a Branding,
    /// The pre-queue's draw: the seed's commitment, and after the opening the seed.
    fairness: FairnessView,
    /// Version of the stock terms.
    version: i64,
}

impl Sale {
    /// Whether arrivals at `now` join the pre-queue: the sale has not been drawn (it has
    /// not opened, or opened a moment ago and the draw is under way) and the pre-queue
    /// window has opened.
    pub fn prequeue_open(&self, now: DateTime<Utc>) -> bool {
        self.fairness.drawn_at.is_none() && self.prequeue_opens_at.is_none_or(|at| at <= now)
    }

    /// The proof-of-work difficulty in bits (0: none).
    pub fn pow_difficulty(&self) -> u32 {
        self.pow_difficulty.clamp(0, crate::pow::MAX_BITS as i32) as u32
    }

    /// Most units one customer buys here, given the door's own most per ticket.
    pub fn most_per_customer(&self, door_most: i32) -> i32 {
        self.max_quantity_per_customer
            .map_or(door_most, |most| most.min(door_most))
    }
}

impl Serialize for Sale {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = &self.terms;
        SaleDocument {
            sale_id: &self.id,
            sku: &self.sku,
            stock: t.stock,
            reserved: t.reserved,
            sold: t.sold,
            available: t.available(),
            decided: t.decided,
            price: self.price,
            currency: &self.currency,
            starts_at: self.starts_at,
            hold_seconds: self.hold_seconds,
            rate_per_second: self.rate_per_second,
            burst: self.burst,
            paused: self.paused,
            waitlist: self.waitlist,
            waitlisted: t.waitlisted,
            waitlist_limit: self.waitlist_limit,
            max_quantity_per_customer: self.max_quantity_per_customer,
            prequeue_opens_at: self.prequeue_opens_at,
            pow_difficulty: self.pow_difficulty,
            captcha: self.captcha,
            branding: &self.branding,
            fairness: self.fairness.view(),
            version: t.version,
        }
        .serialize(serializer)
    }
}

/// Reads the sales of `ids` (those that exist).
pub async fn load(db: &PgPool, ids: &[SaleId]) -> sqlx::Result<Vec<Sale>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sales WHERE id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(db)
    .await
}

/// The newest sales first (by opening time), at most `limit`.
pub async fn list(db: &PgPool, limit: i64) -> sqlx::Result<Vec<Sale>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sales ORDER BY starts_at DESC, id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await
}

/// What to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[schema(min_properties = 1)]
#[serde(deny_unknown_fields)]
pub struct AdmissionChange {
    /// New admission rate.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_per_second: Option<i32>,
    /// New burst.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub burst: Option<i32>,
    /// Pause (true) or resume (false).
    pub paused: Option<bool>,
    /// Turn the wait-list on or off.
    pub waitlist: Option<bool>,
    /// New proof-of-work difficulty (leading zero bits; 0: off). Challenges handed out
    /// at a lower difficulty are refused from then on.
    #[schema(minimum = 0, maximum = 28)]
    pub pow_difficulty: Option<i32>,
    /// Ask each arrival for a captcha (true) or not (false).
    pub captcha: Option<bool>,
    /// The closed-loop admission controller: its bounds and targets (on), or `null` (off:
    /// the rate stays where it is).
    #[serde(default, deserialize_with = "super::controller::change")]
    #[schema(value_type = Option<ControllerSettings>)]
    pub controller: Option<Option<ControllerSettings>>,
}

/// A sale's admission settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    /// Proof-of-work difficulty (leading zero bits; 0: off).
    pub pow_difficulty: i32,
    /// Each arrival solves a captcha.
    pub captcha: bool,
    /// The closed-loop admission controller's bounds (`null`: off).
    #[schema(value_type = Option<ControllerSettings>)]
    pub controller: Option<sqlx::types::Json<ControllerSettings>>,
}

/// Locks and reads a sale.
pub async fn lock_sale(tx: &mut PgConnection, id: &SaleId) -> sqlx::Result<Option<Sale>> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sales WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
}

/// Creates or updates a sale from `input` (`currency` is its validated currency).
pub async fn write_sale(
    tx: &mut PgConnection,
    id: &SaleId,
    input: &SaleInput,
    currency: &Currency,
) -> sqlx::Result<Sale> {
    // Kept only if this creates the sale: a sale's seed never changes.
    let seed = crate::fairness::new_seed();
    sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO sales (id, sku, stock, price, currency, starts_at, hold_seconds, rate_per_second, burst,
                            paused, waitlist, waitlist_limit, max_quantity_per_customer, prequeue_opens_at,
                            pow_difficulty, captcha, fairness_seed, fairness_commitment, drawn_at, prequeue_digest,
                            branding)
         VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()), COALESCE($7, 600), $8, $9, COALESCE($10, false),
                 COALESCE($11, true), $12, $13, $14, COALESCE($18, 0), COALESCE($19, false), $15, $16,
                 CASE WHEN COALESCE($6, now()) <= now() THEN now() END,
                 CASE WHEN COALESCE($6, now()) <= now() THEN $17::bytea END, COALESCE($20, '{{}}'::jsonb))
         ON CONFLICT (id) DO UPDATE SET
             sku = EXCLUDED.sku, stock = EXCLUDED.stock, price = EXCLUDED.price, currency = EXCLUDED.currency,
             starts_at = COALESCE($6, sales.starts_at), hold_seconds = COALESCE($7, sales.hold_seconds),
             rate_per_second = EXCLUDED.rate_per_second, burst = EXCLUDED.burst,
             paused = COALESCE($10, sales.paused), waitlist = COALESCE($11, sales.waitlist),
             waitlist_limit = COALESCE($12, sales.waitlist_limit),
             max_quantity_per_customer = COALESCE($13, sales.max_quantity_per_customer),
             prequeue_opens_at = COALESCE($14, sales.prequeue_opens_at),
             pow_difficulty = COALESCE($18, sales.pow_difficulty),
             captcha = COALESCE($19, sales.captcha),
             branding = COALESCE($20, sales.branding),
             version = sales.version + 1, updated_at = now()
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&input.sku)
    .bind(input.stock as i32)
    .bind(input.price)
    .bind(currency)
    .bind(input.starts_at)
    .bind(input.hold_seconds)
    .bind(input.rate_per_second)
    .bind(input.burst)
    .bind(input.paused)
    .bind(input.waitlist)
    .bind(input.waitlist_limit)
    .bind(input.max_quantity_per_customer)
    .bind(input.prequeue_opens_at)
    .bind(seed.as_slice())
    .bind(crate::fairness::commitment(&seed).as_slice())
    .bind(crate::fairness::digest(&[]).as_slice())
    .bind(input.pow_difficulty)
    .bind(input.captcha)
    .bind(input.branding.clone().map(sqlx::types::Json))
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
        r#"SELECT id AS sale_id, rate_per_second, burst, paused, waitlist, pow_difficulty, captcha,
                  controller AS "controller: sqlx::types::Json<ControllerSettings>"
           FROM sales WHERE id = $1 FOR UPDATE"#,
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
               paused = COALESCE($4, paused), waitlist = COALESCE($5, waitlist),
               pow_difficulty = COALESCE($6, pow_difficulty), captcha = COALESCE($7, captcha),
               controller = CASE WHEN $8 THEN $9 ELSE controller END,
               updated_at = now()
           WHERE id = $1
           RETURNING id AS sale_id, rate_per_second, burst, paused, waitlist, pow_difficulty, captcha,
                     controller AS "controller: sqlx::types::Json<ControllerSettings>""#,
        id.as_str(),
        change.rate_per_second,
        change.burst,
        change.paused,
        change.waitlist,
        change.pow_difficulty,
        change.captcha,
        change.controller.is_some(),
        change
            .controller
            .clone()
            .flatten()
            .map(sqlx::types::Json) as Option<sqlx::types::Json<ControllerSettings>>
    )
    .fetch_one(&mut *tx)
    .await
}
