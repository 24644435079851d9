//! `GET /queue/{ticket}`: the waiting-room page a person can leave open. Rendered on the
//! server with the current state (it works without JavaScript, refreshing itself), and a
//! few lines of plain JavaScript poll the JSON endpoint at the interval it suggests.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use flashgate_common::domain::TicketStatus;
use flashgate_common::http::ApiPath;

use flashgate_common::ledger::branding::Branding;

use crate::i18n::{LANGUAGES, Messages};
use crate::state::AppState;
use crate::tickets::{TicketBody, ticket_state, verify_token};

const PAGE: &str = include_str!("waiting_room.html");
const STYLE: &str = include_str!("page.css");

/// `template` with each `{{NAME}}` replaced by its value (given already escaped),
/// `{{STYLE}}` by the shared style, and a name without a value by nothing: in one pass,
/// so a value is never read for names.
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
            None => {}
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

fn headline(body: &TicketBody, m: Messages) -> String {
    match (body.status, body.position) {
        (TicketStatus::Queued, Some(p)) => {
            m.text("headline.queued_at", &[("position", &p.to_string())])
        }
        (status, _) => m.text(&format!("headline.{}", status.as_str()), &[]),
    }
}

fn wait_text(body: &TicketBody, m: Messages) -> String {
    if let Some(opens) = &body.opens_at {
        let time = chrono::DateTime::parse_from_rfc3339(opens).map_or_else(
            |_| opens.clone(),
            |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
        return m.text("wait.opens_at", &[("time", &time)]);
    }
    match body.estimated_wait_ms {
        Some(ms) if ms >= 60_000 => m.text(
            "wait.minutes",
            &[("minutes", &ms.div_ceil(60_000).to_string())],
        ),
        Some(ms) => m.text(
            "wait.seconds",
            &[("seconds", &ms.div_ceil(1000).max(1).to_string())],
        ),
        None if body.status == TicketStatus::Queued => m.text("wait.estimating", &[]),
        None => String::new(),
    }
}

/// Links to the page in each language (the current one marked for screen readers).
fn language_links(m: Messages) -> String {
    LANGUAGES
        .iter()
        .map(|(lang, name)| {
            if *lang == m.lang {
                format!(r#"<a aria-current="true" lang="{lang}">{name}</a>"#)
            } else {
                format!(r#"<a href="?lang={lang}" lang="{lang}" hreflang="{lang}">{name}</a>"#)
            }
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// What the shopper is buying, as the page shows it.
struct Product {
    name: String,
    image: Option<String>,
    price: i64,
    currency: String,
    /// Units on the ticket, once a unit is held for it (1 until then).
    quantity: i64,
}

/// Currencies without minor units (Stripe's list): their amounts are whole units.
fn zero_decimal(currency: &str) -> bool {
    const ZERO_DECIMAL: [&str; 16] = [
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    ZERO_DECIMAL.contains(&currency)
}

/// `amount` minor units of `currency`, as the page shows it before its script formats
/// it for the shopper's locale: `19.99 EUR`, `1500 JPY`.
fn price_text(amount: i64, currency: &str) -> String {
    let code = currency.to_ascii_uppercase();
    if zero_decimal(currency) {
        format!("{amount} {code}")
    } else {
        format!("{}.{:02} {code}", amount / 100, (amount % 100).abs())
    }
}

/// How long a product's name and image are kept for the waiting room before the
/// catalogue is asked again.
const PRODUCT_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The products' names and first images by SKU, for the waiting room: a page refreshing
/// itself (no JavaScript) or a crowd opening pages does not ask PostgreSQL each time.
#[derive(Default)]
pub(crate) struct ProductNames(std::sync::Mutex<std::collections::HashMap<String, Named>>);

/// A product's name and image, and when they were read.
type Named = (std::time::Instant, String, Option<String>);

impl ProductNames {
    async fn get(&self, state: &AppState, sku: &str) -> (String, Option<String>) {
        let fresh = |at: &std::time::Instant| at.elapsed() < PRODUCT_TTL;
        if let Some((_, name, image)) = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sku)
            .filter(|(at, _, _)| fresh(at))
        {
            return (name.clone(), image.clone());
        }
        let found = sqlx::query!(
            r#"SELECT name, images->>0 AS image FROM products WHERE sku = $1"#,
            sku
        )
        .fetch_optional(&state.pool)
        .await;
        let (name, image) = match found {
            Ok(Some(row)) => (
                row.name,
                row.image
                    .filter(|url| url.starts_with("https://") || url.starts_with("http://")),
            ),
            Ok(None) => (sku.to_owned(), None),
            Err(e) => {
                tracing::debug!(error = ?e, "product not read for the waiting room");
                return (sku.to_owned(), None);
            }
        };
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                sku.to_owned(),
                (std::time::Instant::now(), name.clone(), image.clone()),
            );
        (name, image)
    }
}

/// The sale's product (name, first image, cached), price, and the ticket's units while a
/// unit is held for it (read within the door's bound on database look-ups).
async fn product(
    state: &AppState,
    sale: &flashgate_common::ledger::sales::Sale,
    body: &TicketBody,
    ticket: uuid::Uuid,
) -> Product {
    let (name, image) = state.products.get(state, sale.sku.as_str()).await;
    let held = matches!(
        body.status,
        TicketStatus::Reserved | TicketStatus::PaymentPending
    );
    let quantity = if held {
        let _slot = state.db_lookups.acquire().await;
        sqlx::query_scalar!("SELECT quantity FROM tickets WHERE id = $1", ticket)
            .fetch_optional(&state.pool)
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    Product {
        name,
        image,
        price: sale.price,
        currency: sale.currency.to_string(),
        quantity: i64::from(quantity.unwrap_or(1).max(1)),
    }
}

/// The operator's branding of the sale: the shop's name and logo above the product,
/// its message, and the colours as style rules (validated when the sale was written).
fn brand(branding: &Branding) -> (String, String, String) {
    let logo = branding
        .logo_url
        .as_deref()
        .map_or_else(String::new, |url| {
            let alt = branding.shop_name.as_deref().unwrap_or_default();
            format!(r#"<img src="{}" alt="{}">"#, escape(url), escape(alt))
        });
    let name = match (&branding.shop_name, branding.logo_url.is_some()) {
        (Some(name), false) => escape(name),
        _ => String::new(),
    };
    let header = if logo.is_empty() && name.is_empty() {
        String::new()
    } else {
        format!(r#"<header class="brand">{logo}{name}</header>"#)
    };
    let mut style = String::new();
    if let Some(background) = &branding.background_color {
        style.push_str(&format!(
            "  body {{ background: {} }}\n",
            escape(background)
        ));
    }
    if let Some(accent) = &branding.accent_color {
        style.push_str(&format!(
            "  #pay button {{ background: {0} }}\n  .brand {{ color: {0} }}\n",
            escape(accent)
        ));
    }
    let message = branding
        .message
        .as_deref()
        .map_or_else(String::new, |text| {
            format!(r#"<p id="message">{}</p>"#, escape(text))
        });
    (header, style, message)
}

fn hold_text(body: &TicketBody, m: Messages) -> String {
    let until = body
        .hold_expires_at
        .as_deref()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
    match until {
        Some(until) => {
            let time = until.format("%H:%M:%S").to_string();
            m.text("hold.until", &[("time", &time)])
        }
        None => String::new(),
    }
}

/// The waiting-room page of a ticket (HTML, refreshes itself; polls with JavaScript).
/// While the unit waits for the shopper's payment it mounts Stripe's Payment Element
/// (Stripe.js from `stripe.js_url`) with the ticket's client secret and confirms there;
/// the order is still finalized by Stripe's webhook.
#[utoipa::path(get, path = "/queue/{ticket}", tag = "shoppers",
    params(("ticket" = String, Path, description = "The ticket token"),
           ("lang" = Option<String>, Query, description = "The page's language (`en`, `de`, `fr`, `es`, `ja`), over `Accept-Language`; others are ignored")),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 404, description = "Unknown or expired ticket", body = String, content_type = "text/html"),
        (status = 503, description = "Live state unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn page(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<Vec<(String, String)>>,
) -> Response {
    let choice = query
        .iter()
        .rev()
        .find(|(k, _)| k == "lang")
        .map(|(_, v)| v.as_str());
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let m = Messages::negotiate(choice, accept);
    let words = |key: &str| escape(&m.text(key, &[]));
    let mut values: Vec<(&str, String)> = vec![
        ("LANG", m.lang.to_owned()),
        ("MESSAGES", m.script_json().to_owned()),
        ("HINT", words("hint")),
        ("LANGUAGE", words("language")),
        ("LANGUAGES", language_links(m)),
    ];
    let unknown = |mut values: Vec<(&str, String)>| {
        values.extend([
            ("TITLE", words("title")),
            ("HEADLINE", words("headline.unknown")),
            ("STATUS", "unknown".to_owned()),
            ("STATUS_TEXT", words("status.unknown")),
        ]);
        let html = fill(PAGE, &refs(&values));
        (StatusCode::NOT_FOUND, Html(html)).into_response()
    };
    let Ok(claims) = verify_token(&state, &token) else {
        return unknown(values);
    };
    let body = match ticket_state(&state, &claims, token.clone()).await {
        Ok(found) => found.body,
        Err(e) => return e.into_response(),
    };
    let sale = match state.sales.get(&claims.sale).await {
        Ok(Some(sale)) => sale.settings(),
        Ok(None) => return unknown(values),
        Err(e) => return crate::Error::from(e).into_response(),
    };
    let product = product(&state, &sale, &body, claims.ticket).await;
    let (brand_header, brand_style, message) = brand(&sale.branding);
    let refresh = if body.poll_after_ms > 0 {
        format!(
            r#"<meta http-equiv="refresh" content="{}">"#,
            body.poll_after_ms.div_ceil(1000).max(2)
        )
    } else {
        String::new()
    };
    let title = match body.position {
        Some(position) => format!("#{position} · {}", words("title")),
        None => words("title"),
    };
    let image = product.image.as_deref().map_or_else(String::new, |url| {
        format!(r#"<img src="{}" alt="">"#, escape(url))
    });
    let price = price_text(product.price, &product.currency);
    let stripe = &state.config.stripe;
    let first_poll = if body.status == TicketStatus::PaymentPending {
        "0"
    } else {
        "1000"
    };
    values.extend([
        ("REFRESH", refresh),
        ("TITLE", title),
        ("HEADLINE", escape(&headline(&body, m))),
        ("WAIT", escape(&wait_text(&body, m))),
        ("STATUS", body.status.as_str().to_owned()),
        (
            "STATUS_TEXT",
            words(&format!("status.{}", body.status.as_str())),
        ),
        ("TICKET", escape(&token)),
        ("PRODUCT", escape(&product.name)),
        ("IMAGE", image),
        (
            "PAY",
            escape(&m.text(
                "pay.button",
                &[(
                    "price",
                    &price_text(product.price * product.quantity, &product.currency),
                )],
            )),
        ),
        (
            "QUANTITY",
            if product.quantity > 1 {
                format!("{} × ", product.quantity)
            } else {
                String::new()
            },
        ),
        ("UNITS", product.quantity.to_string()),
        ("BRAND", brand_header),
        ("BRAND_STYLE", brand_style),
        ("MESSAGE", message),
        ("PRICE", escape(&price)),
        ("AMOUNT", product.price.to_string()),
        ("CURRENCY", escape(&product.currency)),
        ("ZERO_DECIMAL", zero_decimal(&product.currency).to_string()),
        ("HOLD", escape(&hold_text(&body, m))),
        ("STRIPE_KEY", escape(&stripe.publishable_key)),
        ("STRIPE_JS", escape(&stripe.js_url)),
        ("FIRST_POLL_MS", first_poll.to_owned()),
    ]);
    let html = fill(PAGE, &refs(&values));
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn refs<'a>(values: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    values.iter().map(|(k, v)| (*k, v.as_str())).collect()
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
        assert_eq!(page, "<p>{{B}}</p><b>b</b>{{");
        assert!(fill("<style>{{STYLE}}</style>", &[]).contains("font-family"));
    }

    #[test]
    fn prices_are_shown_in_whole_and_minor_units() {
        assert_eq!(price_text(1999, "eur"), "19.99 EUR");
        assert_eq!(price_text(5, "usd"), "0.05 USD");
        assert_eq!(price_text(1500, "jpy"), "1500 JPY");
    }
}
