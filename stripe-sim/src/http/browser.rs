//! What a shopper's browser loads from the emulator: a stand-in for Stripe.js
//! (`GET /js/v3/`, see `browser/stripe.js`) and the 3-D Secure page a card that needs
//! authentication sends the cardholder to (`/_sim/authenticate/{id}`: complete or fail,
//! as on Stripe's own test page).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::Sim;
use crate::model::Origin;
use crate::params::Form;

const STRIPE_JS: &str = include_str!("browser/stripe.js");
const PAGE: &str = include_str!("browser/authenticate.html");
const FORM: &str = include_str!("browser/form.html");

/// The browser-facing routes.
pub(crate) fn router(sim: Sim) -> Router {
    Router::new()
        .route("/js/v3", get(stripe_js))
        .route("/js/v3/", get(stripe_js))
        .route(
            "/_sim/authenticate/{id}",
            get(authentication_page).post(authenticate),
        )
        .with_state(sim)
}

async fn stripe_js() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STRIPE_JS,
    )
        .into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(
    status: StatusCode,
    headline: &str,
    detail: &str,
    form: &str,
    outcome: &str,
    id: &str,
) -> Response {
    let html = PAGE
        .replace("{{HEADLINE}}", &escape(headline))
        .replace("{{DETAIL}}", &escape(detail))
        .replace("{{OUTCOME}}", outcome)
        .replace("{{INTENT}}", &escape(id))
        .replace("{{FORM}}", form);
    (status, Html(html)).into_response()
}

async fn authentication_page(Path(id): Path<String>, RawQuery(query): RawQuery) -> Response {
    let form = Form::parse(query.unwrap_or_default().as_bytes());
    let secret = form.string("client_secret").unwrap_or_default();
    page(
        StatusCode::OK,
        "3D Secure test page",
        "The emulator's stand-in for the bank's authentication step. Complete it to charge the card, or fail it.",
        &FORM.replace("{{SECRET}}", &escape(&secret)),
        "",
        &id,
    )
}

async fn authenticate(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    let secret = form.string("client_secret").unwrap_or_default();
    let completed = match form.string("outcome").as_deref() {
        Some("complete") => true,
        Some("fail") => false,
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "Unknown outcome",
                "Choose to complete or to fail the authentication.",
                "",
                "",
                &id,
            );
        }
    };
    let origin = Origin {
        host: headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
        ..Origin::default()
    };
    match sim.state().authenticate(&id, &secret, completed, &origin) {
        Ok(_) if completed => page(
            StatusCode::OK,
            "Authentication complete",
            "You can return to the shop.",
            "",
            "complete",
            &id,
        ),
        Ok(_) => page(
            StatusCode::OK,
            "Authentication failed",
            "The payment was not authorised.",
            "",
            "fail",
            &id,
        ),
        Err(e) => {
            let message = e.body()["error"]["message"]
                .as_str()
                .unwrap_or("authentication refused")
                .to_owned();
            page(
                StatusCode::BAD_REQUEST,
                "Authentication refused",
                &message,
                "",
                "",
                &id,
            )
        }
    }
}
