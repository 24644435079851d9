//! What every crate's tests check the same way: a condition reached before a deadline
//! (polled, never slept on), and an error answer in problem+json.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Waits until `check` holds, polling every 50 ms, failing after `secs` with `what`.
pub async fn wait_until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `probe` every 50 ms until it yields a value, failing after `secs` with `what`.
pub async fn poll_until<T, F, Fut>(secs: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts `response` is a problem+json error with `status` and `code` (`case` names it
/// in the failure message).
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str, case: &str) {
    assert_eq!(response.status().as_u16(), status, "{case}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json", "{case}");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["code"], code, "{case}: {body}");
    assert_eq!(body["status"], status, "{case}");
    assert!(
        body["type"].as_str().is_some_and(|t| t.ends_with(code)),
        "{case}: {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{case}: {body}"
    );
}
