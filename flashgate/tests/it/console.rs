//! The operators' live console in a real browser: sign in with the admin token, open a
//! sale, watch its numbers move as shoppers arrive (Server-Sent Events), change the rate
//! (audited with who, old and new, and shown in the page's log), turn the controller on
//! and see its decisions arrive in the log. The stream itself: `text/event-stream`,
//! stats first, the admin token required, `404` for no such sale. The stats' vital signs:
//! times in queue and to a final answer, payments, and the door's, the database's and
//! Stripe's latency.

use std::time::Duration;

use serde_json::json;

use crate::support::{ADMIN, Browser, Stack, wait_until};

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
        .wait_for_text("#figures", 10, |f| {
            f.contains("queue depth") && f.contains("time to final answer p50 / p99")
        })
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
        browser.resize(1200, 1500).await; // the whole Live panel, vitals included
        browser.eval("window.scrollTo(0, 0); return true;").await;
        std::fs::write(format!("{dir}/console.png"), browser.screenshot().await).unwrap();
    }
    browser.quit().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_tell_times_in_queue_and_to_an_answer_payments_and_latencies() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("vitals", json!({ "stock": 1 }))
        .await;
    let stats = || stack.admin_json("/admin/v1/sales/vitals/stats");
    let quiet = stats().await;
    assert_eq!(quiet["vitals"]["decided"], 0, "{quiet:#}");
    assert!(quiet["vitals"]["final_p99_ms"].is_null(), "{quiet:#}");
    assert!(
        quiet["vitals"]["payment_success_rate"].is_null(),
        "{quiet:#}"
    );

    // One declined (a saved card: the order fails, the unit comes back), then one paid.
    let declined = stack
        .token("vitals", "v1", Some("pm_card_chargeDeclined"))
        .await;
    assert_eq!(stack.await_final(&declined).await["status"], "failed");
    let paid = stack.token("vitals", "v2", Some("pm_card_visa")).await;
    assert_eq!(stack.await_final(&paid).await["status"], "paid");

    let v = stats().await;
    let vitals = &v["vitals"];
    assert_eq!(vitals["decided"], 2, "{v:#}");
    assert_eq!(
        (vitals["paid"].as_i64(), vitals["failed"].as_i64()),
        (Some(1), Some(1)),
        "{v:#}"
    );
    assert_eq!(vitals["expired"], 0, "{v:#}");
    assert_eq!(vitals["payment_success_rate"], 0.5, "{v:#}");
    let figure = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| panic!("no figure: {v}"));
    // Time to a final answer covers time in queue, and payment on top.
    assert!(figure(&vitals["queue_p50_ms"]) >= 0.0, "{v:#}");
    assert!(
        figure(&vitals["final_p99_ms"]) >= figure(&vitals["queue_p99_ms"]),
        "{v:#}"
    );
    let door = &v["latency"]["door"];
    assert!(
        door["calls"].as_u64().unwrap() >= 2,
        "two tickets and their polls: {v:#}"
    );
    assert_eq!(door["errors"], 0, "{v:#}");
    assert!(figure(&door["p99_ms"]) >= figure(&door["p50_ms"]), "{v:#}");
    assert!(figure(&v["latency"]["database_ms"]) > 0.0, "{v:#}");
    // The workers write their Stripe figures every two seconds.
    wait_until(10, "the workers' Stripe calls in the stats", || async {
        stats().await["latency"]["stripe"]["calls"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    })
    .await;
    // The figures are the worker process's, and the tests beside this one share it (some
    // make Stripe fail), so only their shape is this test's to check.
    let stripe = &stats().await["latency"]["stripe"];
    assert!(
        stripe["errors"].as_u64() <= stripe["calls"].as_u64(),
        "{stripe:#}"
    );
    assert!(figure(&stripe["p50_ms"]) > 0.0, "{stripe:#}");
    assert!(
        figure(&stripe["p99_ms"]) >= figure(&stripe["p50_ms"]),
        "{stripe:#}"
    );
    stack.stop().await;
}
