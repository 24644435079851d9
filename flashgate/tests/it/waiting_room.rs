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
        .wait_for("#status[data-status=payment_pending]", 30)
        .await;
    assert_eq!(browser.text("#status").await, "Awaiting payment");
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
    assert_eq!(browser.text("#status").await, "Awaiting payment");

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

/// The page in German (chosen on the page) and in Japanese (from `Accept-Language`):
/// the server's render and the script's updates speak the language, numbers and prices
/// in its format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waiting_room_speaks_german_and_japanese() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("room-i18n", json!({ "stock": 2 }))
        .await;
    let token = stack.token("room-i18n", "sprache", None).await;
    stack
        .await_ticket(&token, |t| t["status"] == "payment_pending")
        .await;

    let browser = Browser::start().await;
    browser
        .goto(&stack.door(&format!("/queue/{token}?lang=de")))
        .await;
    browser
        .wait_for("#payment-element input[name=cardnumber]", 30)
        .await;
    assert_eq!(
        browser.eval("return document.documentElement.lang;").await,
        "de"
    );
    assert_eq!(
        browser.text("#headline").await,
        "Ihr Artikel ist reserviert: Schließen Sie die Zahlung ab"
    );
    assert_eq!(browser.text("#status").await, "Zahlung ausstehend");
    assert_eq!(
        browser.text("#price").await,
        "10,00\u{a0}€",
        "German price format"
    );
    assert!(
        browser
            .text("#hold")
            .await
            .starts_with("Für Sie reserviert: noch ")
    );
    assert_eq!(browser.text("label").await.trim_end(), "Kartennummer");
    browser.quit().await;

    let page = stack
        .page(&format!("/queue/{token}"), Some("ja-JP,ja;q=0.9,en;q=0.5"))
        .await;
    assert!(page.contains(r#"<html lang="ja">"#));
    assert!(page.contains("商品を確保しました。お支払いを完了してください"));
    assert!(page.contains(">お支払い待ち<"), "status in words");
    assert!(page.contains(r#"<a aria-current="true" lang="ja">日本語</a>"#));
    stack.stop().await;
}

/// An operator brands a sale's waiting room (name, logo, colours, message) with the
/// sale's own API, no rebuild; colours that would fail WCAG AA are refused. A ticket for
/// two units shows them and the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_brands_the_waiting_room_and_colours_failing_contrast_are_refused() {
    let stack = Stack::start().await;
    let branding = json!({
        "shop_name": "Sneaker Shop",
        "logo_url": "https://cdn.example/logo.png",
        "accent_color": "#7a1fa2",
        "background_color": "#f5efe6",
        "message": "Thank you for <waiting>"
    });
    stack
        .create_sale_with("room-brand", json!({ "stock": 4, "branding": branding }))
        .await;

    let ticket: serde_json::Value = stack
        .http
        .post(stack.door("/v1/sales/room-brand/tickets"))
        .json(&json!({ "customer_id": "two-pairs", "quantity": 2 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = ticket["ticket"].as_str().unwrap().to_owned();
    stack
        .await_ticket(&token, |t| t["status"] == "payment_pending")
        .await;
    let page = stack.page(&format!("/queue/{token}"), None).await;
    assert!(page.contains(
        r#"<header class="brand"><img src="https://cdn.example/logo.png" alt="Sneaker Shop"></header>"#
    ));
    assert!(page.contains("body { background: #f5efe6 }"));
    assert!(page.contains("#pay button { background: #7a1fa2 }"));
    assert!(page.contains(r#"<p id="message">Thank you for &lt;waiting&gt;</p>"#));
    assert!(page.contains(r#"<span id="quantity">2 × </span>"#));
    assert!(page.contains("Pay 20.00 EUR"), "the total for two units");

    let refused = stack
        .put_sale(
            "room-brand",
            &json!({ "sku": "sku-room-brand", "stock": 4, "price": 1000, "currency": "eur",
                     "rate_per_second": 100, "burst": 100, "branding": { "accent_color": "#ffcc00" } }),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("WCAG AA"),
        "{problem}"
    );
    stack.stop().await;
}
