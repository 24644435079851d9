//! The `/_sim` control surface, the `Sim` handle, request ids and shutdown.

use std::time::Duration;

use serde_json::Value;

use crate::support::{PATIENCE, SECRET_KEY, TestApp, create_order};

#[tokio::test]
async fn stats_count_payment_intents_by_status_and_deliveries() {
    let mut app = TestApp::spawn().await;
    let paid = create_order(100, "c-1")
        .payment_method("pm_card_visa")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();
    create_order(100, "c-2").send(&app.client).await.unwrap();
    app.sink.events(3).await;
    for event in app.sim.events() {
        assert!(
            app.sim
                .wait_for_delivery(event["id"].as_str().unwrap(), PATIENCE)
                .await
        );
    }

    let stats: Value = reqwest::get(app.url("/_sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["payment_intents"]["by_status"]["succeeded"], 1);
    assert_eq!(
        stats["payment_intents"]["by_status"]["requires_payment_method"],
        1
    );
    assert_eq!(stats["events"], 3);
    assert_eq!(stats["deliveries"]["attempted"], 3);
    assert_eq!(stats["deliveries"]["succeeded"], 3);
    assert_eq!(stats["deliveries"]["pending"], 0);
    assert_eq!(app.sim.successful_charges(paid.id.as_str()), 1);
}

#[tokio::test]
async fn sim_payment_intents_filter_by_metadata_and_carry_charge_counts() {
    let app = TestApp::spawn().await;
    let paid = create_order(100, "c-3")
        .payment_method("pm_card_visa")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();
    create_order(100, "c-4").send(&app.client).await.unwrap();

    let url = app.url("/_sim/payment_intents?metadata_key=order_id&metadata_value=c-3");
    let listed: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], paid.id.as_str());
    assert_eq!(data[0]["sim_successful_charges"], 1);
    assert_eq!(
        app.sim.payment_intents_with_metadata("order_id", "c-4")[0]["sim_successful_charges"],
        0
    );
}

#[tokio::test]
async fn every_api_answer_carries_a_request_id_and_unknown_urls_get_stripes_404() {
    let app = TestApp::spawn().await;
    let answer = reqwest::Client::new()
        .get(app.url("/v1/customers"))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(
        answer.headers()["request-id"]
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let http = reqwest::Client::new();
    let wrong_method = http
        .delete(app.url("/v1/payment_intents"))
        .bearer_auth(SECRET_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 404);
    let body: Value = wrong_method.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unrecognized request URL (DELETE")
    );

    let control = reqwest::get(app.url("/_sim/stats")).await.unwrap();
    assert!(control.headers().contains_key("request-id"));

    let unauthenticated = reqwest::get(app.url("/v1/events")).await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    assert!(unauthenticated.headers().contains_key("request-id"));
}

#[tokio::test]
async fn serve_returns_once_shutdown_is_cancelled() {
    let mut app = TestApp::spawn().await;
    create_order(100, "c-5").send(&app.client).await.unwrap();
    app.shutdown.cancel();
    let served = app.served.take().unwrap();
    let result = tokio::time::timeout(PATIENCE, served)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok());
    assert!(
        tokio::time::timeout(
            Duration::from_secs(1),
            create_order(100, "c-6").send(&app.client)
        )
        .await
        .map_or(true, |r| r.is_err())
    );
}
