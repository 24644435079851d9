//! `GET /v1/sales/{sale_id}`: the sale as shoppers see it, from memory.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use flashgate_common::domain::{Currency, SaleId, Sku};
use flashgate_common::fairness::FairnessDocument;
use flashgate_common::http::{ApiPath, Problem};
use flashgate_common::ledger::prequeue;
use flashgate_common::ledger::sales::FairnessView;
use serde::Serialize;

use crate::Result;
use crate::state::AppState;

/// The public view of a sale: what a shopper may see of a `Sale`, and its live state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = PublicSale)]
pub(crate) struct SaleView {
    /// The sale.
    #[schema(value_type = String)]
    sale_id: SaleId,
    /// The product sold.
    #[schema(value_type = String)]
    sku: Sku,
    /// `scheduled`, `open`, `paused` or `sold_out`.
    status: &'static str,
    /// Unit price, minor units.
    price: i64,
    /// ISO 4217 currency, lower case.
    #[schema(value_type = String)]
    currency: Currency,
    /// Units not yet claimed.
    remaining: i64,
    /// Tickets the broker confirmed that no worker decided yet.
    queued: i64,
    /// Opening time (RFC 3339).
    starts_at: String,
    /// Most units one customer buys (one ticket per customer, this its largest quantity).
    max_quantity_per_customer: i32,
    /// Arrivals now join the pre-queue: the sale has not opened (or opened a moment ago
    /// and its pre-queue is being drawn), and the pre-queue window is open.
    prequeue_open: bool,
    /// When the pre-queue opens (`null`: it is open from the sale's creation).
    prequeue_opens_at: Option<String>,
    /// The pre-queue's draw: the commitment to the seed from the start, the seed and the
    /// sealed list's digest once drawn (the whole list at `/v1/sales/{sale_id}/fairness`).
    fairness: FairnessView,
}

/// The sale named in a shopper's path, or `404 sale_not_found`.
pub(crate) async fn known_sale(
    state: &AppState,
    raw: String,
) -> Result<std::sync::Arc<crate::sales::SaleHandle>> {
    let not_found = || Problem::not_found("sale_not_found", "no sale with this id");
    let sale_id = SaleId::parse(raw).map_err(|_| not_found())?;
    Ok(state.sales.get(&sale_id).await?.ok_or_else(not_found)?)
}

/// A sale as shoppers see it: price, state, units left, queue length.
#[utoipa::path(get, path = "/v1/sales/{sale_id}", tag = "shoppers",
    params(("sale_id" = String, Path, description = "The sale")),
    responses(
        (status = 200, description = "The sale", body = SaleView),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn get_sale(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
) -> Result<Json<SaleView>> {
    let sale = known_sale(&state, sale_id).await?;
    let settings = sale.settings();
    let live = sale.live();
    Ok(Json(SaleView {
        sale_id: sale.id(),
        sku: settings.sku.clone(),
        status: sale.state(Utc::now()).as_str(),
        price: settings.price,
        currency: settings.currency.clone(),
        remaining: live.terms.available().max(0),
        queued: live.queued(),
        starts_at: settings.starts_at.to_rfc3339(),
        max_quantity_per_customer: settings.most_per_customer(state.config.admission.max_quantity),
        prequeue_open: !settings.paused && settings.prequeue_open(Utc::now()),
        prequeue_opens_at: settings.prequeue_opens_at.map(|at| at.to_rfc3339()),
        fairness: settings.fairness.view(),
    }))
}

/// The sale's fairness document: before the opening the commitment alone; after it the
/// seed, the sealed list of pre-queued tickets and the order drawn, from which
/// `flashgate verify-fairness` (or anyone) recomputes the order. Immutable once drawn.
#[utoipa::path(get, path = "/v1/sales/{sale_id}/fairness", tag = "shoppers",
    params(("sale_id" = String, Path, description = "The sale")),
    responses(
        (status = 200, description = "The fairness document", body = FairnessDocument),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn get_fairness(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse;
    // Known to the door first, so made-up ids cost no database read.
    let sale_id = known_sale(&state, sale_id).await?.id();
    let not_found = || Problem::not_found("sale_not_found", "no sale with this id");
    let _slot = state
        .db_lookups
        .acquire()
        .await
        .map_err(|_| Problem::internal())?;
    let document = prequeue::document(&state.pool, &sale_id)
        .await?
        .ok_or_else(not_found)?;
    let cache = if document.seed.is_some() {
        "public, max-age=86400, immutable"
    } else {
        "no-cache"
    };
    Ok(([(axum::http::header::CACHE_CONTROL, cache)], Json(document)).into_response())
}
