//! `GET /v1/events` and `GET /v1/events/{id}`.

use axum::Extension;
use axum::extract::{Path, RawQuery, State};

use super::{Answer, Caller};
use crate::params::{Form, ListEventsParams};
use crate::{Result, Sim};

/// Lists events, newest first.
pub(crate) async fn list(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Answer> {
    caller.require_secret()?;
    let params = ListEventsParams::parse(&Form::parse(query.unwrap_or_default().as_bytes()))?;
    sim.state().list_events(&params).map(Answer)
}

/// Retrieves one event.
pub(crate) async fn retrieve(
    State(sim): State<Sim>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Answer> {
    caller.require_secret()?;
    sim.state().retrieve_event(&id).map(Answer)
}
