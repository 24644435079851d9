//! API fault switches: 429s and 500s before any effect, lost answers after the effect,
//! latency, and the `/_sim/faults` control.

use std::time::{Duration, Instant};

use flashgate_stripe_sim::Faults;
use stripe::{ApiErrorsType, IdempotencyKey, RequestStrategy, StripeRequest};
use stripe_core::payment_intent::RetrievePaymentIntent;

use crate::support::{SECRET_KEY, TestApp, code, create_order, stripe_error};

#[tokio::test]
async fn rate_limit_and_server_error_faults_answer_before_any_effect() {
    let app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        rate_limit_next: 1,
        server_error_next: 1,
        ..Faults::default()
    });

    let (error, status) = stripe_error(create_order(100, "f-1").send(&app.client).await);
    assert_eq!(status, 429);
    assert_eq!(
        error.type_,
        ApiErrorsType::Unknown("rate_limit_error".into())
    );
    assert_eq!(code(&error), "rate_limit");
    let (error, status) = stripe_error(create_order(100, "f-1").send(&app.client).await);
    assert_eq!((status, error.type_), (500, ApiErrorsType::ApiError));

    assert!(
        app.sim
            .payment_intents_with_metadata("order_id", "f-1")
            .is_empty()
    );
    assert!(create_order(100, "f-1").send(&app.client).await.is_ok());
    assert_eq!(app.sim.faults().rate_limit_next, 0);
}

#[tokio::test]
async fn a_share_of_one_fails_reads_too() {
    let app = TestApp::spawn().await;
    let created = create_order(100, "f-2").send(&app.client).await.unwrap();
    app.sim.set_faults(Faults {
        server_error_share: 1.0,
        ..Faults::default()
    });
    let (_, status) = stripe_error(
        RetrievePaymentIntent::new(created.id)
            .send(&app.client)
            .await,
    );
    assert_eq!(status, 500);
}

#[tokio::test]
async fn a_dropped_answer_commits_and_the_retry_returns_the_saved_payment_intent() {
    let app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let request = create_order(1900, "f-3")
        .payment_method("pm_card_visa")
        .confirm(true);
    let key = || RequestStrategy::Idempotent(IdempotencyKey::new("drop-1").unwrap());

    let (error, status) = stripe_error(
        request
            .customize()
            .request_strategy(key())
            .send(&app.client)
            .await,
    );
    assert_eq!((status, error.type_), (500, ApiErrorsType::ApiError));
    let committed = app.sim.payment_intents_with_metadata("order_id", "f-3");
    assert_eq!(
        committed.len(),
        1,
        "the effect committed although the answer was lost"
    );

    let retried = request
        .customize()
        .request_strategy(key())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(retried.id.as_str(), committed[0]["id"]);
    assert_eq!(
        app.sim
            .payment_intents_with_metadata("order_id", "f-3")
            .len(),
        1
    );
    assert_eq!(app.sim.successful_charges(retried.id.as_str()), 1);
}

#[tokio::test]
async fn a_dropped_answer_says_stripe_should_retry() {
    let app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        drop_response_next: 1,
        ..Faults::default()
    });
    let answer = reqwest::Client::new()
        .post(app.url("/v1/payment_intents"))
        .bearer_auth(SECRET_KEY)
        .body("amount=100&currency=usd")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    assert_eq!(answer.headers()["stripe-should-retry"], "true");
}

#[tokio::test]
async fn latency_is_added_to_every_answer() {
    let app = TestApp::spawn().await;
    app.sim.set_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    });
    let started = Instant::now();
    create_order(100, "f-4").send(&app.client).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    let started = Instant::now();
    let _ = create_order(100, "f-4")
        .send(&app.client_with_key("sk_live_nope_nope_nope"))
        .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn faults_can_be_read_and_replaced_over_http() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let replaced = http
        .post(app.url("/_sim/faults"))
        .json(&serde_json::json!({ "rate_limit_next": 2, "webhook_duplicate": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let read: Faults = http
        .get(app.url("/_sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((read.rate_limit_next, read.webhook_duplicate), (2, true));
    assert_eq!(read.webhook_reorder_window_ms, 200);

    let invalid = http
        .post(app.url("/_sim/faults"))
        .json(&serde_json::json!({ "rate_limit_share": 2.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(app.sim.faults().rate_limit_next, 2);
}
