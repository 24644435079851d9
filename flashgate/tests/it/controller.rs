//! The closed-loop admission controller against the real services: with Stripe failing,
//! reserved orders wait for their PaymentIntent, the controller sees the payment backlog
//! and cuts the door's rate (audited, with its reason and signals); once Stripe answers
//! again the backlog drains and the rate climbs back. The doors follow every change.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ADMIN, Stack};

/// The controller's audit entries for `sale`, oldest first: (old rate, new rate, reason).
async fn steered(stack: &Stack, sale: &str) -> Vec<(i64, i64, String)> {
    let rows: Vec<(Value, Value)> = sqlx::query_as(
        "SELECT old, new FROM admission_audit WHERE sale_id = $1 AND actor = 'controller' ORDER BY id",
    )
    .bind(sale)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(old, new)| {
            (
                old["rate_per_second"].as_i64().unwrap(),
                new["rate_per_second"].as_i64().unwrap(),
                new["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits up to 40 s for the controller's entries to satisfy `done`.
async fn await_steering(
    stack: &Stack,
    sale: &str,
    done: impl Fn(&[(i64, i64, String)]) -> bool,
) -> Vec<(i64, i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let entries = steered(stack, sale).await;
        if done(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "never steered as awaited: {entries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn admission(stack: &Stack, sale: &str, change: Value) -> reqwest::Response {
    stack
        .http
        .patch(stack.door(&format!("/admin/v1/sales/{sale}/admission")))
        .bearer_auth(ADMIN)
        .json(&change)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_cuts_the_rate_when_payments_back_up_and_raises_it_when_they_drain() {
    let stack = Stack::start().await;
    stack
        .create_sale_with(
            "steer",
            json!({ "stock": 50, "rate_per_second": 100, "burst": 100, "hold_seconds": 600 }),
        )
        .await;
    let refused = admission(
        &stack,
        "steer",
        json!({ "controller": { "min_rate": 500, "max_rate": 100, "step": 10 } }),
    )
    .await;
    assert_eq!(refused.status(), 422, "bounds are checked");
    let settings = json!({ "min_rate": 20, "max_rate": 400, "step": 50, "decrease_percent": 50,
                           "max_payment_backlog": 2 });
    let on = admission(&stack, "steer", json!({ "controller": settings })).await;
    assert_eq!(on.status(), 200);
    let doc: Value = on.json().await.unwrap();
    assert_eq!(doc["controller"]["step"], 50, "{doc}");
    assert_eq!(
        doc["controller"]["max_queue_wait_secs"], 30,
        "defaults filled in"
    );

    // Keeping up (nothing is happening): the rate climbs by steps.
    let climbing = await_steering(&stack, "steer", |e| !e.is_empty()).await;
    assert_eq!((climbing[0].0, climbing[0].1), (100, 150), "{climbing:#?}");
    assert!(climbing[0].2.contains("additive increase"));

    // Stripe fails every call: four reserved orders wait for their PaymentIntent.
    stack.faults(json!({ "server_error_share": 1.0 })).await;
    for shopper in ["s1", "s2", "s3", "s4"] {
        stack.token("steer", shopper, None).await;
    }
    let cut = await_steering(&stack, "steer", |e| {
        e.iter().any(|(_, _, why)| why.contains("payment backlog"))
    })
    .await;
    let (old, new, why) = cut
        .iter()
        .find(|(_, _, why)| why.contains("payment backlog"))
        .unwrap();
    assert_eq!(*new, old / 2, "halved: {why}");
    assert!(why.contains("multiplicative decrease"), "{why}");

    // Stripe is back: the PaymentIntents are made, the backlog drains, the rate climbs.
    stack.faults(json!({})).await;
    let cuts = cut.len();
    let recovered = await_steering(&stack, "steer", |e| {
        e.len() > cuts
            && e[cuts..]
                .iter()
                .any(|(_, _, why)| why.contains("additive increase"))
    })
    .await;
    let (_, last, _) = recovered.last().unwrap();
    let rate: i32 = sqlx::query_scalar("SELECT rate_per_second FROM sales WHERE id = 'steer'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert!(
        i64::from(rate) >= *last,
        "the sale's rate is the controller's"
    );

    // Off: the rate stays where the operator puts it.
    let off = admission(
        &stack,
        "steer",
        json!({ "controller": null, "rate_per_second": 77 }),
    )
    .await;
    assert_eq!(off.status(), 200);
    let doc: Value = off.json().await.unwrap();
    assert!(doc["controller"].is_null(), "{doc}");
    assert_eq!(doc["rate_per_second"], 77);
    stack.assert_invariants("steer", None).await;
    stack.stop().await;
}
