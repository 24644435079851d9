//! `POST /v1/refunds` and `GET /v1/refunds/{id}`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};

use super::{Answer, Caller};
use crate::params::{Form, RefundParams};
use crate::{Result, Sim};

/// Refunds (part of) a succeeded PaymentIntent.
pub(crate) async fn create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Answer> {
    caller.require_secret()?;
    let params = RefundParams::parse(&Form::parse(&body))?;
    sim.state()
        .create_refund(params, &caller.origin())
        .map(Answer)
}

/// Retrieves a refund.
pub(crate) async fn retrieve(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Answer> {
    caller.require_secret()?;
    sim.state().retrieve_refund(&id).map(Answer)
}
