//! PaymentIntent success paths: every answer parses with async-stripe's types.

use stripe_core::payment_intent::{
    CancelPaymentIntent, CancelPaymentIntentCancellationReason, ConfirmPaymentIntent,
    CreatePaymentIntentAutomaticPaymentMethods, RetrievePaymentIntent, SearchPaymentIntent,
};
use stripe_core::{PaymentIntentCancellationReason, PaymentIntentStatus};
use stripe_types::Currency;

use crate::support::{TestApp, create_order};

#[tokio::test]
async fn creating_without_a_payment_method_awaits_one() {
    let app = TestApp::spawn().await;
    let created = create_order(1500, "o-1")
        .description("2 tickets")
        .send(&app.client)
        .await
        .unwrap();

    assert!(created.id.as_str().starts_with("pi_"));
    assert_eq!(created.id.as_str().len(), 27);
    assert_eq!(created.status, PaymentIntentStatus::RequiresPaymentMethod);
    assert_eq!((created.amount, created.currency), (1500, Currency::USD));
    assert_eq!(created.metadata["order_id"], "o-1");
    assert_eq!(created.description.as_deref(), Some("2 tickets"));
    assert_eq!(created.payment_method_types, vec!["card"]);
    let secret = created.client_secret.unwrap();
    assert!(secret.starts_with(&format!("{}_secret_", created.id)));

    let fetched = RetrievePaymentIntent::new(created.id.clone())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(fetched.id, created.id);
    assert_eq!(fetched.client_secret.as_deref(), Some(secret.as_str()));
}

#[tokio::test]
async fn a_payment_intent_with_a_method_awaits_confirmation_and_confirming_charges_it() {
    let app = TestApp::spawn().await;
    let created = create_order(2500, "o-2")
        .payment_method("pm_card_visa")
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(created.status, PaymentIntentStatus::RequiresConfirmation);

    let confirmed = ConfirmPaymentIntent::new(created.id.clone())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(confirmed.status, PaymentIntentStatus::Succeeded);
    assert_eq!(confirmed.amount_received, 2500);
    assert!(
        confirmed
            .latest_charge
            .unwrap()
            .id()
            .as_str()
            .starts_with("ch_")
    );
    assert_eq!(app.sim.successful_charges(created.id.as_str()), 1);
}

#[tokio::test]
async fn creating_with_confirm_charges_a_test_card_at_once() {
    let app = TestApp::spawn().await;
    let paid = create_order(900, "o-3")
        .payment_method("pm_card_mastercard")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();

    assert_eq!(paid.status, PaymentIntentStatus::Succeeded);
    assert_eq!(paid.amount_received, 900);
    // Like Stripe, the test token becomes a real PaymentMethod id.
    let method = paid.payment_method.unwrap();
    assert!(
        method.id().as_str().starts_with("pm_") && method.id().as_str() != "pm_card_mastercard"
    );
    assert!(paid.last_payment_error.is_none());
    assert_eq!(app.sim.successful_charges(paid.id.as_str()), 1);
}

#[tokio::test]
async fn a_saved_payment_method_id_can_pay_again() {
    let app = TestApp::spawn().await;
    let first = create_order(100, "o-4")
        .payment_method("pm_card_amex")
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();
    let method = first.payment_method.unwrap().id().to_string();

    let second = create_order(200, "o-5")
        .payment_method(method)
        .confirm(true)
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(second.status, PaymentIntentStatus::Succeeded);
}

#[tokio::test]
async fn automatic_payment_methods_are_echoed() {
    let app = TestApp::spawn().await;
    let created = create_order(700, "o-6")
        .automatic_payment_methods(CreatePaymentIntentAutomaticPaymentMethods::new(true))
        .send(&app.client)
        .await
        .unwrap();
    assert!(created.automatic_payment_methods.unwrap().enabled);
}

#[tokio::test]
async fn canceling_records_when_and_why() {
    let app = TestApp::spawn().await;
    let created = create_order(1000, "o-7").send(&app.client).await.unwrap();

    let canceled = CancelPaymentIntent::new(created.id.clone())
        .cancellation_reason(CancelPaymentIntentCancellationReason::RequestedByCustomer)
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(canceled.status, PaymentIntentStatus::Canceled);
    assert!(canceled.canceled_at.is_some());
    assert_eq!(
        canceled.cancellation_reason,
        Some(PaymentIntentCancellationReason::RequestedByCustomer)
    );
}

#[tokio::test]
async fn search_finds_payment_intents_by_metadata_in_either_quote_style() {
    let app = TestApp::spawn().await;
    for order in ["o-a", "o-b", "o-b"] {
        create_order(100, order).send(&app.client).await.unwrap();
    }

    let single = SearchPaymentIntent::new("metadata['order_id']:'o-b'")
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(single.data.len(), 2);
    assert!(!single.has_more);
    assert_eq!(single.url, "/v1/payment_intents/search");
    assert!(
        single
            .data
            .iter()
            .all(|pi| pi.metadata["order_id"] == "o-b")
    );

    let double = SearchPaymentIntent::new(r#"metadata["order_id"]:"o-a""#)
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(double.data.len(), 1);
}

#[tokio::test]
async fn search_pages_newest_first() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            create_order(100, "same")
                .send(&app.client)
                .await
                .unwrap()
                .id,
        );
    }
    let query = "metadata['order_id']:'same' AND status:'requires_payment_method'";
    let first = SearchPaymentIntent::new(query)
        .limit(2)
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(
        first
            .data
            .iter()
            .map(|pi| pi.id.clone())
            .collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[1].clone()]
    );
    assert!(first.has_more);

    let page = first.next_page.unwrap();
    let rest = SearchPaymentIntent::new(query)
        .limit(2)
        .page(page)
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(rest.data.len(), 1);
    assert_eq!(rest.data[0].id, ids[0]);
}
