//! `GET /v1/tickets/{ticket}`: one Redis round trip (the ticket and the served position).
//! PostgreSQL is read only when Redis does not have the ticket, when Redis is down, or
//! when a ticket still reads `queued` although the queue has moved past it; what the
//! database says is then written back to Redis.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use flashgate_common::domain::{OrderStatus, SaleId, TicketStatus};
use flashgate_common::http::{ApiPath, Problem};
use flashgate_common::live::tickets::{StatusUpdate, TicketView};
use uuid::Uuid;

use super::{PaymentBody, TicketBody};
use crate::Result;
use crate::state::AppState;
use crate::ticket_token::TicketClaims;

/// A ticket's state, as a shopper (JSON or the waiting-room page) is shown it.
#[derive(Debug, Clone)]
pub(crate) struct TicketState {
    /// Status, position, payment and polling advice.
    pub body: TicketBody,
}

/// Verifies a token; every kind of bad token is the same 404.
pub(crate) fn verify_token(state: &AppState, token: &str) -> Result<TicketClaims> {
    state
        .signer
        .verify(token, Utc::now().timestamp())
        .map_err(|_| Problem::not_found("ticket_not_found", "unknown or expired ticket").into())
}

/// A ticket's status, position, order and payment; poll again after `poll_after_ms`.
#[utoipa::path(get, path = "/v1/tickets/{ticket}", tag = "shoppers",
    params(("ticket" = String, Path, description = "The ticket token from the 202")),
    responses(
        (status = 200, description = "The ticket", body = super::TicketBody),
        (status = 404, description = "Unknown, forged or expired ticket (`ticket_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Live state unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn poll(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<TicketBody>> {
    let claims = verify_token(&state, &token)?;
    Ok(Json(ticket_state(&state, &claims, token).await?.body))
}

/// Reads a ticket's state.
pub(crate) async fn ticket_state(
    state: &AppState,
    claims: &TicketClaims,
    token: String,
) -> Result<TicketState> {
    let (view, decided) = match state.redis.read_ticket(&claims.sale, claims.ticket).await {
        Ok(read) => read,
        Err(e) => {
            tracing::warn!(error = ?e, "redis unavailable for a poll; reading the database");
            (None, None)
        }
    };
    let behind = |v: &TicketView| {
        v.status == TicketStatus::Queued && v.seq.zip(decided).is_some_and(|(s, d)| s <= d)
    };
    let view = match view {
        Some(view) if !behind(&view) => view,
        cached => match from_database_bounded(state, claims, cached.is_some()).await? {
            Some(found) => found,
            None => cached.unwrap_or(TicketView {
                status: TicketStatus::Queued,
                seq: None,
                order_id: None,
                payment_intent: None,
                client_secret: None,
                hold_expires_at: None,
            }),
        },
    };
    if matches!(
        view.status,
        TicketStatus::Reserved | TicketStatus::PaymentPending
    ) {
        seen(state, claims);
    }
    Ok(TicketState {
        body: render(state, claims, view, decided, token).await,
    })
}

/// Records the shopper's presence on a held ticket, off the answer's path (the holds of
/// shoppers who stop asking go back early: `worker.presence_timeout_secs`).
fn seen(state: &AppState, claims: &TicketClaims) {
    let (redis, sale, ticket) = (state.redis.clone(), claims.sale.clone(), claims.ticket);
    tokio::spawn(async move {
        if let Err(e) = redis.mark_seen(&sale, ticket, Utc::now()).await {
            tracing::debug!(error = ?e, "presence not recorded");
        }
    });
}

async fn render(
    state: &AppState,
    claims: &TicketClaims,
    view: TicketView,
    decided: Option<i64>,
    token: String,
) -> TicketBody {
    let sale = state.sales.get(&claims.sale).await.ok().flatten();
    if view.status == TicketStatus::Prequeued {
        let starts_at = sale.map_or_else(Utc::now, |s| s.settings().starts_at);
        return super::prequeue::body(token, starts_at);
    }
    let position = (view.status == TicketStatus::Queued)
        .then(|| view.seq.map(|seq| (seq - decided.unwrap_or(0)).max(1)))
        .flatten();
    let budget = state.config.admission.poll_budget_per_second;
    let spread = sale.as_ref().map_or(0, |sale| sale.poll_spread_ms(budget));
    let poll_after_ms = match (view.status, position, &sale) {
        (status, _, _) if status.is_final() => 0,
        (TicketStatus::Queued, Some(p), Some(sale)) => sale.poll_after_ms(p, spread),
        (TicketStatus::Reserved, _, _) => spread.max(500),
        (TicketStatus::Waitlisted, _, _) => spread.max(2000),
        _ => spread.max(1000),
    };
    let payment = match (view.status, view.payment_intent, view.client_secret) {
        (TicketStatus::PaymentPending, Some(payment_intent), Some(client_secret)) => {
            Some(PaymentBody {
                payment_intent,
                client_secret,
            })
        }
        _ => None,
    };
    let held = matches!(
        view.status,
        TicketStatus::Reserved | TicketStatus::PaymentPending
    );
    TicketBody {
        ticket: token,
        status: view.status,
        position,
        order_id: view.order_id,
        payment,
        poll_after_ms,
        estimated_wait_ms: position.zip(sale).and_then(|(p, s)| s.estimated_wait_ms(p)),
        waitlisted: false,
        opens_at: None,
        hold_expires_at: view
            .hold_expires_at
            .filter(|_| held)
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    }
}

/// [`from_database`] for a poll, within the door's bound on look-ups: when Redis times
/// out under a crowd, every poll falling through to PostgreSQL at once would take the
/// database down with it. Past the bound a poll Redis did answer keeps what Redis said
/// (`None` here); one it did not is told to come back (`503`).
async fn from_database_bounded(
    state: &AppState,
    claims: &TicketClaims,
    redis_answered: bool,
) -> Result<Option<TicketView>> {
    let Ok(_slot) = state.db_lookups.try_acquire() else {
        if redis_answered {
            return Ok(None);
        }
        return Err(Problem::unavailable(
            "redis_unavailable",
            "live state is unavailable; retry",
            1,
        )
        .into());
    };
    from_database(state, &claims.sale, claims.ticket).await
}

/// The decided state from PostgreSQL, re-published to Redis; else the pre-queue's word
/// (waiting for the draw, or drawn and queued). `None` if it is neither.
pub(super) async fn from_database(
    state: &AppState,
    sale: &SaleId,
    ticket: Uuid,
) -> Result<Option<TicketView>> {
    let Some(row) = sqlx::query!(
        r#"SELECT t.decision, t.seq, o.id AS "order_id?: Uuid", o.status AS "order_status?",
                  o.payment_intent_id, o.client_secret, o.payment_method,
                  o.hold_expires_at AS "hold_expires_at?"
           FROM tickets t LEFT JOIN orders o ON o.ticket_id = t.id
           WHERE t.id = $1"#,
        ticket
    )
    .fetch_optional(&state.pool)
    .await?
    else {
        return from_prequeue(state, ticket).await;
    };
    let order = row.order_status.as_deref().and_then(OrderStatus::parse);
    let status = flashgate_common::ledger::unpublished::ticket_status(&row.decision, order);
    let shopper_confirms = row.payment_method.is_none();
    let view = TicketView {
        status,
        seq: Some(row.seq),
        order_id: row.order_id,
        payment_intent: row.payment_intent_id,
        client_secret: row.client_secret.filter(|_| shopper_confirms),
        hold_expires_at: row.hold_expires_at,
    };
    republish(state, sale, ticket, &view).await;
    Ok(Some(view))
}

/// A ticket not decided yet may be in the pre-queue: waiting for the draw, or drawn.
async fn from_prequeue(state: &AppState, ticket: Uuid) -> Result<Option<TicketView>> {
    let view = |status, seq| TicketView {
        status,
        seq,
        order_id: None,
        payment_intent: None,
        client_secret: None,
        hold_expires_at: None,
    };
    Ok(
        match flashgate_common::ledger::prequeue::place(&state.pool, ticket).await? {
            Some(None) => Some(view(TicketStatus::Prequeued, None)),
            Some(Some(seq)) => Some(view(TicketStatus::Queued, Some(seq))),
            None => None,
        },
    )
}

async fn republish(state: &AppState, sale: &SaleId, ticket: Uuid, view: &TicketView) {
    let update = StatusUpdate {
        sale: sale.clone(),
        ticket,
        status: view.status,
        order_id: view.order_id,
        payment_intent: view.payment_intent.clone(),
        client_secret: view.client_secret.clone(),
        hold_expires_at: view.hold_expires_at,
    };
    if let Err(e) = state.redis.write_statuses(&[update]).await {
        tracing::debug!(error = ?e, "could not re-publish a ticket status");
    }
}
