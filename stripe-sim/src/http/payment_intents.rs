//! `POST /v1/payment_intents`, `GET /v1/payment_intents/{id}` and
//! `GET /v1/payment_intents/search`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};

use super::{Answer, Caller};
use crate::params::{CreateParams, Form, SearchParams};
use crate::{Error, Result, Sim};

/// Creates a PaymentIntent, confirming it at once when `confirm=true`.
pub(crate) async fn create(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Answer> {
    caller.require_secret()?;
    let params = CreateParams::parse(&Form::parse(&body))?;
    sim.state()
        .create_payment_intent(params, &caller.origin())
        .map(Answer)
}

/// Retrieves a PaymentIntent; a publishable key must bring the client secret.
pub(crate) async fn retrieve(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Answer> {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    form.reject_unknown(&["client_secret", "expand", "key"])?;
    let client_secret = form.string("client_secret");
    if caller.key.publishable && client_secret.is_none() {
        return Err(Error::missing_param("client_secret"));
    }
    let proof = client_secret.filter(|_| caller.key.publishable);
    sim.state()
        .retrieve_payment_intent(&id, proof.as_deref())
        .map(Answer)
}

/// Searches PaymentIntents with Stripe's query language.
pub(crate) async fn search(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Answer> {
    caller.require_secret()?;
    let params = SearchParams::parse(&Form::parse(query.unwrap_or_default().as_bytes()))?;
    sim.state().search_payment_intents(&params).map(Answer)
}
