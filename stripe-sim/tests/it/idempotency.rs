//! Idempotency as Stripe documents it: verbatim replay, refusal of other parameters,
//! and in-flight conflicts.

use flashgate_stripe_sim::Faults;
use stripe::{ApiErrorsType, IdempotencyKey, RequestStrategy, StripeRequest};

use crate::support::{SECRET_KEY, TestApp, code, create_order, stripe_error};

fn once_with(key: &str) -> RequestStrategy {
    RequestStrategy::Idempotent(IdempotencyKey::new(key).unwrap())
}

#[tokio::test]
async fn the_same_key_and_parameters_replay_the_first_answer() {
    let app = TestApp::spawn().await;
    let request = create_order(1200, "i-1");
    let first = request
        .customize()
        .request_strategy(once_with("k-1"))
        .send(&app.client)
        .await
        .unwrap();
    let again = request
        .customize()
        .request_strategy(once_with("k-1"))
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(first.id, again.id);
    assert_eq!(
        app.sim
            .payment_intents_with_metadata("order_id", "i-1")
            .len(),
        1
    );
    assert_eq!(app.sim.stats()["idempotent_replays"], 1);
}

#[tokio::test]
async fn a_replay_is_verbatim_and_marked_idempotent_replayed() {
    let app = TestApp::spawn().await;
    let http = reqwest::Client::new();
    let send = || {
        http.post(app.url("/v1/payment_intents"))
            .bearer_auth(SECRET_KEY)
            .header("Idempotency-Key", "raw-1")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("amount=500&currency=usd&metadata[order_id]=i-2")
            .send()
    };
    let first = send().await.unwrap();
    let first_id = first.headers()["request-id"].to_str().unwrap().to_owned();
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.bytes().await.unwrap();

    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replay.headers()["original-request"].to_str().unwrap(),
        first_id
    );
    assert_eq!(replay.bytes().await.unwrap(), first_body);
}

#[tokio::test]
async fn the_same_key_with_other_parameters_is_refused_with_400() {
    let app = TestApp::spawn().await;
    create_order(100, "i-3")
        .customize()
        .request_strategy(once_with("k-3"))
        .send(&app.client)
        .await
        .unwrap();
    let other = create_order(200, "i-3")
        .customize()
        .request_strategy(once_with("k-3"))
        .send(&app.client)
        .await;
    let (error, status) = stripe_error(other);
    assert_eq!(
        (status, error.type_),
        (400, ApiErrorsType::IdempotencyError)
    );
    assert!(
        error
            .message
            .unwrap()
            .starts_with("Keys for idempotent requests can only be used with the same parameters")
    );
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_payment_intent() {
    let app = TestApp::spawn().await;
    // Latency keeps the first request executing while the others arrive.
    app.sim.set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let client = app.client.clone();
            tokio::spawn(async move {
                create_order(800, "i-4")
                    .customize()
                    .request_strategy(once_with("k-4"))
                    .send(&client)
                    .await
            })
        })
        .collect();
    let (mut ids, mut conflicts) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(payment_intent) => ids.push(payment_intent.id),
            Err(err) => {
                let (error, status) = stripe_error::<()>(Err(err));
                assert_eq!(
                    (status, error.type_.clone()),
                    (409, ApiErrorsType::IdempotencyError)
                );
                assert_eq!(code(&error), "idempotency_key_in_use");
                conflicts += 1;
            }
        }
    }
    assert!(!ids.is_empty() && conflicts >= 1);
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(
        app.sim
            .payment_intents_with_metadata("order_id", "i-4")
            .len(),
        1
    );
}
