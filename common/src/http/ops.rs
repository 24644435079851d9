//! `/healthz` (the process answers), `/readyz` (its dependencies answer, and it is not
//! shutting down), `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::{BoxFuture, join_all};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

/// A named dependency check for `/readyz`; `Err` carries a short reason.
pub type ReadinessCheck = (
    &'static str,
    Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>,
);

/// Longest a readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one run of the checks answers `/readyz`: a public probe hammered at any rate
/// reaches the dependencies at most this often, per process.
const READY_FRESH_FOR: Duration = Duration::from_millis(500);

/// The checks and their newest result.
pub(super) struct ReadinessState {
    checks: Vec<ReadinessCheck>,
    /// Cancelled when the process begins to shut down: from then on it is not ready.
    shutdown: CancellationToken,
    /// When the checks last ran, and the answer they gave (held while they run, so
    /// concurrent probes wait for one run instead of starting their own).
    last: tokio::sync::Mutex<Option<(Instant, bool, Value)>>,
}

/// The operational routes, with `checks` behind `/readyz`, which answers `503` once
/// `shutdown` is cancelled.
pub fn ops_router(checks: Vec<ReadinessCheck>, shutdown: CancellationToken) -> Router {
    let readiness = ReadinessState {
        checks,
        shutdown,
        last: tokio::sync::Mutex::new(None),
    };
    healthz_router()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(readiness))
}

/// `/healthz` alone: the process answers.
pub fn healthz_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/healthz", get(healthz))
}

/// The answer of `/healthz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    /// `ok`.
    status: &'static str,
}

/// The answer of `/readyz`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the JSON built in `readyz`.
pub(super) struct Readiness {
    /// `ready`, `not_ready` or `shutting_down`.
    status: String,
    /// Each dependency checked: `ok` or why not.
    checks: std::collections::BTreeMap<String, String>,
}

/// Whether the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Whether the process should get traffic: its dependencies answer and it is not
/// shutting down. Results are reused for half a second.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "A dependency does not answer, or the process is shutting down", body = Readiness),
))]
pub(super) async fn readyz(State(readiness): State<Arc<ReadinessState>>) -> Response {
    if readiness.shutdown.is_cancelled() {
        let body = json!({ "status": "shutting_down", "checks": {} });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    let mut last = readiness.last.lock().await;
    let (ready, report) = match &*last {
        Some((at, ready, report)) if at.elapsed() < READY_FRESH_FOR => (*ready, report.clone()),
        _ => {
            let (ready, report) = run_checks(&readiness.checks).await;
            *last = Some((Instant::now(), ready, report.clone()));
            (ready, report)
        }
    };
    drop(last);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if ready { "ready" } else { "not_ready" };
    (status, Json(json!({ "status": word, "checks": report }))).into_response()
}

async fn run_checks(checks: &[ReadinessCheck]) -> (bool, Value) {
    let results = join_all(checks.iter().map(|(name, check)| async move {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_owned()),
        };
        (*name, outcome)
    }))
    .await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    let report: Map<String, Value> = results
        .into_iter()
        .map(|(name, r)| {
            (
                name.to_owned(),
                json!(r.err().unwrap_or_else(|| "ok".into())),
            )
        })
        .collect();
    (ready, Value::Object(report))
}

/// Prometheus metrics of this process.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "The Prometheus text format", body = String, content_type = "text/plain"),
))]
pub(super) async fn metrics() -> Response {
    let body = crate::telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::body::Body;
    use axum::http::Request;
    use futures_util::FutureExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_flood_of_readiness_probes_reaches_the_dependencies_once() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let check: ReadinessCheck = (
            "counted",
            Arc::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }.boxed()
            }),
        );
        let router = ops_router(vec![check], CancellationToken::new());
        let probes = (0..200).map(|_| {
            let router = router.clone();
            async move {
                let request = Request::get("/readyz").body(Body::empty()).unwrap();
                router.oneshot(request).await.unwrap().status()
            }
        });
        let statuses = join_all(probes).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "checks ran once for 200 probes"
        );
    }

    #[tokio::test]
    async fn a_process_shutting_down_is_not_ready_whatever_its_dependencies_say() {
        let healthy: ReadinessCheck = ("healthy", Arc::new(|| async { Ok(()) }.boxed()));
        let shutdown = CancellationToken::new();
        let router = ops_router(vec![healthy], shutdown.clone());
        let probe = |path: &'static str| {
            let router = router.clone();
            async move {
                let request = Request::get(path).body(Body::empty()).unwrap();
                router.oneshot(request).await.unwrap().status()
            }
        };
        assert_eq!(probe("/readyz").await, StatusCode::OK);
        shutdown.cancel();
        assert_eq!(probe("/readyz").await, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(probe("/healthz").await, StatusCode::OK, "still alive");
    }
}
