//! `GET /queue/{ticket}`: the waiting-room page a person can leave open. Rendered on the
//! server with the current state (it works without JavaScript, refreshing itself), and a
//! few lines of plain JavaScript poll the JSON endpoint at the interval it suggests.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use flashgate_common::domain::TicketStatus;
use flashgate_common::http::ApiPath;

use crate::state::AppState;
use crate::tickets::{TicketBody, ticket_state, verify_token};

const PAGE: &str = include_str!("waiting_room.html");

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn headline(body: &TicketBody) -> String {
    match body.status {
        TicketStatus::Queued => match body.position {
            Some(p) => format!("You are number {p} in the queue"),
            None => "You are in the queue".into(),
        },
        TicketStatus::Waitlisted => {
            "You are on the wait-list: a unit is yours if one comes back".into()
        }
        TicketStatus::Reserved => "A unit is reserved for you".into(),
        TicketStatus::PaymentPending => "Your unit is reserved: complete the payment".into(),
        TicketStatus::Paid => "Paid. It's yours!".into(),
        TicketStatus::Failed => "The payment did not go through; the unit was released".into(),
        TicketStatus::Expired => "Your reservation expired before payment".into(),
        TicketStatus::SoldOut => "Sold out: no unit was left for your ticket".into(),
        TicketStatus::Refunded => {
            "Sold out before your payment completed: you were refunded".into()
        }
    }
}

fn wait_text(body: &TicketBody) -> String {
    match body.estimated_wait_ms {
        Some(ms) if ms >= 60_000 => format!("Estimated wait: about {} min", ms.div_ceil(60_000)),
        Some(ms) => format!("Estimated wait: about {} s", ms.div_ceil(1000).max(1)),
        None if body.status == TicketStatus::Queued => "Estimating your wait…".into(),
        None => String::new(),
    }
}

/// The waiting-room page of a ticket (HTML, refreshes itself; polls with JavaScript).
#[utoipa::path(get, path = "/queue/{ticket}", tag = "shoppers",
    params(("ticket" = String, Path, description = "The ticket token")),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 404, description = "Unknown or expired ticket", body = String, content_type = "text/html"),
        (status = 503, description = "Live state unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn page(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Response {
    let Ok(claims) = verify_token(&state, &token) else {
        let html = PAGE
            .replace("{{HEADLINE}}", "Unknown or expired ticket")
            .replace("{{WAIT}}", "")
            .replace("{{REFRESH}}", "");
        return (
            StatusCode::NOT_FOUND,
            Html(
                html.replace("{{TICKET}}", "")
                    .replace("{{STATUS}}", "unknown"),
            ),
        )
            .into_response();
    };
    let body = match ticket_state(&state, &claims, token.clone()).await {
        Ok(found) => found.body,
        Err(e) => return e.into_response(),
    };
    let refresh = if body.poll_after_ms > 0 {
        format!(
            r#"<meta http-equiv="refresh" content="{}">"#,
            body.poll_after_ms.div_ceil(1000).max(2)
        )
    } else {
        String::new()
    };
    let html = PAGE
        .replace("{{REFRESH}}", &refresh)
        .replace("{{HEADLINE}}", &escape(&headline(&body)))
        .replace("{{WAIT}}", &escape(&wait_text(&body)))
        .replace("{{STATUS}}", body.status.as_str())
        .replace("{{TICKET}}", &escape(&token));
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}
