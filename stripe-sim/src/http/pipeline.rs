//! The request pipeline every `/v1` call passes through, in Stripe's order:
//! authenticate, inject 429/500 faults (before any effect), apply idempotency, wait the
//! injected latency, execute, save the idempotent result, maybe lose the answer.

use std::time::Duration;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::idempotent::{self, Claim, Early};
use super::{Caller, Executed, auth};
use crate::error::Details;
use crate::faults::RequestFault;
use crate::params::Form;
use crate::{Error, Sim, ids};

/// Largest request body read; far above any form Stripe accepts.
const MAX_BODY: usize = 1024 * 1024;

/// Middleware entry point: the whole pipeline, then `Request-Id` and CORS headers.
pub(crate) async fn run(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let request_id = ids::request_id();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let mut response = if method == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        handle(&sim, request, next, &request_id).await
    };
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, request_id, "stripe-sim answered");
    decorate(&mut response, &request_id);
    response
}

/// Reads the body, admits the request, executes it and settles its idempotency claim.
async fn handle(sim: &Sim, request: Request, next: Next, request_id: &str) -> Response {
    let latency = Duration::from_millis(sim.faults().latency_ms);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        let error = Error::invalid("body", None, "The request body is too large.");
        return answer_after(latency, error.into_response()).await;
    };
    let is_post = parts.method == Method::POST;
    let (caller, claim) = match admit(sim, &parts, &bytes, request_id) {
        Ok(admitted) => admitted,
        Err(early) => return answer_after(latency, early.into_response()).await,
    };
    // The latency falls while the key is claimed, as a slow Stripe would hold it.
    tokio::time::sleep(latency).await;
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if is_post {
        finish(sim, claim, response).await
    } else {
        response
    }
}

/// Authentication, faults and idempotency: the caller and its claim on the key, or
/// the answer to give without executing.
fn admit(
    sim: &Sim,
    parts: &Parts,
    bytes: &Bytes,
    request_id: &str,
) -> Result<(Caller, Option<Claim>), Early> {
    let key_param = key_param(parts, bytes);
    let key = auth::authenticate(&parts.headers, key_param.as_deref())?;
    let is_post = parts.method == Method::POST;
    if let Some(fault) = take_fault(sim, is_post) {
        return Err(fault.into());
    }
    let idempotency_key = if is_post {
        idempotent::key(&parts.headers)?
    } else {
        None
    };
    let host = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let caller = Caller {
        key,
        request_id: request_id.to_owned(),
        idempotency_key,
        host,
    };
    let claim = idempotent::claim(sim, &caller, parts, bytes)?;
    Ok((caller, claim))
}

/// Saves the executed result for its idempotency key, then maybe loses the answer.
async fn finish(sim: &Sim, claim: Option<Claim>, response: Response) -> Response {
    if response.extensions().get::<Executed>().is_none() {
        // Not executed (validation, missing object…): the claim is dropped, nothing saved.
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    if let Some(claim) = claim {
        claim.complete(parts.status.as_u16(), bytes.clone());
    }
    let dropped = {
        let mut state = sim.state();
        let dropped = state.faults.take_drop_response();
        state.counters.dropped_responses += u64::from(dropped);
        dropped
    };
    if dropped {
        return lost_answer();
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn take_fault(sim: &Sim, is_post: bool) -> Option<Error> {
    let mut state = sim.state();
    let fault = state.faults.take_request_fault(is_post)?;
    Some(match fault {
        RequestFault::RateLimit => {
            state.counters.rate_limited += 1;
            let message = "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests.";
            Error::RateLimited(Box::new(Details::new(message).code("rate_limit")))
        }
        RequestFault::ServerError => {
            state.counters.server_errors += 1;
            Error::Api(Box::new(Details::new(
                "An unknown error occurred (injected by stripe-sim).",
            )))
        }
    })
}

/// The 500 a client sees when the answer to a committed request is lost on the way.
fn lost_answer() -> Response {
    let message = "The connection to Stripe was interrupted before the answer was sent (injected by stripe-sim). Retry with the same Idempotency-Key.";
    let mut response = Error::Api(Box::new(Details::new(message))).into_response();
    response
        .headers_mut()
        .insert("stripe-should-retry", HeaderValue::from_static("true"));
    response
}

/// A publishable key sent as Stripe.js does: a `key` form or query parameter.
fn key_param(parts: &Parts, bytes: &Bytes) -> Option<String> {
    let from_body = Form::parse(bytes).string("key");
    from_body
        .or_else(|| Form::parse(parts.uri.query().unwrap_or_default().as_bytes()).string("key"))
}

async fn answer_after(latency: Duration, response: Response) -> Response {
    tokio::time::sleep(latency).await;
    response
}

fn decorate(response: &mut Response, request_id: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("request-id", value);
    }
    // Stripe's API answers browsers from any origin; Stripe.js-style calls need it.
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("authorization, content-type, idempotency-key, stripe-version"),
    );
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
}
