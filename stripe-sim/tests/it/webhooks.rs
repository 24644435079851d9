//! Webhook delivery: every event type arrives signed as Stripe signs it and parses with
//! async-stripe's webhook types; failed deliveries are retried with the same body.

use std::collections::HashMap;
use std::time::Duration;

use stripe_core::payment_intent::{CancelPaymentIntent, RetrievePaymentIntent};
use stripe_core::refund::CreateRefund;
use stripe_webhook::{Event, EventObject};

use crate::support::{PATIENCE, Sink, TestApp, create_order};

fn find<'a>(events: &'a [Event], kind: &str) -> &'a Event {
    events
        .iter()
        .find(|e| e.type_.as_str() == kind)
        .unwrap_or_else(|| panic!("no {kind} event"))
}

#[tokio::test]
async fn every_emitted_event_type_arrives_signed_and_parses_with_its_typed_object() {
    let mut app = TestApp::spawn().await;
    let paid = create_order(2000, "w-1")
        .payment_method("pm_card_visa")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();
    let _ = create_order(3000, "w-2")
        .payment_method("pm_card_chargeDeclined")
        .confirm(true)
        .send(&app.client)
        .await;
    let open = create_order(4000, "w-3").send(&app.client).await.unwrap();
    CancelPaymentIntent::new(open.id.clone())
        .send(&app.client)
        .await
        .unwrap();
    let refund = CreateRefund::new()
        .payment_intent(paid.id.as_str())
        .amount(500)
        .send(&app.client)
        .await
        .unwrap();

    let events = app.sink.events(7).await;
    let EventObject::PaymentIntentSucceeded(succeeded) =
        &find(&events, "payment_intent.succeeded").data.object
    else {
        panic!()
    };
    assert_eq!((&succeeded.id, succeeded.amount_received), (&paid.id, 2000));
    assert_eq!(succeeded.metadata["order_id"], "w-1");
    let EventObject::PaymentIntentPaymentFailed(failed) =
        &find(&events, "payment_intent.payment_failed").data.object
    else {
        panic!()
    };
    assert_eq!(
        (failed.amount, failed.metadata["order_id"].as_str()),
        (3000, "w-2")
    );
    let EventObject::PaymentIntentCanceled(canceled) =
        &find(&events, "payment_intent.canceled").data.object
    else {
        panic!()
    };
    assert_eq!(canceled.id, open.id);
    let EventObject::RefundCreated(refunded) = &find(&events, "refund.created").data.object else {
        panic!()
    };
    assert_eq!((&refunded.id, refunded.amount), (&refund.id, 500));
    let created: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.data.object, EventObject::PaymentIntentCreated(_)))
        .collect();
    assert_eq!(created.len(), 3);

    let first = &events[0];
    assert_eq!(
        first.api_version.as_ref().map(|v| v.as_str()),
        Some("2026-09-30.endive")
    );
    assert!(
        first
            .request
            .as_ref()
            .unwrap()
            .id
            .as_deref()
            .unwrap()
            .starts_with("req_")
    );
    assert!(!first.livemode);
}

#[tokio::test]
async fn deliveries_are_json_posts_with_a_stripe_signature() {
    let mut app = TestApp::spawn().await;
    let created = create_order(100, "w-4").send(&app.client).await.unwrap();
    let received = app.sink.next().await;
    assert_eq!(received.content_type, "application/json; charset=utf-8");
    assert!(received.signature.starts_with("t=") && received.signature.contains(",v1="));
    let event = received.event();
    assert_eq!(event.pending_webhooks, 1);
    let EventObject::PaymentIntentCreated(object) = event.data.object else {
        panic!()
    };
    assert_eq!(object.id, created.id);
    assert!(app.sim.wait_for_delivery(event.id.as_str(), PATIENCE).await);
}

#[tokio::test]
async fn a_failing_endpoint_gets_the_same_event_until_it_answers_2xx() {
    let mut app = TestApp::spawn().await;
    app.sink.answer_next(&[500, 500]);
    create_order(100, "w-5").send(&app.client).await.unwrap();

    let deliveries = [
        app.sink.next().await,
        app.sink.next().await,
        app.sink.next().await,
    ];
    let id = deliveries[0].event().id;
    for delivery in &deliveries {
        assert_eq!(
            delivery.body, deliveries[0].body,
            "body must be byte-identical"
        );
        assert_eq!(delivery.event().id, id);
    }
    assert!(app.sim.wait_for_delivery(id.as_str(), PATIENCE).await);
    let statuses: Vec<u64> = app
        .sim
        .delivery_attempts(id.as_str())
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![500, 500, 200]);
    assert_eq!(app.sim.events()[0]["pending_webhooks"], 0);
    assert!(app.sink.quiet_for(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn deliveries_give_up_after_the_maximum_attempts() {
    let mut app = TestApp::spawn_with(|config| config.webhook_max_attempts = 2).await;
    app.sink.answer_next(&[503, 503, 503]);
    create_order(100, "w-6").send(&app.client).await.unwrap();
    app.sink.next().await;
    app.sink.next().await;
    assert!(app.sink.quiet_for(Duration::from_millis(300)).await);
    assert_eq!(app.sim.events()[0]["pending_webhooks"], 1);
    assert_eq!(app.sim.stats()["deliveries"]["abandoned"], 1);
}

#[tokio::test]
async fn an_endpoint_added_at_runtime_receives_later_events() {
    let mut app = TestApp::spawn().await;
    let mut second = Sink::start().await;
    let body = serde_json::json!({ "url": second.url, "secret": crate::support::WEBHOOK_SECRET });
    let answer = reqwest::Client::new()
        .post(app.url("/_sim/webhook_endpoints"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);

    let created = create_order(100, "w-7").send(&app.client).await.unwrap();
    let event = second.next().await.event();
    assert_eq!(event.pending_webhooks, 2);
    let EventObject::PaymentIntentCreated(object) = event.data.object else {
        panic!()
    };
    assert_eq!(object.id, created.id);
    app.sink.next().await;
    let refetched = RetrievePaymentIntent::new(created.id)
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(
        refetched.metadata,
        HashMap::from([("order_id".to_owned(), "w-7".to_owned())])
    );
}
