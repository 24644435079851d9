//! Shoppers known by the shop's login (`admission.identity.mode = "jwt"`): the customer is
//! the token's subject, and a script cannot hold more places by inventing names.

use flashgate_common::config::IdentityMode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{Door, crowd_from_one_address};

const ISSUER: &str = "https://login.shop.test/";
const AUDIENCE: &str = "flashgate";
const SECRET: &str = "the-login-signs-with-this";

/// An Ed25519 key of the test login (PKCS#8 DER, base64) and its public half as a JWK.
const ED_PRIVATE: &str = "MC4CAQAwBQYDK2VwBCIEIGx3JRALoguMUMIp1OXguaA1Jmeb44qYTrEVcoQfEDIZ";
const ED_PUBLIC_X: &str = "5w4Ns5MGhHIuecUaOuekJ4J1XdaqRE1_n6YYpypagm8";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600 })
}

fn hs256(claims: &Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).expect("an HS256 key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("a signed token")
}

fn eddsa(claims: &Value, kid: &str) -> String {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(ED_PRIVATE)
        .unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der)).unwrap()
}

async fn ask(door: &Door, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = door
        .http
        .post(door.url("/v1/sales/members/tickets"))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    (status, response.json().await.unwrap())
}

async fn door_with_login(
    tweak: impl FnOnce(&mut flashgate_common::config::IdentityConfig),
) -> Door {
    let door = Door::start_with(|c| {
        crowd_from_one_address(c);
        let identity = &mut c.admission.identity;
        identity.mode = IdentityMode::Jwt;
        identity.issuer = Some(ISSUER.into());
        identity.audience = Some(AUDIENCE.into());
        tweak(identity);
    })
    .await;
    assert_eq!(door.sale("members", json!({})).await.status(), 201);
    door
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_shopper_is_the_tokens_subject_and_cannot_take_a_second_place() {
    let door = door_with_login(|i| i.hs256_secret = Some(SecretString::from(SECRET))).await;
    let body = json!({ "quantity": 1 });

    let expired = json!({ "sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "exp": now() - 3600 });
    let refused = [
        (None, "no token"),
        (
            Some(hs256(&claims("alice"), "a-guessed-secret")),
            "a forged signature",
        ),
        (Some(hs256(&expired, SECRET)), "an expired token"),
        (
            Some(hs256(
                &json!({ "sub": "alice", "iss": "https://elsewhere/", "aud": AUDIENCE, "exp": now() + 600 }),
                SECRET,
            )),
            "another issuer",
        ),
        (
            Some(hs256(
                &json!({ "sub": "alice", "iss": ISSUER, "aud": "another-app", "exp": now() + 600 }),
                SECRET,
            )),
            "another audience",
        ),
        (Some("not-a-jwt".into()), "not a JWT"),
        (
            Some(hs256(&claims("no spaces allowed"), SECRET)),
            "a sub that is no customer id",
        ),
    ];
    for (token, case) in refused {
        let (status, problem) = ask(&door, token.as_deref(), body.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (401, Some("invalid_token")),
            "{case}: {problem}"
        );
    }

    let alice = hs256(&claims("alice"), SECRET);
    let (status, first) = ask(&door, Some(&alice), body.clone()).await;
    assert_eq!(status, 202, "{first}");
    // Naming herself changes nothing; naming anyone else is refused, so a script holding
    // one login holds one place however many names it invents.
    let (status, again) = ask(
        &door,
        Some(&alice),
        json!({ "customer_id": "alice", "quantity": 1 }),
    )
    .await;
    assert_eq!((status, &again["ticket"]), (200, &first["ticket"]));
    for invented in ["alice-2", "bob", "mallory"] {
        let (status, problem) = ask(
            &door,
            Some(&alice),
            json!({ "customer_id": invented, "quantity": 1 }),
        )
        .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("customer_mismatch")),
            "{invented}"
        );
    }
    let bob = hs256(&claims("bob"), SECRET);
    let (status, other) = ask(&door, Some(&bob), body).await;
    assert_eq!(status, 202, "{other}");
    assert_ne!(other["ticket"], first["ticket"]);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_the_logins_jwks_verify_its_tokens_and_no_other_algorithm_is_taken() {
    let jwks = json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": "login-2026",
                                  "use": "sig", "x": ED_PUBLIC_X }] });
    let dir = std::env::temp_dir().join(format!("flashgate-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let door = door_with_login(|i| i.jwks_file = Some(file.clone())).await;
    let body = json!({ "quantity": 1 });

    let (status, ticket) = ask(
        &door,
        Some(&eddsa(&claims("carol"), "login-2026")),
        body.clone(),
    )
    .await;
    assert_eq!(status, 202, "{ticket}");
    for (token, case) in [
        (
            eddsa(&claims("dave"), "a-retired-key"),
            "a key the JWKS does not hold",
        ),
        // No HS256 secret is configured: a token signed with the public key as an HMAC
        // secret (the classic algorithm confusion) must not pass.
        (
            hs256(&claims("dave"), ED_PUBLIC_X),
            "HS256 with no secret configured",
        ),
    ] {
        let (status, problem) = ask(&door, Some(&token), body.clone()).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (401, Some("invalid_token")),
            "{case}: {problem}"
        );
    }
    door.stop().await;
    std::fs::remove_dir_all(dir).ok();
}

/// 800 signed-in shoppers behind one address (a carrier-grade NAT) all get a ticket and
/// a position at once under the default limits (with the address limit of identity mode
/// `none`, 20/s and a burst of 60, most would wait their turn at the address), while one
/// script with one token is held to the per-customer limit and its one ticket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_behind_one_address_is_served_and_one_token_cannot_flood() {
    let door = Door::start_with(|c| {
        let identity = &mut c.admission.identity;
        identity.mode = IdentityMode::Jwt;
        identity.issuer = Some(ISSUER.into());
        identity.audience = Some(AUDIENCE.into());
        identity.hs256_secret = Some(SecretString::from(SECRET));
        // 800 at once are past the door's own pacing (`backpressure.rs` tests it): here
        // only the address and customer limits are asked about.
        c.admission.pace_above_pending = 0;
    })
    .await;
    assert_eq!(
        door.sale("members", json!({ "stock": 1000 }))
            .await
            .status(),
        201
    );
    let tokens: Vec<String> = (0..800)
        .map(|i| hs256(&claims(&format!("shopper-{i}")), SECRET))
        .collect();
    let body = json!({ "quantity": 1 });
    let answers =
        futures_util::future::join_all(tokens.iter().map(|t| ask(&door, Some(t), body.clone())))
            .await;
    let mut positions = std::collections::BTreeSet::new();
    for (status, answer) in &answers {
        assert_eq!(*status, 202, "{answer}");
        positions.insert(answer["position"].as_i64().unwrap());
    }
    assert_eq!(
        positions.len(),
        800,
        "each shopper has a place of their own"
    );

    let script = hs256(&claims("one-script"), SECRET);
    let answers =
        futures_util::future::join_all((0..100).map(|_| ask(&door, Some(&script), body.clone())))
            .await;
    let tickets: std::collections::BTreeSet<_> = answers
        .iter()
        .filter(|(status, _)| *status < 300)
        .map(|(_, answer)| answer["ticket"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tickets.len(), 1, "one ticket however often it asks");
    let limited = answers
        .iter()
        .filter(|(status, answer)| *status == 429 && answer["code"] == "too_many_requests")
        .count();
    assert!(
        limited >= 30,
        "past its burst of 60 the script is refused: {limited} of 100"
    );
    door.stop().await;
}
