//! Errors other than declines: unknown objects, bad keys, invalid parameters — each
//! parses as `StripeError::Stripe` with Stripe's type, code and status.

use std::collections::HashMap;

use stripe::ApiErrorsType;
use stripe_core::payment_intent::{
    ConfirmPaymentIntent, CreatePaymentIntent, RetrievePaymentIntent,
};
use stripe_types::Currency;

use crate::support::{TestApp, code, create_order, stripe_error};

#[tokio::test]
async fn an_unknown_payment_intent_answers_404_resource_missing() {
    let app = TestApp::spawn().await;
    let (error, status) = stripe_error(
        RetrievePaymentIntent::new("pi_nope")
            .send(&app.client)
            .await,
    );
    assert_eq!((status, code(&error)), (404, "resource_missing".to_owned()));
    assert_eq!(error.type_, ApiErrorsType::InvalidRequestError);
    let (_, status) = stripe_error(ConfirmPaymentIntent::new("pi_nope").send(&app.client).await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_unknown_payment_method_answers_400_naming_it() {
    let app = TestApp::spawn().await;
    let result = create_order(100, "o-d5")
        .payment_method("pm_card_bogus")
        .confirm(true)
        .send(&app.client)
        .await;
    let (error, status) = stripe_error(result);
    assert_eq!((status, code(&error)), (400, "resource_missing".to_owned()));
    assert_eq!(error.param.as_deref(), Some("payment_method"));
    assert!(
        app.sim
            .payment_intents_with_metadata("order_id", "o-d5")
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_or_live_key_answers_401() {
    let app = TestApp::spawn().await;
    for key in ["sk_live_123456789012", "rk_test_123"] {
        let (error, status) =
            stripe_error(create_order(100, "o").send(&app.client_with_key(key)).await);
        assert_eq!(status, 401);
        assert_eq!(error.type_, ApiErrorsType::InvalidRequestError);
        assert!(error.message.unwrap().contains("Invalid API Key"));
    }
}

#[tokio::test]
async fn validation_failures_answer_400_naming_the_param() {
    let app = TestApp::spawn().await;
    let cases = [
        (CreatePaymentIntent::new(0, Currency::USD), "amount"),
        (
            CreatePaymentIntent::new(100, Currency::Unknown("dollars".into())),
            "currency",
        ),
        (
            create_order(100, "o").metadata(HashMap::from([("k".repeat(41), "v".to_owned())])),
            "metadata",
        ),
    ];
    for (request, param) in cases {
        let (error, status) = stripe_error(request.send(&app.client).await);
        assert_eq!(status, 400);
        assert!(
            error.param.as_deref().unwrap().starts_with(param),
            "{param}: {error:?}"
        );
    }
    assert!(app.sim.events().is_empty());
}
