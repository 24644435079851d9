//! Bearer-token guard for admin routes: `Authorization: Bearer <admin token>`, compared
//! in constant time; anything else is a 401 problem with `WWW-Authenticate: Bearer`.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Problem;
use crate::config::AdminToken;

/// Middleware: use with `axum::middleware::from_fn_with_state(token, require_admin)`.
pub async fn require_admin(
    State(token): State<AdminToken>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if token.matches(presented) {
        return next.run(request).await;
    }
    Problem::unauthorized().into_response()
}
