//! The baseline's HTTP surface: `POST /checkout` (201 ordered, 409 already ordered,
//! 410 sold out, 404 unknown sale), `PUT /sales/{id}` `{"stock"}` to create or reset a
//! sale, `GET /sales/{id}` for the no-oversell check, and `GET /healthz`.
//!
//! Errors are `application/problem+json`; a database failure is logged once and
//! answered 503 (pool exhausted) or 500, without internals.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use crate::db::{self, Checkout};

/// The routes.
pub(crate) fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/checkout", post(checkout))
        .route("/sales/{id}", get(get_sale).put(put_sale))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .with_state(pool)
}

/// `POST /checkout` body.
#[derive(Debug, Deserialize)]
struct CheckoutRequest {
    sale_id: String,
    customer_id: String,
    #[serde(default = "one")]
    quantity: i32,
}

fn one() -> i32 {
    1
}

/// `PUT /sales/{id}` body.
#[derive(Debug, Deserialize)]
struct SaleRequest {
    stock: i32,
}

fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("https://flashgate.dev/problems/{code}"), "title": code,
        "status": status.as_u16(), "detail": detail, "code": code,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

fn database_failure(error: &sqlx::Error) -> Response {
    eprintln!("baseline: database failure: {error}");
    match error {
        sqlx::Error::PoolTimedOut => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "no database connection became free in time",
        ),
        _ => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the checkout failed",
        ),
    }
}

async fn checkout(State(pool): State<PgPool>, Json(body): Json<CheckoutRequest>) -> Response {
    if !(1..=100).contains(&body.quantity) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
            "quantity must be 1..=100",
        );
    }
    match db::checkout(&pool, &body.sale_id, &body.customer_id, body.quantity).await {
        Ok(Checkout::Ordered(id)) => {
            (StatusCode::CREATED, Json(json!({ "order_id": id }))).into_response()
        }
        Ok(Checkout::AlreadyOrdered) => problem(
            StatusCode::CONFLICT,
            "already_ordered",
            "this customer already ordered in this sale",
        ),
        Ok(Checkout::SoldOut) => problem(StatusCode::GONE, "sold_out", "every unit is sold"),
        Ok(Checkout::UnknownSale) => problem(
            StatusCode::NOT_FOUND,
            "sale_not_found",
            "no sale with this id",
        ),
        Err(e) => database_failure(&e),
    }
}

async fn put_sale(
    State(pool): State<PgPool>,
    Path(id): Path<String>,
    Json(body): Json<SaleRequest>,
) -> Response {
    if body.stock < 0 {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_stock",
            "stock must be >= 0",
        );
    }
    match db::put_sale(&pool, &id, body.stock).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "sale_id": id, "stock": body.stock })),
        )
            .into_response(),
        Err(e) => database_failure(&e),
    }
}

async fn get_sale(State(pool): State<PgPool>, Path(id): Path<String>) -> Response {
    match db::sale_state(&pool, &id).await {
        Ok(Some(state)) => Json(state).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "sale_not_found",
            "no sale with this id",
        ),
        Err(e) => database_failure(&e),
    }
}
