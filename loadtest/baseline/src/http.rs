//! The baseline's HTTP surface: `POST /checkout` (201 ordered and charged, 402 card
//! declined, 409 already ordered, 410 sold out, 404 unknown sale, 502 Stripe gave no
//! answer), `POST /webhook` (Stripe's events: `payment_intent.succeeded` fulfils the
//! order, `payment_intent.payment_failed` fails it and gives its units back; signatures
//! checked), `PUT /sales/{id}` `{"stock","price"?,"currency"?}` to create or reset a sale,
//! `GET /sales/{id}` for the no-oversell check, and `GET /healthz`.
//!
//! Errors are `application/problem+json`; a database failure is logged once and
//! answered 503 (pool exhausted) or 500, without internals.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flashgate_webhook::signature::Verifier;
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use crate::db::{self, Reservation};
use crate::stripe::{Charge, Stripe};

/// What every handler needs.
#[derive(Clone)]
pub(crate) struct AppState {
    pub pool: PgPool,
    pub stripe: Stripe,
    /// Checks Stripe's signatures with the endpoint's secret (Stripe's scheme, as
    /// flashgate's receiver checks it; 300 s tolerance, Stripe's libraries' default).
    pub webhooks: Arc<Verifier>,
}

/// The routes.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/checkout", post(checkout))
        .route("/webhook", post(webhook))
        .route("/sales/{id}", get(get_sale).put(put_sale))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .with_state(state)
}

/// `POST /checkout` body.
#[derive(Debug, Deserialize)]
struct CheckoutRequest {
    sale_id: String,
    customer_id: String,
    #[serde(default = "one")]
    quantity: i32,
    /// The shopper's saved card (Stripe's test PaymentMethods).
    #[serde(default = "visa")]
    payment_method: String,
}

fn one() -> i32 {
    1
}

fn visa() -> String {
    "pm_card_visa".into()
}

/// `PUT /sales/{id}` body.
#[derive(Debug, Deserialize)]
struct SaleRequest {
    stock: i32,
    #[serde(default = "price")]
    price: i64,
    #[serde(default = "eur")]
    currency: String,
}

fn price() -> i64 {
    4900
}

fn eur() -> String {
    "eur".into()
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

async fn checkout(State(state): State<AppState>, Json(body): Json<CheckoutRequest>) -> Response {
    if !(1..=100).contains(&body.quantity) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
            "quantity must be 1..=100",
        );
    }
    let reserved = db::reserve(&state.pool, &body.sale_id, &body.customer_id, body.quantity).await;
    let (order, amount, currency) = match reserved {
        Ok(Reservation::Ordered {
            id,
            amount,
            currency,
        }) => (id, amount, currency),
        Ok(Reservation::AlreadyOrdered) => {
            return problem(
                StatusCode::CONFLICT,
                "already_ordered",
                "this customer already ordered in this sale",
            );
        }
        Ok(Reservation::SoldOut) => {
            return problem(StatusCode::GONE, "sold_out", "every unit is sold");
        }
        Ok(Reservation::UnknownSale) => {
            return problem(
                StatusCode::NOT_FOUND,
                "sale_not_found",
                "no sale with this id",
            );
        }
        Err(e) => return database_failure(&e),
    };
    // The textbook's synchronous payment, inside the shopper's request.
    match state
        .stripe
        .charge(order, amount, &currency, &body.payment_method)
        .await
    {
        Charge::Created { id, status } => match db::store_intent(&state.pool, order, &id).await {
            Ok(()) => (
                StatusCode::CREATED,
                Json(json!({ "order_id": order, "payment_intent": id, "status": status })),
            )
                .into_response(),
            Err(e) => database_failure(&e),
        },
        Charge::Declined(code) => match db::mark_failed(&state.pool, order).await {
            Ok(_) => problem(
                StatusCode::PAYMENT_REQUIRED,
                "payment_failed",
                &format!("the card was declined ({code})"),
            ),
            Err(e) => database_failure(&e),
        },
        // The order keeps its units, waiting for a webhook that may never come: the
        // textbook's gap, which flashgate's workers and reconciliation close.
        Charge::Unavailable(why) => {
            eprintln!("baseline: order {order}: no answer from Stripe: {why}");
            problem(
                StatusCode::BAD_GATEWAY,
                "payment_unavailable",
                "the payment provider did not answer",
            )
        }
    }
}

/// The part of an event the baseline reads.
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: EventObject,
}

#[derive(Debug, Deserialize)]
struct EventObject {
    id: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if state.webhooks.verify(signature, &body, now).is_err() {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_signature",
            "the Stripe-Signature header does not sign this body",
        );
    }
    let Ok(event) = serde_json::from_slice::<Event>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "malformed_event",
            "the body is not a Stripe event",
        );
    };
    let order = event
        .data
        .object
        .metadata
        .get("baseline_order")
        .and_then(|o| o.parse::<i64>().ok());
    let applied = match (event.kind.as_str(), order) {
        ("payment_intent.succeeded", Some(order)) => {
            db::mark_paid(&state.pool, order, &event.data.object.id).await
        }
        ("payment_intent.payment_failed", Some(order)) => db::mark_failed(&state.pool, order).await,
        _ => Ok(false),
    };
    match applied {
        Ok(applied) => Json(json!({ "received": true, "applied": applied })).into_response(),
        Err(e) => database_failure(&e),
    }
}

async fn put_sale(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<SaleRequest>,
) -> Response {
    if body.stock < 0 || body.price <= 0 {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_sale",
            "stock must be >= 0 and price > 0",
        );
    }
    match db::put_sale(&state.pool, &id, body.stock, body.price, &body.currency).await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "sale_id": id, "stock": body.stock, "price": body.price })),
        )
            .into_response(),
        Err(e) => database_failure(&e),
    }
}

async fn get_sale(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match db::sale_state(&state.pool, &id).await {
        Ok(Some(state)) => Json(state).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            "sale_not_found",
            "no sale with this id",
        ),
        Err(e) => database_failure(&e),
    }
}
