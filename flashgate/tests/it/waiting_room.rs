//! The waiting-room page in a real browser: it follows the ticket, rides out a door that
//! answers 503 (showing that it is reconnecting, waiting as told), and stops on a 404.

use serde_json::json;

use crate::support::{Browser, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_reconnects_after_errors_and_stops_on_an_unknown_ticket() {
    let stack = Stack::start().await;
    stack.create_sale_with("room", json!({ "stock": 3 })).await;
    let token = stack.token("room", "browser-shopper", None).await;
    let browser = Browser::start().await;
    browser.goto(&stack.door(&format!("/queue/{token}"))).await;
    browser
        .wait_for_text("#status", 30, |s| s == "payment_pending")
        .await;
    let title = browser.eval("return document.title;").await;
    assert_eq!(title, "Waiting room", "no position once reserved");

    // The door answers 503 with Retry-After: the page says so and keeps trying.
    browser
        .eval(
            "window.__fetch = window.fetch; window.__calls = 0;
             window.fetch = function () { window.__calls++;
               return Promise.resolve(new Response('{}', { status: 503, headers: { 'retry-after': '1' } })); };
             return true;",
        )
        .await;
    let reconnecting = browser
        .wait_for_text("#connection", 10, |t| t.starts_with("Reconnecting"))
        .await;
    assert!(reconnecting.contains("next try in"), "{reconnecting}");
    let calls = browser
        .eval("return window.__calls;")
        .await
        .as_u64()
        .unwrap();
    assert!(calls >= 1);

    // The door is back: the page recovers by itself.
    browser
        .eval("window.fetch = window.__fetch; return true;")
        .await;
    browser
        .wait_for_text("#connection", 10, str::is_empty)
        .await;
    assert_eq!(browser.text("#status").await, "payment_pending");

    // The ticket is unknown now: the page says so and stops.
    browser
        .eval(
            "window.fetch = function () {
               return Promise.resolve(new Response('{}', { status: 404 })); };
             return true;",
        )
        .await;
    browser
        .wait_for_text("#headline", 10, |h| h.contains("unknown or has expired"))
        .await;
    assert_eq!(browser.text("#connection").await, "");
    browser.quit().await;
    stack.stop().await;
}
