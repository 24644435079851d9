//! The operators' live console in a real browser: sign in with the admin token, open a
//! sale, watch its numbers move as shoppers arrive (Server-Sent Events), change the rate
//! (audited with who, old and new, and shown in the page's log), turn the controller on
//! and see its decisions arrive in the log. The stream itself: `text/event-stream`,
//! stats first, the admin token required, `404` for no such sale.

use std::time::Duration;

use serde_json::json;

use crate::support::{ADMIN, Browser, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_and_steers_a_sale_from_the_live_console() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("console", json!({ "stock": 5 }))
        .await;

    // The stream, as any client reads it.
    let live = stack.door("/admin/v1/sales/console/live");
    let refused = stack.http.get(&live).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let missing = stack
        .http
        .get(stack.door("/admin/v1/sales/nothing/live"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let mut stream = stack
        .http
        .get(&live)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first).to_string();
    assert!(first.starts_with("event: stats\ndata: {"), "{first}");
    drop(stream);

    let browser = Browser::start().await;
    browser.resize(1200, 1000).await;
    browser.goto(&stack.door("/admin/console")).await;
    browser.type_into("#token", ADMIN).await;
    browser.type_into("#actor", "alice").await;
    browser.click("#login-form button").await;
    browser
        .wait_for("button[aria-label='Open console']", 10)
        .await;
    browser.click("button[aria-label='Open console']").await;
    browser
        .wait_for_text("#connection", 10, |c| c == "Live")
        .await;
    browser
        .wait_for_text("#figures", 10, |f| f.contains("queue depth"))
        .await;
    let serious = browser.serious_accessibility_violations().await;
    assert!(serious.is_empty(), "{serious:#?}");

    // Shoppers arrive: the page's numbers follow.
    for shopper in ["c1", "c2"] {
        stack.token("console", shopper, None).await;
    }
    browser
        .wait_for_text("#figures", 20, |f| f.contains("tickets payment_pending2"))
        .await;

    // The operator changes the rate: the sale has it, the log says who did.
    browser.type_into("#rate", "321").await;
    browser.click("#rate-form button").await;
    browser
        .wait_for_text("#audit", 10, |log| {
            log.contains("alice · admission.update") && log.contains(r#""rate_per_second":321"#)
        })
        .await;
    let rate: i32 = sqlx::query_scalar("SELECT rate_per_second FROM sales WHERE id = 'console'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(rate, 321);

    // The controller, turned on from the console: its decisions arrive in the log.
    browser.type_into("#c-min", "100").await;
    browser.type_into("#c-max", "1000").await;
    browser.type_into("#c-step", "25").await;
    browser.click("#controller-form button[type=submit]").await;
    browser
        .wait_for_text("#figures", 10, |f| f.contains("100–1000 (step 25)"))
        .await;
    browser
        .wait_for_text("#audit", 20, |log| {
            log.contains("controller · admission.controller")
        })
        .await;
    // With `SCREENSHOTS_DIR=<dir>`, the README's picture of the console.
    if let Ok(dir) = std::env::var("SCREENSHOTS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        browser.eval("window.scrollTo(0, 0); return true;").await;
        std::fs::write(format!("{dir}/console.png"), browser.screenshot().await).unwrap();
    }
    browser.quit().await;
    stack.stop().await;
}
