//! Card declines and state errors: 402 `card_error` with the decline details, and the
//! 400 `payment_intent_unexpected_state` that guards against charging twice.

use stripe::ApiErrorsType;
use stripe_core::PaymentIntentStatus;
use stripe_core::payment_intent::{CancelPaymentIntent, ConfirmPaymentIntent};
use stripe_webhook::{EventObject, EventType};

use crate::support::{TestApp, code, create_order, stripe_error};

#[tokio::test]
async fn a_declined_card_answers_402_and_emits_payment_failed() {
    let mut app = TestApp::spawn().await;
    let result = create_order(4200, "o-d1")
        .payment_method("pm_card_chargeDeclined")
        .confirm(true)
        .send(&app.client)
        .await;

    let (error, status) = stripe_error(result);
    assert_eq!(status, 402);
    assert_eq!(error.type_, ApiErrorsType::CardError);
    assert_eq!(code(&error), "card_declined");
    assert_eq!(error.decline_code.as_deref(), Some("generic_decline"));
    assert!(error.charge.as_deref().unwrap().starts_with("ch_"));
    assert_eq!(
        error
            .payment_method
            .as_ref()
            .unwrap()
            .card
            .as_ref()
            .unwrap()
            .last4,
        "0002"
    );
    let payment_intent = error.payment_intent.unwrap();
    assert_eq!(
        payment_intent.status,
        PaymentIntentStatus::RequiresPaymentMethod
    );
    let last_error = payment_intent.last_payment_error.unwrap();
    assert_eq!(last_error.decline_code.as_deref(), Some("generic_decline"));

    let mut events = app.sink.events(2).await;
    events.sort_by_key(|e| e.type_ == EventType::PaymentIntentPaymentFailed);
    let EventObject::PaymentIntentPaymentFailed(failed) = &events[1].data.object else {
        panic!(
            "expected payment_intent.payment_failed, got {:?}",
            events[1].type_
        );
    };
    assert_eq!(failed.id, payment_intent.id);
    assert_eq!(failed.metadata["order_id"], "o-d1");
    assert_eq!(
        failed
            .last_payment_error
            .as_ref()
            .unwrap()
            .decline_code
            .as_deref(),
        Some("generic_decline")
    );
    assert_eq!(app.sim.successful_charges(payment_intent.id.as_str()), 0);
}

#[tokio::test]
async fn insufficient_funds_declines_carry_their_decline_code() {
    let app = TestApp::spawn().await;
    let result = create_order(4200, "o-d2")
        .payment_method("pm_card_chargeDeclinedInsufficientFunds")
        .confirm(true)
        .send(&app.client)
        .await;
    let (error, status) = stripe_error(result);
    assert_eq!((status, code(&error)), (402, "card_declined".to_owned()));
    assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(
        error.message.as_deref(),
        Some("Your card has insufficient funds.")
    );
}

#[tokio::test]
async fn a_declined_payment_intent_can_be_confirmed_again_and_then_only_once() {
    let app = TestApp::spawn().await;
    let created = create_order(3000, "o-d3").send(&app.client).await.unwrap();
    let declined = ConfirmPaymentIntent::new(created.id.clone())
        .payment_method("pm_card_chargeDeclined")
        .send(&app.client)
        .await;
    assert_eq!(stripe_error(declined).1, 402);

    let paid = ConfirmPaymentIntent::new(created.id.clone())
        .payment_method("pm_card_visa")
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(paid.status, PaymentIntentStatus::Succeeded);
    assert!(paid.last_payment_error.is_none());

    let again = ConfirmPaymentIntent::new(created.id.clone())
        .payment_method("pm_card_visa")
        .send(&app.client)
        .await;
    let (error, status) = stripe_error(again);
    assert_eq!(
        (status, code(&error)),
        (400, "payment_intent_unexpected_state".to_owned())
    );
    assert_eq!(
        error.payment_intent.unwrap().status,
        PaymentIntentStatus::Succeeded
    );
    assert_eq!(app.sim.successful_charges(created.id.as_str()), 1);
}

#[tokio::test]
async fn confirming_or_canceling_in_the_wrong_state_is_refused() {
    let app = TestApp::spawn().await;
    let created = create_order(100, "o-d4").send(&app.client).await.unwrap();
    let no_method = ConfirmPaymentIntent::new(created.id.clone())
        .send(&app.client)
        .await;
    assert_eq!(
        code(&stripe_error(no_method).0),
        "payment_intent_unexpected_state"
    );

    CancelPaymentIntent::new(created.id.clone())
        .send(&app.client)
        .await
        .unwrap();
    let canceled = ConfirmPaymentIntent::new(created.id.clone())
        .payment_method("pm_card_visa")
        .send(&app.client)
        .await;
    let (error, status) = stripe_error(canceled);
    assert_eq!(
        (status, code(&error)),
        (400, "payment_intent_unexpected_state".to_owned())
    );

    let twice = CancelPaymentIntent::new(created.id.clone())
        .send(&app.client)
        .await;
    assert_eq!(
        code(&stripe_error(twice).0),
        "payment_intent_unexpected_state"
    );
}
