//! The OpenAPI 3.1 document each HTTP role serves at `/openapi.json`, generated from the
//! `#[utoipa::path]` annotations on its handlers and the schemas of the types they take
//! and answer. Every role's document also has the operational routes, the admin token's
//! security scheme and the problem schema.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::problem::ProblemBody;

/// The operational routes every role serves.
#[derive(OpenApi)]
#[openapi(paths(super::ops::healthz, super::ops::readyz, super::ops::metrics))]
struct Operations;

/// The name of the admin token's security scheme (`security(("admin_token" = []))`).
pub const ADMIN_TOKEN: &str = "admin_token";

/// Completes a role's document: its title, this build's version, the operational routes,
/// the admin token's scheme and the problem schema.
pub fn complete(mut document: Document, title: &str) -> Document {
    document.merge(Operations::openapi());
    document.info.title = title.to_owned();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        ADMIN_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The admin token (`admin_token` in the configuration)"))
                .build(),
        ),
    );
    components.schemas.insert(
        <ProblemBody as utoipa::ToSchema>::name().into_owned(),
        <ProblemBody as utoipa::PartialSchema>::schema(),
    );
    document
}

/// `GET /openapi.json`, serving `document`.
pub fn route(document: &Document) -> Router {
    let json = Bytes::from(document.to_json().unwrap_or_default());
    Router::new().route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], json) }
        }),
    )
}
