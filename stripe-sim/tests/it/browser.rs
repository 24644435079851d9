//! Calls a shopper's browser makes as Stripe.js does: a publishable key plus the
//! PaymentIntent's client secret, with CORS.

use serde_json::Value;

use crate::support::{TestApp, create_order};

const PUBLISHABLE_KEY: &str = "pk_test_flashgate_it";

async fn confirm(app: &TestApp, id: &str, form: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let answer = reqwest::Client::new()
        .post(app.url(&format!("/v1/payment_intents/{id}/confirm")))
        .bearer_auth(PUBLISHABLE_KEY)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    let (status, headers) = (answer.status().as_u16(), answer.headers().clone());
    (status, answer.json().await.unwrap(), headers)
}

#[tokio::test]
async fn a_browser_confirms_with_a_publishable_key_and_the_client_secret() {
    let app = TestApp::spawn().await;
    let created = create_order(2200, "b-1").send(&app.client).await.unwrap();
    let secret = created.client_secret.unwrap();

    let form = format!("payment_method=pm_card_visa&client_secret={secret}");
    let (status, body, headers) = confirm(&app, created.id.as_str(), &form).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(app.sim.successful_charges(created.id.as_str()), 1);
}

#[tokio::test]
async fn a_wrong_or_missing_client_secret_is_refused() {
    let app = TestApp::spawn().await;
    let created = create_order(2200, "b-2").send(&app.client).await.unwrap();
    let wrong = format!(
        "payment_method=pm_card_visa&client_secret={}_secret_wrong",
        created.id
    );
    let (status, body, _) = confirm(&app, created.id.as_str(), &wrong).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("client_secret"))
    );

    let (status, body, _) = confirm(&app, created.id.as_str(), "payment_method=pm_card_visa").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("parameter_missing"))
    );
    assert_eq!(app.sim.successful_charges(created.id.as_str()), 0);
}

#[tokio::test]
async fn a_publishable_key_cannot_create_payment_intents() {
    let app = TestApp::spawn().await;
    let client = app.client_with_key(PUBLISHABLE_KEY);
    let (error, status) =
        crate::support::stripe_error(create_order(100, "b-3").send(&client).await);
    assert_eq!(
        (status, crate::support::code(&error)),
        (401, "secret_key_required".to_owned())
    );
}

#[tokio::test]
async fn preflight_requests_are_answered_for_any_origin() {
    let app = TestApp::spawn().await;
    let answer = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            app.url("/v1/payment_intents/pi_x/confirm"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn a_browser_retrieves_with_the_client_secret_only() {
    let app = TestApp::spawn().await;
    let created = create_order(2200, "b-4").send(&app.client).await.unwrap();
    let secret = created.client_secret.unwrap();
    let http = reqwest::Client::new();
    let url = app.url(&format!("/v1/payment_intents/{}", created.id));

    let with_secret = http
        .get(format!("{url}?client_secret={secret}"))
        .bearer_auth(PUBLISHABLE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(with_secret.status(), 200);
    let body: Value = with_secret.json().await.unwrap();
    assert_eq!(body["id"], created.id.as_str());

    let without = http
        .get(url)
        .bearer_auth(PUBLISHABLE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 400);
}

/// A card that needs 3-D Secure: the PaymentIntent waits in `requires_action` with a
/// link to the emulator's authentication page (parsed by async-stripe as Stripe's own
/// `next_action`); failing the step asks for another card, completing it charges once.
#[tokio::test]
async fn a_card_that_needs_authentication_waits_for_the_cardholder() {
    use stripe_core::PaymentIntentStatus;
    use stripe_core::payment_intent::RetrievePaymentIntent;

    let app = TestApp::spawn().await;
    let created = create_order(2200, "b-3ds").send(&app.client).await.unwrap();
    let id = created.id.as_str().to_owned();
    let secret = created.client_secret.unwrap();
    let form = format!("payment_method=pm_card_authenticationRequired&client_secret={secret}");
    let (status, body, _) = confirm(&app, &id, &form).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("requires_action"))
    );

    let parsed = RetrievePaymentIntent::new(id.as_str())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(parsed.status, PaymentIntentStatus::RequiresAction);
    let action = parsed.next_action.expect("a next action");
    assert_eq!(action.type_, "redirect_to_url");
    let url = action.redirect_to_url.and_then(|r| r.url).expect("a url");
    assert!(
        url.contains(&format!("/_sim/authenticate/{id}?client_secret=")),
        "{url}"
    );

    let http = reqwest::Client::new();
    let page = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains(r#"value="complete""#),
        "the page offers the step"
    );
    let step = |outcome: &str, secret: &str| {
        http.post(app.url(&format!("/_sim/authenticate/{id}")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("client_secret={secret}&outcome={outcome}"))
            .send()
    };
    assert_eq!(step("complete", "wrong").await.unwrap().status(), 400);
    assert_eq!(step("fail", &secret).await.unwrap().status(), 200);
    let failed = RetrievePaymentIntent::new(id.as_str())
        .send(&app.client)
        .await
        .unwrap();
    assert_eq!(failed.status, PaymentIntentStatus::RequiresPaymentMethod);
    let code = failed.last_payment_error.and_then(|e| e.code);
    assert_eq!(
        code.map(|c| c.as_str().to_owned()).as_deref(),
        Some("payment_intent_authentication_failure")
    );

    let (_, again, _) = confirm(&app, &id, &form).await;
    assert_eq!(again["status"], "requires_action");
    assert_eq!(step("complete", &secret).await.unwrap().status(), 200);
    assert_eq!(
        step("complete", &secret).await.unwrap().status(),
        400,
        "once"
    );
    assert_eq!(app.sim.successful_charges(&id), 1);
}

/// The stand-in for Stripe.js is served where a page can load it from another origin.
#[tokio::test]
async fn the_stand_in_for_stripe_js_is_served() {
    let app = TestApp::spawn().await;
    let answer = reqwest::get(app.url("/js/v3/")).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/javascript")
    );
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("window.Stripe = Stripe")
    );
}
