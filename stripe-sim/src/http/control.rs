//! The `/_sim` control surface for tests and operators: unauthenticated JSON to add
//! webhook endpoints, read and replace faults, inspect PaymentIntents and events,
//! resend an event, and read totals.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::json_response;
use crate::params::Form;
use crate::{Error, Faults, Result, Sim, WebhookEndpoint, ids};

/// The `/_sim` routes.
pub(crate) fn router(sim: Sim) -> Router {
    Router::new()
        .route("/_sim/webhook_endpoints", post(add_endpoint))
        .route("/_sim/faults", get(read_faults).post(replace_faults))
        .route("/_sim/payment_intents", get(payment_intents))
        .route("/_sim/events/{id}/resend", post(resend))
        .route("/_sim/events/{id}/attempts", get(attempts))
        .route("/_sim/stats", get(stats))
        .layer(map_response(with_request_id))
        .with_state(sim)
}

async fn with_request_id(mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&ids::request_id()) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

fn ok(value: &Value) -> Response {
    json_response(StatusCode::OK, value)
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|err| Error::invalid("body", None, format!("Invalid JSON body: {err}")))
}

async fn add_endpoint(State(sim): State<Sim>, body: Bytes) -> Result<Response> {
    let endpoint: WebhookEndpoint = parse_json(&body)?;
    if !endpoint.url.starts_with("http://") || endpoint.secret.is_empty() {
        let message = "A webhook endpoint needs a plain http:// url and a non-empty secret.";
        return Err(Error::invalid("url", None, message));
    }
    let answer = json!({ "url": endpoint.url });
    sim.add_webhook_endpoint(endpoint);
    Ok(json_response(StatusCode::CREATED, &answer))
}

async fn read_faults(State(sim): State<Sim>) -> Response {
    ok(&json!(sim.faults()))
}

async fn replace_faults(State(sim): State<Sim>, body: Bytes) -> Result<Response> {
    let faults: Faults = parse_json(&body)?;
    if let Some(problem) = faults.problem() {
        return Err(Error::invalid("faults", None, problem));
    }
    sim.set_faults(faults);
    Ok(ok(&json!(sim.faults())))
}

async fn payment_intents(State(sim): State<Sim>, RawQuery(query): RawQuery) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let (key, value) = (
        form.string("metadata_key"),
        form.get("metadata_value").unwrap_or_default(),
    );
    let filter = key.as_deref().map(|key| (key, value));
    let data = sim.state().payment_intents_json(filter);
    ok(
        &json!({ "object": "list", "data": data, "has_more": false, "url": "/_sim/payment_intents" }),
    )
}

async fn resend(State(sim): State<Sim>, Path(id): Path<String>) -> Result<Response> {
    if sim.resend_event(&id) {
        Ok(ok(&json!({ "id": id, "resent": true })))
    } else {
        Err(Error::no_such("event", &id, "id"))
    }
}

async fn attempts(State(sim): State<Sim>, Path(id): Path<String>) -> impl IntoResponse {
    ok(&json!({ "id": id, "attempts": sim.delivery_attempts(&id) }))
}

async fn stats(State(sim): State<Sim>) -> Response {
    ok(&sim.stats())
}
