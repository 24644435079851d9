//! Idempotency at the HTTP edge: reading the `Idempotency-Key` header, claiming the key
//! for the request, replaying saved answers, and releasing a claim that saved nothing.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};

use super::Caller;
use crate::error::Details;
use crate::idempotency::{Begin, Saved, Scope, fingerprint};
use crate::{Error, Sim};

/// Stripe's longest accepted idempotency key.
const MAX_KEY_CHARS: usize = 255;

/// The request's idempotency key, if it sent one.
pub(crate) fn key(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty() {
        return Ok(None);
    }
    if key.chars().count() > MAX_KEY_CHARS {
        let message =
            format!("Idempotency-Key is too long: keys can be up to {MAX_KEY_CHARS} characters.");
        return Err(Error::invalid("idempotency_key", None, message));
    }
    Ok(Some(key.to_owned()))
}

/// An answer given without executing the request.
#[derive(Debug)]
pub(crate) enum Early {
    /// Refused: bad key, injected fault, idempotency conflict.
    Refused(Error),
    /// The saved answer to an earlier request with the same key and parameters.
    Replay(Saved),
}

impl From<Error> for Early {
    fn from(error: Error) -> Self {
        Self::Refused(error)
    }
}

impl IntoResponse for Early {
    fn into_response(self) -> Response {
        match self {
            Self::Refused(error) => error.into_response(),
            Self::Replay(saved) => replay(saved),
        }
    }
}

/// Claims the caller's key for this request, or answers at once (replay or refusal).
pub(crate) fn claim(
    sim: &Sim,
    caller: &Caller,
    parts: &Parts,
    body: &Bytes,
) -> Result<Option<Claim>, Early> {
    let Some(key) = &caller.idempotency_key else {
        return Ok(None);
    };
    let scope: Scope = (caller.key.raw.clone(), key.clone());
    let print = fingerprint(parts.method.as_str(), parts.uri.path(), body);
    let mut state = sim.state();
    let ttl = state.config.idempotency_ttl;
    match state.idempotency.begin(scope.clone(), print, ttl) {
        Begin::Proceed(token) => {
            let request_id = caller.request_id.clone();
            Ok(Some(Claim {
                sim: sim.clone(),
                scope,
                token,
                request_id,
                done: false,
            }))
        }
        Begin::Replay(saved) => {
            state.counters.idempotent_replays += 1;
            Err(Early::Replay(saved))
        }
        Begin::Mismatch => Err(mismatch(key).into()),
        Begin::InUse => Err(in_use().into()),
    }
}

/// A request's hold on its idempotency key; dropping it unsaved frees the key.
pub(crate) struct Claim {
    sim: Sim,
    scope: Scope,
    token: u64,
    request_id: String,
    done: bool,
}

impl Claim {
    /// Saves the executed request's answer for replay.
    pub(crate) fn complete(mut self, status: u16, body: Bytes) {
        let saved = Saved {
            status,
            body,
            request_id: self.request_id.clone(),
        };
        self.sim
            .state()
            .idempotency
            .complete(&self.scope, self.token, saved);
        self.done = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Also runs when the client disconnects mid-request, so a key is never stuck.
        if !self.done {
            self.sim
                .state()
                .idempotency
                .abandon(&self.scope, self.token);
        }
    }
}

fn replay(saved: Saved) -> Response {
    let status = StatusCode::from_u16(saved.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Body::from(saved.body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Ok(original) = HeaderValue::from_str(&saved.request_id) {
        headers.insert("original-request", original);
    }
    response
}

fn mismatch(key: &str) -> Error {
    let message = format!(
        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."
    );
    Error::IdempotencyMismatch(Box::new(Details::new(message)))
}

fn in_use() -> Error {
    let message = "There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through). Please retry this request later.";
    Error::IdempotencyInUse(Box::new(
        Details::new(message).code("idempotency_key_in_use"),
    ))
}
