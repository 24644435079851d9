//! The emulator's errors: each one is an error Stripe's API itself answers.
//!
//! Policy: every failure a client can cause becomes a Stripe error body
//! (`{"error":{"type","code","message",…}}`) with Stripe's status code, so async-stripe
//! parses it as `StripeError::Stripe(ApiErrors, status)`. The emulator has no internal
//! failures to hide: state lives in memory, and the only I/O (webhook delivery) reports
//! through delivery records rather than through this type.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::http::Executed;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Stripe API error, rendered with Stripe's status and body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable API key (401, `invalid_request_error`).
    #[error("{}", .0.message)]
    Authentication(Box<Details>),
    /// A parameter, or the object's state, forbids the request (400, `invalid_request_error`).
    #[error("{}", .0.message)]
    InvalidRequest(Box<Details>),
    /// The object named in the URL does not exist (404, `resource_missing`).
    #[error("{}", .0.message)]
    NotFound(Box<Details>),
    /// The card was declined (402, `card_error`); Stripe saves and replays these.
    #[error("{}", .0.message)]
    Card(Box<Details>),
    /// The idempotency key was first used with other parameters (400, `idempotency_error`).
    #[error("{}", .0.message)]
    IdempotencyMismatch(Box<Details>),
    /// A request with this idempotency key is still executing (409, `idempotency_error`).
    #[error("{}", .0.message)]
    IdempotencyInUse(Box<Details>),
    /// Injected fault: the request was rate limited (429, `rate_limit_error`).
    #[error("{}", .0.message)]
    RateLimited(Box<Details>),
    /// Injected fault or lost answer: a failure on Stripe's side (500, `api_error`).
    #[error("{}", .0.message)]
    Api(Box<Details>),
}

/// What Stripe says about a failed request besides its type.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// Human-readable message, as Stripe words it.
    pub message: String,
    /// The parameter at fault, if any.
    pub param: Option<String>,
    /// Stripe's machine-readable error code, if any.
    pub code: Option<&'static str>,
    /// Further members of the error object (`decline_code`, `payment_intent`, …).
    pub extra: Map<String, Value>,
}

impl Details {
    /// Details carrying only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// Names the parameter at fault.
    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets Stripe's error code.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Adds a member to the error object.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }
}

impl Error {
    /// A 400 `invalid_request_error` about `param`.
    pub(crate) fn invalid(
        param: &str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        let mut details = Details::new(message).param(param);
        details.code = code;
        Self::InvalidRequest(Box::new(details))
    }

    /// Stripe's 400 for a required parameter that is absent.
    pub(crate) fn missing_param(param: &str) -> Self {
        let message = format!("Missing required param: {param}.");
        Self::invalid(param, Some("parameter_missing"), message)
    }

    /// Stripe's 404 for an unknown object named in the URL.
    pub(crate) fn no_such(kind: &str, id: &str, param: &str) -> Self {
        let details = Details::new(format!("No such {kind}: '{id}'"))
            .param(param)
            .code("resource_missing");
        Self::NotFound(Box::new(details))
    }

    /// Stripe's 400 for an action the object's current state does not allow.
    pub(crate) fn unexpected_state(message: String, payment_intent: Value) -> Self {
        let details = Details::new(message)
            .code("payment_intent_unexpected_state")
            .with("payment_intent", payment_intent);
        Self::InvalidRequest(Box::new(details))
    }

    /// HTTP status Stripe answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Authentication(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) | Self::IdempotencyMismatch(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Card(_) => StatusCode::PAYMENT_REQUIRED,
            Self::IdempotencyInUse(_) => StatusCode::CONFLICT,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Api(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn parts(&self) -> (&'static str, &Details) {
        match self {
            Self::Authentication(d) | Self::InvalidRequest(d) | Self::NotFound(d) => {
                ("invalid_request_error", d)
            }
            Self::Card(d) => ("card_error", d),
            Self::IdempotencyMismatch(d) | Self::IdempotencyInUse(d) => ("idempotency_error", d),
            Self::RateLimited(d) => ("rate_limit_error", d),
            Self::Api(d) => ("api_error", d),
        }
    }

    /// The JSON body Stripe sends: `{"error": {…}}`.
    pub fn body(&self) -> Value {
        let (kind, details) = self.parts();
        let mut error = details.extra.clone();
        error.insert("type".into(), json!(kind));
        error.insert("message".into(), json!(details.message));
        if let Some(code) = details.code {
            error.insert("code".into(), json!(code));
            let doc = format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            );
            error.insert("doc_url".into(), json!(doc));
        }
        if let Some(param) = &details.param {
            error.insert("param".into(), json!(param));
        }
        json!({ "error": error })
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = crate::http::json_response(self.status(), &self.body());
        match self {
            // A decline happens after the charge was attempted: the endpoint executed,
            // so its result is saved for idempotent replay, as Stripe does.
            Self::Card(_) => {
                response.extensions_mut().insert(Executed);
            }
            Self::IdempotencyInUse(_) => {
                let retry = HeaderValue::from_static("true");
                response.headers_mut().insert("stripe-should-retry", retry);
            }
            _ => {}
        }
        response
    }
}
