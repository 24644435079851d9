//! A shopper's whole way through the waiting room in a real browser, every state checked
//! by axe-core for serious and critical accessibility violations: queued with a position,
//! the page moving on by itself when a worker starts, the payment form, a declined card,
//! the 3-D Secure step dismissed from the keyboard, paying with the keyboard alone, paid,
//! expired, and the page in German and Japanese. With `SCREENSHOTS_DIR=<dir>` each
//! state is also saved there as a PNG (the README's screenshots are made this way; not a
//! `FLASHGATE_` name, which the worker process this test starts would take for
//! configuration and refuse).

use serde_json::json;

use crate::pay_in_page::pay_with;
use crate::support::{Browser, Processes, Role, Stack};

/// Fails on serious or critical violations; saves a screenshot when asked to.
async fn check(browser: &Browser, state: &str) {
    let serious = browser.serious_accessibility_violations().await;
    assert!(serious.is_empty(), "{state}: {serious:#?}");
    if let Ok(dir) = std::env::var("SCREENSHOTS_DIR") {
        std::fs::create_dir_all(&dir).unwrap();
        let png = browser.screenshot().await;
        std::fs::write(format!("{dir}/waiting-room-{state}.png"), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_of_the_waiting_room_passes_an_accessibility_check() {
    let browser = Browser::start().await;
    browser.resize(820, 980).await;

    // Queued: no worker runs yet, so the tickets keep their places.
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Catalog, Role::Webhook],
        None,
        |_| {},
    )
    .await;
    let branding = json!({ "shop_name": "Sneaker Shop", "accent_color": "#1d4ed8" });
    stack
        .create_sale_with("a11y-pay", json!({ "stock": 3, "branding": branding }))
        .await;
    for customer in ["first", "second"] {
        stack.token("a11y-pay", customer, None).await;
    }
    let token = stack.token("a11y-pay", "a11y-payer", None).await;
    browser.goto(&stack.door(&format!("/queue/{token}"))).await;
    browser
        .wait_for_text("#headline", 10, |h| h == "You are number 3 in the queue")
        .await;
    let title = browser.eval("return document.title;").await;
    assert_eq!(title, "#3 · Waiting room");
    // The checker itself finds what it should: an image without a text alternative.
    browser
        .eval(
            "var i = document.createElement('img'); i.id = 'bad'; i.src = 'data:,';
               document.querySelector('main').appendChild(i); return true;",
        )
        .await;
    let found = browser.accessibility_violations().await;
    assert!(
        found.iter().any(|v| v["id"] == "image-alt"),
        "axe runs and finds a missing alt: {found:?}"
    );
    browser
        .eval("document.getElementById('bad').remove(); return true;")
        .await;
    check(&browser, "queued").await;

    // The queue moves: the first ticket is served (the sale's served count in Redis, as
    // a worker's batch writes it), and the page shows the new place by itself.
    let redis = flashgate_common::live::Redis::connect(&stack.config.redis).unwrap();
    let sale = flashgate_common::domain::SaleId::parse("a11y-pay").unwrap();
    let _: () = redis::cmd("HSET")
        .arg(redis.keys().terms(&sale))
        .arg("decided")
        .arg(1)
        .query_async(&mut redis.conn())
        .await
        .unwrap();
    browser
        .wait_for_text("#headline", 10, |h| h == "You are number 2 in the queue")
        .await;
    assert_eq!(
        browser.eval("return document.title;").await,
        "#2 · Waiting room"
    );

    // A worker starts: the page moves on by itself to the payment form.
    let _worker = stack.spawn_worker();
    browser
        .wait_for("#payment-element input[name=cardnumber]", 30)
        .await;
    check(&browser, "payment").await;

    pay_with(&browser, "4000 0000 0000 0002").await;
    browser
        .wait_for_text("#pay-error", 20, |e| !e.is_empty())
        .await;
    check(&browser, "declined").await;

    pay_with(&browser, "4000 0027 6000 3184").await;
    browser.wait_for("iframe[title='3D Secure']", 20).await;
    check(&browser, "authentication").await;
    // Dismissed from the keyboard (Escape): the shopper is told, and tries again.
    browser.press("\u{E00C}").await;
    browser
        .wait_for_text("#pay-error", 20, |e| e.contains("unable to authenticate"))
        .await;

    // Paid from the keyboard alone: Tab from the top of the page into the form, type,
    // Tab to the button, Enter.
    browser.goto(&stack.door(&format!("/queue/{token}"))).await;
    browser
        .wait_for("#payment-element input[name=cardnumber]", 30)
        .await;
    browser
        .press("\u{E004}4242424242424242\u{E004}1234\u{E004}123\u{E004}\u{E007}")
        .await;
    browser.wait_for("#status[data-status=paid]", 30).await;
    check(&browser, "paid").await;

    stack
        .create_sale_with("a11y-expire", json!({ "stock": 1, "hold_seconds": 5 }))
        .await;
    let late = stack.token("a11y-expire", "a11y-late", None).await;
    browser
        .goto(&stack.door(&format!("/queue/{late}?lang=de")))
        .await;
    browser
        .wait_for("#payment-element input[name=cardnumber]", 30)
        .await;
    check(&browser, "payment-de").await;
    browser.wait_for("#status[data-status=expired]", 30).await;
    check(&browser, "expired-de").await;

    browser
        .goto(&stack.door(&format!("/queue/{token}?lang=ja")))
        .await;
    browser.wait_for("#status[data-status=paid]", 30).await;
    assert_eq!(browser.text("#status").await, "支払い済み");
    check(&browser, "paid-ja").await;
    browser.quit().await;
    stack.stop().await;
}
