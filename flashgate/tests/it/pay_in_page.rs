//! Paying in the waiting room, in a real browser: the page mounts the Payment Element
//! (the emulator's stand-in for Stripe.js) with the ticket's client secret, a declined
//! card leaves the unit held for another try, a card that needs 3-D Secure is confirmed
//! in a frame, a hold that runs out while the shopper authenticates is extended, and one
//! that runs out with nobody paying expires in front of the shopper.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Browser, Stack};

/// Opens the ticket's waiting room and waits for the payment form.
async fn open_payment_form(stack: &Stack, token: &str) -> Browser {
    let browser = Browser::start().await;
    browser.goto(&stack.door(&format!("/queue/{token}"))).await;
    browser
        .wait_for("#payment-element input[name=cardnumber]", 30)
        .await;
    browser
}

/// Types a test card into the Payment Element and presses Pay.
pub(crate) async fn pay_with(browser: &Browser, number: &str) {
    for (field, value) in [
        ("cardnumber", number),
        ("exp-date", "12 / 34"),
        ("cvc", "123"),
    ] {
        browser
            .type_into(&format!("#payment-element input[name={field}]"), value)
            .await;
    }
    browser.click("#pay-button").await;
}

/// Presses `outcome` (`complete` or `fail`) on the 3-D Secure page in its frame.
pub(crate) async fn authenticate(browser: &Browser, outcome: &str) {
    let frame = "iframe[title='3D Secure']";
    browser.wait_for(frame, 20).await;
    browser.enter_frame(frame).await;
    browser.click(&format!("button[value={outcome}]")).await;
    browser.leave_frame().await;
}

/// The order of the ticket the page shows, from PostgreSQL.
async fn order_of(stack: &Stack, customer: &str) -> (Uuid, String) {
    sqlx::query_as("SELECT id, status FROM orders WHERE customer_id = $1")
        .bind(customer)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_pays_in_the_page_after_a_declined_card() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("page-pay", json!({ "stock": 2 }))
        .await;
    let token = stack.token("page-pay", "page-payer", None).await;
    let browser = open_payment_form(&stack, &token).await;
    assert_eq!(browser.text("#product").await, "Test sneaker");
    assert!(
        browser.text("#hold").await.contains("left to pay"),
        "the hold counts down: {}",
        browser.text("#hold").await
    );

    // Declined: Stripe's message, and the unit stays held for another card.
    pay_with(&browser, "4000 0000 0000 0002").await;
    let error = browser
        .wait_for_text("#pay-error", 20, |e| !e.is_empty())
        .await;
    assert_eq!(error, "Your card was declined.");
    let (order, _) = order_of(&stack, "page-payer").await;
    let failed = stack.intents_of(&order.to_string()).await;
    assert_eq!(failed[0]["status"], "requires_payment_method");

    // Another card: paid, finalized by the webhook.
    pay_with(&browser, "4242 4242 4242 4242").await;
    browser.wait_for("#status[data-status=paid]", 30).await;
    assert_eq!(browser.text("#headline").await, "Paid. It's yours!");
    let (_, status) = order_of(&stack, "page-payer").await;
    assert_eq!(status, "paid");
    let intents = stack.intents_of(&order.to_string()).await;
    assert_eq!(intents.len(), 1, "one PaymentIntent: {intents:?}");
    assert_eq!(intents[0]["status"], "succeeded");
    browser.quit().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_that_needs_authentication_is_confirmed_in_a_frame() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("page-3ds", json!({ "stock": 1 }))
        .await;
    let token = stack.token("page-3ds", "page-3ds-payer", None).await;
    let browser = open_payment_form(&stack, &token).await;

    // The bank's step fails: the shopper is told and may try again.
    pay_with(&browser, "4000 0027 6000 3184").await;
    authenticate(&browser, "fail").await;
    let error = browser
        .wait_for_text("#pay-error", 20, |e| !e.is_empty())
        .await;
    assert!(error.contains("failed authentication"), "{error}");

    // Completed: paid.
    pay_with(&browser, "4000 0027 6000 3184").await;
    authenticate(&browser, "complete").await;
    browser.wait_for("#status[data-status=paid]", 30).await;
    browser.quit().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_that_runs_out_during_authentication_is_extended() {
    let stack = Stack::start_with(|c| {
        c.worker.hold_extension_secs = 4;
        c.worker.hold_extension_max_secs = 60;
    })
    .await;
    stack
        .create_sale_with("page-extend", json!({ "stock": 1, "hold_seconds": 5 }))
        .await;
    let token = stack.token("page-extend", "page-slow-payer", None).await;
    let browser = open_payment_form(&stack, &token).await;
    pay_with(&browser, "4000 0000 0000 3220").await;
    browser.wait_for("iframe[title='3D Secure']", 20).await;

    // The shopper is slow: the hold's first expiry passes, and it is extended instead
    // of canceled under them; the page shows the new time.
    let extended = |row: &(bool, String)| row.0 && row.1 == "payment_pending";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let row: (bool, String) = sqlx::query_as(
            "SELECT hold_expires_at > created_at + interval '5 seconds', status FROM orders
             WHERE customer_id = 'page-slow-payer'",
        )
        .fetch_one(&stack.pool)
        .await
        .unwrap();
        if extended(&row) {
            break;
        }
        assert_eq!(row.1, "payment_pending", "never expired under the shopper");
        assert!(
            std::time::Instant::now() < deadline,
            "the hold was never extended"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ticket: Value = stack.get_json(&format!("/v1/tickets/{token}")).await;
    assert_eq!(ticket["status"], "payment_pending");
    assert!(ticket["hold_expires_at"].is_string(), "{ticket}");

    authenticate(&browser, "complete").await;
    browser.wait_for("#status[data-status=paid]", 30).await;
    browser.quit().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_expires_in_front_of_a_shopper_who_does_not_pay() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("page-expire", json!({ "stock": 1, "hold_seconds": 5 }))
        .await;
    let token = stack.token("page-expire", "page-idle", None).await;
    let browser = open_payment_form(&stack, &token).await;
    browser.wait_for("#status[data-status=expired]", 30).await;
    assert_eq!(
        browser.text("#headline").await,
        "Your reservation expired before payment"
    );
    assert_eq!(browser.text("#hold").await, "");
    let hidden = browser
        .eval("return document.getElementById('pay').hidden;")
        .await;
    assert_eq!(hidden, Value::Bool(true), "no payment form once expired");
    browser.quit().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_page_shows_the_product_the_price_and_the_hold() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("page-plain", json!({ "stock": 1 }))
        .await;
    let token = stack.token("page-plain", "page-plain", None).await;
    stack
        .await_ticket(&token, |t| t["status"] == "payment_pending")
        .await;
    let page = stack.page(&format!("/queue/{token}"), None).await;
    assert!(page.contains(r#"<strong id="product">Test sneaker</strong>"#));
    assert!(page.contains("10.00 EUR"), "the price");
    assert!(page.contains("Held for you until "), "the hold's end");
    assert!(
        page.contains(r#"data-status="payment_pending">Awaiting payment<"#),
        "status in words"
    );
    assert!(
        page.contains(r#"<meta http-equiv="refresh""#),
        "refreshes itself"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_page_gives_its_unit_to_the_next_shopper() {
    let stack = Stack::start_with(|c| c.worker.presence_timeout_secs = 2).await;
    stack
        .create_sale_with("page-leave", json!({ "stock": 1, "hold_seconds": 600 }))
        .await;
    stack
        .create_sale_with("page-unseen", json!({ "stock": 1, "hold_seconds": 600 }))
        .await;
    // A shopper who never asks after their ticket (an API client): never seen.
    stack.token("page-unseen", "never-seen", None).await;
    let token = stack.token("page-leave", "leaver", None).await;
    let browser = open_payment_form(&stack, &token).await;
    let next = stack.token("page-leave", "next-in-line", None).await;
    stack
        .await_ticket(&next, |t| t["status"] == "waitlisted")
        .await;

    // The shopper closes the page: after the presence timeout the unit is the next one's.
    // (Nothing else may ask for the leaver's ticket meanwhile: asking is presence.)
    browser.goto("about:blank").await;
    stack
        .await_ticket(&next, |t| t["status"] == "payment_pending")
        .await;
    let left = stack.poll(&token).await;
    assert_eq!(left["status"], "expired");
    let unseen: String =
        sqlx::query_scalar("SELECT status FROM orders WHERE customer_id = 'never-seen'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(
        unseen, "payment_pending",
        "a shopper never seen keeps the hold"
    );
    browser.quit().await;
    stack.stop().await;
}
