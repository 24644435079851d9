//! The layers every service router gets: request ids (generated or taken from
//! `X-Request-Id`, echoed back), a tracing span per request, an access log line at INFO
//! (target `flashgate::access`, in that span, so with its request id), latency metrics
//! per route,
//! a body-size ceiling, panics turned into a logged 500, problem+json 404/405.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics::Histogram;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::Problem;
use crate::telemetry::window::LatencyWindow;

/// Wraps a service router with the common layers; bodies above `max_body_bytes` get 413.
pub fn with_common_layers(router: Router, max_body_bytes: usize) -> Router {
    router
        .fallback(|| async { Problem::not_found("not_found", "no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this resource does not accept that method",
            )
        })
        .layer(middleware::from_fn_with_state(
            Arc::new(LatencyHistograms::new()),
            record_latency,
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_to_problem))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// This process's answers to shoppers (`/v1/…`, `/queue/…`) over the last seconds, for
/// the operators' console.
pub static SHOPPERS: LatencyWindow = LatencyWindow::new();

/// The latency histogram of each (route, method, status), registered once. Going through
/// the `metrics` macro allocated three labels and searched the registry on every request.
/// Routes are the router's own (or `unmatched`) and methods outside the standard ones
/// share one label, so the set stays small whatever clients send.
struct LatencyHistograms(RwLock<HashMap<String, Vec<Labelled>>>);

/// One histogram with its method and status labels (the route is its map key).
type Labelled = (&'static str, u16, Histogram);

impl LatencyHistograms {
    fn new() -> Self {
        // Handles taken before the recorder is installed would record nowhere, forever.
        crate::telemetry::metrics();
        Self(RwLock::default())
    }

    fn get(&self, route: &str, method: &Method, status: StatusCode) -> Histogram {
        let (method, status) = (method_label(method), status.as_u16());
        let find = |entries: &Vec<Labelled>| {
            entries
                .iter()
                .find(|(m, s, _)| *m == method && *s == status)
                .map(|(_, _, h)| h.clone())
        };
        let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(histogram) = known.get(route).and_then(find) {
            return histogram;
        }
        drop(known);
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let entries = known.entry(route.to_owned()).or_default();
        if let Some(histogram) = find(entries) {
            return histogram;
        }
        let histogram = metrics::histogram!(
            "flashgate_http_request_duration_seconds",
            "route" => route.to_owned(),
            "method" => method,
            "status" => status.to_string(),
        );
        entries.push((method, status, histogram.clone()));
        histogram
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}

async fn record_latency(
    State(histograms): State<Arc<LatencyHistograms>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let elapsed = started.elapsed();
    histograms
        .get(route, &method, response.status())
        .record(elapsed.as_secs_f64());
    if route.starts_with("/v1/") || route.starts_with("/queue/") {
        SHOPPERS.record(elapsed, response.status().is_server_error());
    }
    tracing::info!(
        target: "flashgate::access",
        route,
        status = response.status().as_u16(),
        ms = elapsed.as_secs_f64() * 1e3,
        "answered"
    );
    response
}

fn panic_to_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "request handler panicked");
    Problem::internal().into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// Log output captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn every_answer_is_logged_at_info_with_its_request_id() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let router = with_common_layers(
            Router::new().route("/v1/things/{id}", axum::routing::get(|| async { "thing" })),
            1024,
        );
        let request = Request::get("/v1/things/7")
            .header("x-request-id", "req-42")
            .body(Body::empty())
            .unwrap();
        assert_eq!(router.oneshot(request).await.unwrap().status(), 200);
        let logged = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = logged
            .lines()
            .find(|l| l.contains("flashgate::access"))
            .unwrap_or_else(|| panic!("no access line in {logged:?}"));
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("request_id=req-42"), "{line}");
        assert!(
            line.contains("route=\"/v1/things/{id}\"") || line.contains("route=/v1/things/{id}"),
            "{line}"
        );
        assert!(line.contains("status=200"), "{line}");
    }
}
