//! The webhook receiver: signature checks and event dedupe gate every transition; an
//! independent emulator's signed events pass the verifier and the tolerant parser.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Stack, WEBHOOK_SECRET, count, deliver, insert_reserved_order, order_status, pending_order,
    sign, succeeded,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_twice_changes_nothing_the_second_time() {
    let stack = Stack::start().await;
    stack.create_sale("dup", 2).await;
    let (order, intent) = pending_order(&stack, "dup", "erin").await;
    let event = succeeded("evt_dup_1", &intent, &order);
    let first: Value = deliver(&stack, &event, Some(sign(&event, WEBHOOK_SECRET)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["outcome"], "applied");
    assert_eq!(order_status(&stack, &order).await, "paid");
    assert_eq!(stack.terms("dup").await, (2, 0, 1));
    let second = deliver(&stack, &event, Some(sign(&event, WEBHOOK_SECRET))).await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        second.json::<Value>().await.unwrap()["outcome"],
        "duplicate"
    );
    assert_eq!(stack.terms("dup").await, (2, 0, 1), "sold once");
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM stripe_events WHERE id = $1",
            "evt_dup_1"
        )
        .await,
        1
    );
    assert_eq!(count(&stack, "SELECT count(*) FROM order_events WHERE order_id::text = $1 AND kind = 'order.paid.v1'", &order).await, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_signature_is_refused_with_400_and_changes_nothing() {
    let stack = Stack::start().await;
    stack.create_sale("forged", 2).await;
    let (order, intent) = pending_order(&stack, "forged", "frank").await;
    let event = succeeded("evt_forged_1", &intent, &order);
    for signature in [
        Some(sign(&event, "whsec_wrong")),
        None,
        Some("t=1,v1=00".into()),
    ] {
        let response = deliver(&stack, &event, signature).await;
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(order_status(&stack, &order).await, "payment_pending");
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM stripe_events WHERE id = $1",
            "evt_forged_1"
        )
        .await,
        0
    );
    assert_eq!(stack.terms("forged").await, (2, 1, 0));
    stack.stop().await;
}

/// localstripe from the test virtualenv, started fresh; killed when dropped.
struct Localstripe {
    _process: tokio::process::Child,
}

impl Localstripe {
    const BASE: &str = "http://127.0.0.1:8420";

    async fn start() -> Self {
        // The virtualenv scripts/setup makes at the workspace root. (Not a FLASHGATE_
        // variable: the binaries under test refuse unknown FLASHGATE_* settings.)
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/localstripe");
        assert!(
            binary.exists(),
            "{} is missing: run scripts/setup",
            binary.display()
        );
        let child = tokio::process::Command::new(binary)
            .arg("--from-scratch")
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("localstripe starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect("127.0.0.1:8420")
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "localstripe did not listen on 8420"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { _process: child }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_intent_succeeded_event_signed_by_localstripe_is_verified_parsed_and_applied() {
    let stack = Stack::start().await;
    stack.create_sale("peer", 1).await;
    let order = insert_reserved_order(&stack, "peer", uuid::Uuid::now_v7()).await;
    let _localstripe = Localstripe::start().await;
    let http = &stack.http;
    let hook = [
        ("url", stack.webhook()),
        ("secret", WEBHOOK_SECRET.into()),
        ("events[]", "payment_intent.succeeded".into()),
    ];
    let registered = http
        .post(format!("{}/_config/webhooks/flashgate", Localstripe::BASE))
        .form(&hook)
        .send()
        .await
        .unwrap();
    assert!(registered.status().is_success());
    let create = [
        ("amount", "1000"),
        ("currency", "eur"),
        ("metadata[flashgate_order]", order.as_str()),
        ("payment_method", "pm_card_visa"),
        ("confirm", "true"),
    ];
    let created = http
        .post(format!("{}/v1/payment_intents", Localstripe::BASE))
        .bearer_auth("sk_test_peer")
        .form(&create)
        .send()
        .await
        .unwrap();
    let intent: Value = created.json().await.unwrap();
    assert_eq!(intent["status"], "succeeded");

    let deadline = Instant::now() + Duration::from_secs(20);
    while order_status(&stack, &order).await != "paid" {
        assert!(
            Instant::now() < deadline,
            "localstripe's event was not applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (event_type, bound): (String, String) = sqlx::query_as(
        "SELECT e.type, o.payment_intent_id FROM stripe_events e JOIN orders o ON o.id = e.order_id WHERE o.id::text = $1",
    )
    .bind(&order)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(event_type, "payment_intent.succeeded");
    assert_eq!(
        bound,
        intent["id"].as_str().unwrap(),
        "the peer's PaymentIntent is bound to the order"
    );
    assert_eq!(stack.terms("peer").await, (1, 0, 1));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flashgate_does_not_act_on_are_acknowledged_and_ignored() {
    let stack = Stack::start().await;
    stack.create_sale("other", 1).await;
    let dispute = serde_json::json!({
        "id": "evt_dispute", "object": "event", "type": "charge.dispute.created", "created": chrono::Utc::now().timestamp(),
        "livemode": false, "pending_webhooks": 1, "data": { "object": { "id": "dp_1", "object": "dispute" } }
    })
    .to_string();
    let foreign = serde_json::json!({
        "id": "evt_foreign", "object": "event", "type": "payment_intent.succeeded", "created": chrono::Utc::now().timestamp(),
        "livemode": false, "pending_webhooks": 1,
        "data": { "object": { "id": "pi_not_ours", "object": "payment_intent", "status": "succeeded", "metadata": {} } }
    })
    .to_string();
    for event in [dispute, foreign] {
        let response = deliver(&stack, &event, Some(sign(&event, WEBHOOK_SECRET))).await;
        assert_eq!(
            response.status(),
            200,
            "acknowledged so Stripe stops resending"
        );
        assert_eq!(
            response.json::<Value>().await.unwrap()["outcome"],
            "ignored"
        );
    }
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM stripe_events WHERE id LIKE $1",
            "evt_%"
        )
        .await,
        0
    );
    stack.stop().await;
}
