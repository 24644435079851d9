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
const STYLE: &str = include_str!("page.css");

/// `template` with each `{{NAME}}` replaced by its value (given already escaped), and
/// `{{STYLE}}` by the shared style: in one pass, so a value is never read for names.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut page = String::with_capacity(template.len() + STYLE.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        page.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            rest = &rest[start..];
            break;
        };
        let name = &after[..end];
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => page.push_str(value),
            None if name == "STYLE" => page.push_str(STYLE),
            None => page.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    page.push_str(rest);
    page
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn headline(body: &TicketBody) -> String {
    match body.status {
        TicketStatus::Prequeued => {
            "You are in the pre-queue: places are drawn at random when the sale opens".into()
        }
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
    if let Some(opens) = &body.opens_at {
        return format!(
            "The sale opens at {opens}; arriving earlier or later in the pre-queue makes no difference"
        );
    }
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
        let html = fill(
            PAGE,
            &[
                ("TITLE", "Waiting room"),
                ("HEADLINE", "Unknown or expired ticket"),
                ("WAIT", ""),
                ("REFRESH", ""),
                ("TICKET", ""),
                ("STATUS", "unknown"),
            ],
        );
        return (StatusCode::NOT_FOUND, Html(html)).into_response();
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
    let title = match body.position {
        Some(position) => format!("#{position} · Waiting room"),
        None => "Waiting room".to_owned(),
    };
    let html = fill(
        PAGE,
        &[
            ("REFRESH", &refresh),
            ("TITLE", &title),
            ("HEADLINE", &escape(&headline(&body))),
            ("WAIT", &escape(&wait_text(&body))),
            ("STATUS", body.status.as_str()),
            ("TICKET", &escape(&token)),
        ],
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

const JOIN: &str = include_str!("join.html");

/// The page a shopper joins a sale's queue from: it solves the sale's proof-of-work
/// challenge in the browser (WebCrypto) when the sale asks for one, asks for a ticket,
/// waits and retries as the door says, and moves to the ticket's waiting room.
#[utoipa::path(get, path = "/sales/{sale_id}/join", tag = "shoppers",
    params(("sale_id" = String, Path, description = "The sale"),
           ("customer" = Option<String>, Query, description = "Pre-fills the customer id"),
           ("auto" = Option<String>, Query, description = "`true` or `1`, with `customer`: join at once (other values: wait for a click)")),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 404, description = "No such sale", body = String, content_type = "text/html"),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn join(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    axum::extract::Query(query): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    // A person's page: what it does not understand in the address, it ignores.
    let value = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let customer = value("customer").unwrap_or_default();
    let auto = matches!(value("auto"), Some("true" | "1"));
    let sale = match flashgate_common::domain::SaleId::parse(sale_id) {
        Ok(id) => state.sales.get(&id).await,
        Err(_) => Ok(None),
    };
    let sale = match sale {
        Ok(Some(sale)) => sale,
        Ok(None) => {
            let html = fill(
                JOIN,
                &[
                    ("HEADLINE", "No such sale"),
                    ("DETAIL", ""),
                    ("SALE", ""),
                    ("CUSTOMER", ""),
                    ("CAPTCHA", ""),
                    ("NEEDS_CAPTCHA", "false"),
                    ("AUTO", "false"),
                ],
            );
            return (StatusCode::NOT_FOUND, Html(html)).into_response();
        }
        Err(e) => return crate::Error::from(e).into_response(),
    };
    let settings = sale.settings();
    let now = chrono::Utc::now();
    let detail = if settings.prequeue_open(now) && now < settings.starts_at {
        format!(
            "The sale opens at {}. Join now: places are drawn at random at the opening.",
            settings.starts_at.to_rfc3339()
        )
    } else {
        "The sale is open: join to get your place in the queue.".to_owned()
    };
    let widget = match (&state.captcha, settings.captcha) {
        (Some(captcha), true) => captcha_widget(captcha),
        _ => String::new(),
    };
    let html = fill(
        JOIN,
        &[
            (
                "HEADLINE",
                &escape(&format!("Join the queue for {}", settings.sku)),
            ),
            ("DETAIL", &escape(&detail)),
            ("SALE", settings.id.as_str()),
            ("CAPTCHA", &widget),
            (
                "NEEDS_CAPTCHA",
                if widget.is_empty() { "false" } else { "true" },
            ),
            ("CUSTOMER", &escape(customer)),
            (
                "AUTO",
                if auto && !customer.is_empty() {
                    "true"
                } else {
                    "false"
                },
            ),
        ],
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// The provider's widget, loaded from the provider (its answer lands in a form field the
/// page reads).
fn captcha_widget(captcha: &crate::captcha::Captcha) -> String {
    use flashgate_common::config::CaptchaProvider;
    let (class, script) = match captcha.provider {
        CaptchaProvider::Turnstile => (
            "cf-turnstile",
            "https://challenges.cloudflare.com/turnstile/v0/api.js",
        ),
        CaptchaProvider::Hcaptcha => ("h-captcha", "https://js.hcaptcha.com/1/api.js"),
        CaptchaProvider::None => return String::new(),
    };
    format!(
        r#"<div class="{class}" data-sitekey="{}"></div><script src="{script}" async defer></script>"#,
        escape(&captcha.site_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_never_read_for_names() {
        let page = fill(
            "<p>{{A}}</p><b>{{B}}</b>{{UNKNOWN}}{{",
            &[("A", "{{B}}"), ("B", "b")],
        );
        assert_eq!(page, "<p>{{B}}</p><b>b</b>{{UNKNOWN}}{{");
        assert!(fill("<style>{{STYLE}}</style>", &[]).contains("font-family"));
    }
}
