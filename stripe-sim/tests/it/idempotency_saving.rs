//! Which idempotent results are saved (executed ones, declines included) and which are
//! not (faults before execution, validation failures); key limits, scope and expiry.

use std::time::Duration;

use flashgate_stripe_sim::Faults;
use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_core::payment_intent::{CreatePaymentIntent, RetrievePaymentIntent};
use stripe_types::Currency;

use crate::support::{SECRET_KEY, TestApp, create_order, stripe_error};

fn once_with(key: &str) -> RequestStrategy {
    RequestStrategy::Idempotent(IdempotencyKey::new(key).unwrap())
}

#[tokio::test]
async fn a_declined_answer_is_saved_and_replayed() {
    let app = TestApp::spawn().await;
    let request = create_order(900, "i-5")
        .payment_method("pm_card_chargeDeclined")
        .confirm(true);
    let first = stripe_error(
        request
            .customize()
            .request_strategy(once_with("k-5"))
            .send(&app.client)
            .await,
    );
    let again = stripe_error(
        request
            .customize()
            .request_strategy(once_with("k-5"))
            .send(&app.client)
            .await,
    );
    assert_eq!((first.1, again.1), (402, 402));
    assert_eq!(
        first.0.payment_intent.unwrap().id,
        again.0.payment_intent.unwrap().id
    );
    assert_eq!(
        app.sim
            .payment_intents_with_metadata("order_id", "i-5")
            .len(),
        1
    );
    let failures = app
        .sim
        .events()
        .iter()
        .filter(|e| e["type"] == "payment_intent.payment_failed")
        .count();
    assert_eq!(failures, 1);
}

#[tokio::test]
async fn a_rate_limited_request_is_not_saved_so_its_retry_executes() {
    let app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        rate_limit_next: 1,
        ..Faults::default()
    });
    let request = create_order(100, "i-6");
    let (_, status) = stripe_error(
        request
            .customize()
            .request_strategy(once_with("k-6"))
            .send(&app.client)
            .await,
    );
    assert_eq!(status, 429);
    assert!(
        app.sim
            .payment_intents_with_metadata("order_id", "i-6")
            .is_empty()
    );

    let retried = request
        .customize()
        .request_strategy(once_with("k-6"))
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(
        app.sim.payment_intents_with_metadata("order_id", "i-6")[0]["id"],
        retried.id.as_str()
    );
}

#[tokio::test]
async fn a_validation_failure_is_not_saved() {
    let app = TestApp::spawn().await;
    let bad = CreatePaymentIntent::new(0, Currency::USD)
        .customize()
        .request_strategy(once_with("k-7"));
    assert_eq!(stripe_error(bad.send(&app.client).await).1, 400);
    let good = create_order(100, "i-7")
        .customize()
        .request_strategy(once_with("k-7"))
        .send(&app.client)
        .await;
    assert!(good.is_ok(), "the key must still be free: {good:?}");
}

#[tokio::test]
async fn keys_longer_than_255_characters_are_refused() {
    let app = TestApp::spawn().await;
    let answer = reqwest::Client::new()
        .post(app.url("/v1/payment_intents"))
        .bearer_auth(SECRET_KEY)
        .header("Idempotency-Key", "k".repeat(256))
        .body("amount=100&currency=usd")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn keys_are_scoped_to_the_api_key_and_expire_after_the_ttl() {
    let app = TestApp::spawn_with(|config| config.idempotency_ttl = Duration::ZERO).await;
    let other = app.client_with_key("sk_test_another_account");
    create_order(100, "i-8")
        .customize()
        .request_strategy(once_with("k-8"))
        .send(&app.client)
        .await
        .unwrap();
    create_order(200, "i-8")
        .customize()
        .request_strategy(once_with("k-8"))
        .send(&other)
        .await
        .unwrap();
    // With a zero TTL the saved result is already gone: the same request executes again.
    create_order(100, "i-8")
        .customize()
        .request_strategy(once_with("k-8"))
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(
        app.sim
            .payment_intents_with_metadata("order_id", "i-8")
            .len(),
        3
    );
}

#[tokio::test]
async fn get_requests_ignore_the_idempotency_key() {
    let app = TestApp::spawn().await;
    let a = create_order(100, "i-9").send(&app.client).await.unwrap();
    let b = create_order(100, "i-9").send(&app.client).await.unwrap();
    for id in [a.id, b.id] {
        let fetched = RetrievePaymentIntent::new(id.clone())
            .customize()
            .request_strategy(once_with("k-9"))
            .send(&app.client)
            .await;
        assert_eq!(fetched.unwrap().id, id);
    }
}
