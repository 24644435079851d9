//! `GET /v1/sales/{sale_id}`: the sale as shoppers see it, from memory.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use flashgate_common::domain::{Currency, SaleId, Sku};
use flashgate_common::http::{ApiPath, Problem};
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
    let not_found = || Problem::not_found("sale_not_found", "no sale with this id");
    let sale_id = SaleId::parse(sale_id).map_err(|_| not_found())?;
    let sale = state.sales.get(&sale_id).await?.ok_or_else(not_found)?;
    let settings = sale.settings();
    let live = sale.live();
    Ok(Json(SaleView {
        sale_id,
        sku: settings.sku.clone(),
        status: sale.state(Utc::now()).as_str(),
        price: settings.price,
        currency: settings.currency.clone(),
        remaining: live.terms.available().max(0),
        queued: live.queued(),
        starts_at: settings.starts_at.to_rfc3339(),
        max_quantity_per_customer: settings.most_per_customer(state.config.admission.max_quantity),
    }))
}
