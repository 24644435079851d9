//! Refunds: only of succeeded PaymentIntents, never beyond what was received.

use std::collections::HashMap;

use stripe_core::PaymentIntent;
use stripe_core::RefundReason;
use stripe_core::refund::{CreateRefund, CreateRefundReason, RetrieveRefund};
use stripe_webhook::EventObject;

use crate::support::{TestApp, code, create_order, stripe_error};

async fn paid(app: &TestApp, amount: i64, order: &str) -> PaymentIntent {
    create_order(amount, order)
        .payment_method("pm_card_visa")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refund_defaults_to_the_whole_amount_and_emits_refund_created() {
    let mut app = TestApp::spawn().await;
    let payment_intent = paid(&app, 1800, "o-r1").await;
    app.sink.events(2).await;

    let refund = CreateRefund::new()
        .payment_intent(payment_intent.id.as_str())
        .reason(CreateRefundReason::RequestedByCustomer)
        .metadata(HashMap::from([("ticket".to_owned(), "t-1".to_owned())]))
        .send(&app.client)
        .await
        .unwrap();
    assert!(refund.id.as_str().starts_with("re_"));
    assert_eq!(refund.amount, 1800);
    assert_eq!(refund.status.as_deref(), Some("succeeded"));
    assert_eq!(refund.reason, Some(RefundReason::RequestedByCustomer));
    assert_eq!(
        refund.payment_intent.as_ref().unwrap().id(),
        &payment_intent.id
    );

    let fetched = RetrieveRefund::new(refund.id.clone())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(fetched.metadata.unwrap()["ticket"], "t-1");

    let event = app.sink.next().await.event();
    let EventObject::RefundCreated(created) = event.data.object else {
        panic!("expected refund.created")
    };
    assert_eq!((created.id, created.amount), (refund.id, 1800));
}

#[tokio::test]
async fn partial_refunds_stop_at_the_amount_received() {
    let app = TestApp::spawn().await;
    let payment_intent = paid(&app, 1000, "o-r2").await;
    let refund = |amount: i64| {
        CreateRefund::new()
            .payment_intent(payment_intent.id.as_str())
            .amount(amount)
    };

    assert_eq!(refund(300).send(&app.client).await.unwrap().amount, 300);
    let (error, status) = stripe_error(refund(701).send(&app.client).await);
    assert_eq!(
        (status, code(&error)),
        (400, "charge_already_refunded".to_owned())
    );
    assert_eq!(refund(700).send(&app.client).await.unwrap().amount, 700);
    let (error, _) = stripe_error(
        CreateRefund::new()
            .payment_intent(payment_intent.id.as_str())
            .send(&app.client)
            .await,
    );
    assert_eq!(code(&error), "charge_already_refunded");
}

#[tokio::test]
async fn refunding_an_unpaid_or_unknown_payment_intent_is_refused() {
    let app = TestApp::spawn().await;
    let unpaid = create_order(1000, "o-r3").send(&app.client).await.unwrap();
    let (error, status) = stripe_error(
        CreateRefund::new()
            .payment_intent(unpaid.id.as_str())
            .send(&app.client)
            .await,
    );
    assert_eq!(status, 400);
    assert!(
        error
            .message
            .unwrap()
            .contains("does not have a successful charge")
    );

    let (error, status) = stripe_error(
        CreateRefund::new()
            .payment_intent("pi_nope")
            .send(&app.client)
            .await,
    );
    assert_eq!((status, code(&error)), (400, "resource_missing".to_owned()));

    let (_, status) = stripe_error(RetrieveRefund::new("re_nope").send(&app.client).await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_refund_can_name_the_charge_instead() {
    let app = TestApp::spawn().await;
    let payment_intent = paid(&app, 500, "o-r4").await;
    let charge = payment_intent.latest_charge.unwrap().id().to_string();
    let refund = CreateRefund::new()
        .charge(charge.clone())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(refund.charge.unwrap().id().as_str(), charge);
    assert_eq!(refund.amount, 500);
}
