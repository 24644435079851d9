//! Passes: a shopper holding a unit gets a token the shop's checkout verifies offline with
//! the door's published keys; nobody else gets one.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::SecretString;
use serde_json::Value;

use crate::support::Stack;

/// The door's Ed25519 pass key (PKCS#8 DER, base64), for this test only.
const PASS_KEY: &str = "MC4CAQAwBQYDK2VwBCIEIGx3JRALoguMUMIp1OXguaA1Jmeb44qYTrEVcoQfEDIZ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_holding_a_unit_gets_a_pass_the_shop_verifies_with_the_published_keys() {
    let stack = Stack::start_with(|c| {
        c.admission.pass.signing_key = Some(SecretString::from(PASS_KEY));
        c.admission.pass.audience = Some("https://shop.test/checkout".into());
    })
    .await;
    stack.create_sale("passes", 3).await;
    let http = reqwest::Client::new();
    let keys: JwkSet = http
        .get(stack.door("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys.keys.len(), 1);

    let ticket: Value = stack
        .take_ticket("passes", "carol", None)
        .await
        .json()
        .await
        .unwrap();
    let token = ticket["ticket"].as_str().unwrap();
    let pass_of = |token: String| {
        let http = http.clone();
        let url = stack.door(&format!("/v1/tickets/{token}/pass"));
        async move { http.get(url).send().await.unwrap() }
    };
    let (pending, _) = stack
        .await_ticket(token, |t| t["status"] == "payment_pending")
        .await;
    let answer = pass_of(token.to_owned()).await;
    assert_eq!(answer.status(), 200);
    let answer: Value = answer.json().await.unwrap();
    let pass = answer["pass"].as_str().unwrap();

    // What the shop does, offline: the key named by the pass, EdDSA only, iss/aud/exp.
    let kid = jsonwebtoken::decode_header(pass).unwrap().kid.unwrap();
    let jwk = keys.find(&kid).expect("the pass names a published key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["flashgate"]);
    validation.set_audience(&["https://shop.test/checkout"]);
    let claims =
        jsonwebtoken::decode::<Value>(pass, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
            .expect("the pass verifies with the published key")
            .claims;
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["sale"], "passes");
    assert_eq!(claims["order"], pending["order_id"]);
    assert_eq!(claims["quantity"], 1);
    assert_eq!(claims["exp"], answer["expires_at"]);
    let hold_ends: i64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM hold_expires_at)::bigint FROM orders WHERE id = $1::uuid",
    )
    .bind(pending["order_id"].as_str().unwrap())
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert!(
        claims["exp"].as_i64().unwrap() <= hold_ends,
        "never past the hold"
    );

    // Altered claims no longer verify.
    let mut parts: Vec<String> = pass.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert!(
        jsonwebtoken::decode::<Value>(
            &parts.join("."),
            &DecodingKey::from_jwk(jwk).unwrap(),
            &validation
        )
        .is_err()
    );

    // Paid: the unit is sold, not held; no pass. A forged ticket: not found.
    stack.pay_in_browser(&pending["payment"]).await;
    assert_eq!(stack.await_final(token).await["status"], "paid");
    let after = pass_of(token.to_owned()).await;
    assert_eq!(after.status(), 409);
    assert_eq!(after.json::<Value>().await.unwrap()["code"], "no_unit_held");
    assert_eq!(pass_of("forged".into()).await.status(), 404);
    stack.stop().await;
}
