//! `POST /v1/payment_intents/{id}/confirm` and `…/cancel`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};

use super::{Answer, Caller};
use crate::params::{ConfirmParams, Form, cancellation_reason};
use crate::{Result, Sim};

/// Confirms (charges) a PaymentIntent; callable from a browser with a publishable key
/// and the client secret, as Stripe.js does.
pub(crate) async fn confirm(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Answer> {
    let params = ConfirmParams::parse(&Form::parse(&body))?;
    let publishable = caller.key.publishable;
    sim.state()
        .confirm_payment_intent(&id, params, publishable, &caller.origin())
        .map(Answer)
}

/// Cancels a PaymentIntent that has not succeeded.
pub(crate) async fn cancel(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Answer> {
    caller.require_secret()?;
    let reason = cancellation_reason(&Form::parse(&body))?;
    sim.state()
        .cancel_payment_intent(&id, reason, &caller.origin())
        .map(Answer)
}
