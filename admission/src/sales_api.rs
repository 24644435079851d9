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
#[derive(Debug, Serialize)]
pub(crate) struct SaleView {
    sale_id: SaleId,
    sku: Sku,
    status: &'static str,
    price: i64,
    currency: Currency,
    remaining: i64,
    queued: i64,
    starts_at: String,
}

/// The handler.
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
    }))
}
