//! The HTTP surface: Stripe's `/v1` API behind the request pipeline (auth, faults,
//! idempotency, latency), and the unauthenticated `/_sim` control surface.

mod auth;
mod browser;
mod control;
mod events;
mod idempotent;
mod lifecycle;
mod payment_intents;
mod pipeline;
mod refunds;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

pub(crate) use auth::ApiKey;

use crate::model::Origin;
use crate::{Error, Result, Sim};

/// Response extension: the endpoint started executing, so an idempotent result is saved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Executed;

/// Who is calling, set by the pipeline on every API request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) key: ApiKey,
    pub(crate) request_id: String,
    pub(crate) idempotency_key: Option<String>,
    /// The request's `Host`, for links in answers.
    pub(crate) host: Option<String>,
}

impl Caller {
    /// Where events caused by this request say they came from.
    pub(crate) fn origin(&self) -> Origin {
        let request_id = Some(self.request_id.clone());
        Origin {
            request_id,
            idempotency_key: self.idempotency_key.clone(),
            host: self.host.clone(),
        }
    }

    /// Refuses publishable keys on endpoints a browser may not call.
    pub(crate) fn require_secret(&self) -> Result<()> {
        if self.key.publishable {
            Err(auth::secret_key_required())
        } else {
            Ok(())
        }
    }
}

/// A successful API answer: 200 with the object, marked as executed.
#[derive(Debug)]
pub(crate) struct Answer(pub(crate) Value);

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = json_response(StatusCode::OK, &self.0);
        response.extensions_mut().insert(Executed);
        response
    }
}

/// `value` as pretty JSON (as Stripe sends it) with `status`.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_string_pretty(value).unwrap_or_default();
    let content_type = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The router for `sim`: `/v1/…` as Stripe, `/_sim/…` for tests and operators.
pub(crate) fn router(sim: Sim) -> Router {
    let api = Router::new()
        .route("/v1/payment_intents", post(payment_intents::create))
        .route("/v1/payment_intents/search", get(payment_intents::search))
        .route("/v1/payment_intents/{id}", get(payment_intents::retrieve))
        .route("/v1/payment_intents/{id}/confirm", post(lifecycle::confirm))
        .route("/v1/payment_intents/{id}/cancel", post(lifecycle::cancel))
        .route("/v1/refunds", post(refunds::create))
        .route("/v1/refunds/{id}", get(refunds::retrieve))
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}", get(events::retrieve))
        .fallback(unrecognized)
        .method_not_allowed_fallback(unrecognized)
        .layer(from_fn_with_state(sim.clone(), pipeline::run))
        .with_state(sim.clone());
    control::router(sim.clone())
        .merge(browser::router(sim))
        .merge(api)
}

/// Stripe's 404 for a URL it does not serve.
async fn unrecognized(method: Method, uri: Uri) -> Error {
    let message = format!(
        "Unrecognized request URL ({method}: {}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.",
        uri.path()
    );
    Error::NotFound(Box::new(crate::error::Details::new(message)))
}
