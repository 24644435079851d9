//! One idempotency chain from ticket to finalized order: exactly-once in effect although
//! every hop is at-least-once, checked in PostgreSQL and in the emulator (I2, I4).

use std::time::Duration;

use flashgate_common::testkit::ProxyMode;
use lapin::options::BasicGetOptions;
use serde_json::{Value, json};

use crate::support::{
    Role, Stack, WEBHOOK_SECRET, count, deliver, insert_reserved_order, intent_event, order_status,
    pending_order, sign, sign_at, start_behind_proxy, succeeded, wait_until,
};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_five_times_at_once_takes_effect_once() {
    let stack = Stack::start().await;
    stack.create_sale("five", 2).await;
    let (order, intent) = pending_order(&stack, "five", "ann").await;
    let event = succeeded("evt_five", &intent, &order);
    let deliveries = (0..5).map(|_| deliver(&stack, &event, Some(sign(&event, WEBHOOK_SECRET))));
    let mut outcomes = Vec::new();
    for response in futures_util::future::join_all(deliveries).await {
        assert_eq!(response.status(), 200);
        outcomes.push(
            response.json::<Value>().await.unwrap()["outcome"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "applied",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    assert_eq!(stack.terms("five").await, (2, 0, 1));
    assert_eq!(count(&stack, "SELECT count(*) FROM order_events WHERE order_id::text = $1 AND kind = 'order.paid.v1'", &order).await, 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_payment_failed_arriving_after_success_leaves_the_order_paid() {
    let stack = Stack::start().await;
    stack.create_sale("late", 2).await;
    let (order, intent) = pending_order(&stack, "late", "bea").await;
    let success = succeeded("evt_late_ok", &intent, &order);
    assert_eq!(
        deliver(&stack, &success, Some(sign(&success, WEBHOOK_SECRET)))
            .await
            .status(),
        200
    );
    let failure = intent_event(
        "evt_late_failed",
        "payment_intent.payment_failed",
        &intent,
        &order,
        now() - 60,
    );
    let response = deliver(&stack, &failure, Some(sign(&failure, WEBHOOK_SECRET))).await;
    assert_eq!(
        response.status(),
        200,
        "a stale event is acknowledged, so Stripe stops sending it"
    );
    assert_eq!(order_status(&stack, &order).await, "paid");
    assert_eq!(stack.terms("late").await, (2, 0, 1));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_attacks_are_refused_with_400_and_change_nothing() {
    let stack = Stack::start().await;
    stack.create_sale("attack", 2).await;
    let (order, intent) = pending_order(&stack, "attack", "cal").await;
    let event = succeeded("evt_attack", &intent, &order);
    let good = sign(&event, WEBHOOK_SECRET);
    let reserialized =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&event).unwrap()).unwrap();
    let one_byte = event.replacen("1000", "1001", 1);
    let signed_at = |t: i64| sign_at(&event, WEBHOOK_SECRET, t);
    let cases = [
        ("missing header", event.clone(), None),
        ("v0 only", event.clone(), Some(good.replace("v1=", "v0="))),
        ("one byte changed", one_byte, Some(good.clone())),
        ("re-serialized JSON", reserialized, Some(good.clone())),
        (
            "stale timestamp",
            event.clone(),
            Some(signed_at(now() - 400)),
        ),
        (
            "future timestamp",
            event.clone(),
            Some(signed_at(now() + 400)),
        ),
    ];
    for (case, body, signature) in cases {
        let response = deliver(&stack, &body, signature).await;
        assert_eq!(response.status(), 400, "{case}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            "invalid_signature",
            "{case}"
        );
    }
    assert_eq!(order_status(&stack, &order).await, "payment_pending");
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM stripe_events WHERE payment_intent_id = $1",
            &intent
        )
        .await,
        0
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_before_its_order_is_committed_is_refused_so_stripe_retries_then_applied() {
    let stack = Stack::start().await;
    stack.create_sale("early", 2).await;
    let order = uuid::Uuid::now_v7();
    let event = succeeded("evt_early", "pi_early", &order.to_string());
    let refused = deliver(&stack, &event, Some(sign(&event, WEBHOOK_SECRET))).await;
    assert_eq!(refused.status(), 409);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "payment_intent_unknown"
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM stripe_events WHERE id = $1",
            "evt_early"
        )
        .await,
        0,
        "not recorded, so the retry counts"
    );
    insert_reserved_order(&stack, "early", order).await;
    let retried = deliver(&stack, &event, Some(sign(&event, WEBHOOK_SECRET))).await;
    assert_eq!(retried.json::<Value>().await.unwrap()["outcome"], "applied");
    assert_eq!(order_status(&stack, &order.to_string()).await, "paid");
    assert_eq!(stack.terms("early").await, (2, 0, 1));
    stack.stop().await;
}

/// A shopper confirms in the browser while no webhook ever arrives, and the hold (5 s)
/// runs out: the hold sweep asks Stripe before giving the unit back, finds the payment
/// succeeded, and sells the unit. The shopper is never told `expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_racing_the_hold_expiry_is_resolved_with_stripe_before_the_unit_is_resold() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("race", json!({ "stock": 1, "hold_seconds": 5 }))
        .await;
    stack.faults(json!({ "webhook_drop": true })).await;
    let token = stack.token("race", "slow-buyer", None).await;
    let (pending, _) = stack
        .await_ticket(&token, |t| t["status"] == "payment_pending")
        .await;
    stack.pay_in_browser(&pending["payment"]).await;
    let (done, seen) = stack
        .await_ticket(&token, |t| t["status"] != "payment_pending")
        .await;
    assert_eq!(done["status"], "paid", "statuses seen: {seen:?}");
    assert_eq!(stack.terms("race").await, (1, 0, 1));
    stack.assert_invariants("race", Some(1)).await;
    stack.stop().await;
}

/// The emulator's issue 12 scenario: a saved card, no webhook ever, a 5 s hold. The create
/// call itself answered `succeeded`: that is a success, sold at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_webhook_never_arrives_ends_paid_not_expired() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("nohook", json!({ "stock": 1, "hold_seconds": 5 }))
        .await;
    stack.faults(json!({ "webhook_drop": true })).await;
    let token = stack
        .token("nohook", "saved-card", Some("pm_card_visa"))
        .await;
    let done = stack.await_final(&token).await;
    assert_eq!(done["status"], "paid");
    let order = done["order_id"].as_str().unwrap();
    assert_eq!(stack.intents_of(order).await[0]["status"], "succeeded");
    assert_eq!(stack.terms("nohook").await, (1, 0, 1));
    stack.assert_invariants("nohook", Some(1)).await;
    stack.stop().await;
}

/// A stack whose maintenance loop runs once at start and then only when the test drives
/// it, so a declined order's PaymentIntent stays uncanceled long enough to be paid.
async fn stack_without_sweeps() -> Stack {
    Stack::start_with(|c| c.worker.sweep_interval_ms = 3_600_000).await
}

/// An order declined at once (saved card refused); returns its ticket and PaymentIntent.
async fn declined(stack: &Stack, sale: &str, customer: &str) -> (String, String) {
    let token = stack
        .token(sale, customer, Some("pm_card_chargeDeclined"))
        .await;
    let failed = stack.await_final(&token).await;
    assert_eq!(failed["status"], "failed");
    let intent = &stack.intents_of(failed["order_id"].as_str().unwrap()).await[0];
    (token, intent["id"].as_str().unwrap().to_owned())
}

/// Pays a declined PaymentIntent with another card (as a shopper retrying in Stripe's
/// page would) before flashgate canceled it.
async fn pay_again(stack: &Stack, intent: &str) {
    let confirmed = stack
        .http
        .post(stack.stripe(&format!("/v1/payment_intents/{intent}/confirm")))
        .bearer_auth("sk_test_flashgate")
        .form(&[("payment_method", "pm_card_visa")])
        .send()
        .await
        .unwrap();
    assert!(
        confirmed.status().is_success(),
        "{}",
        confirmed.text().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_settles_a_failed_order_whose_payment_intent_succeeded_later() {
    let stack = stack_without_sweeps().await;
    stack.create_sale("late", 1).await;
    stack.faults(json!({ "webhook_drop": true })).await;
    let (token, intent) = declined(&stack, "late", "second-card").await;
    pay_again(&stack, &intent).await;
    let ctx = stack.worker_context().await;
    let report = flashgate_workers::maintenance::reconcile::reconcile(&ctx, Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!((report.checked, report.applied), (1, 1), "{report:?}");
    assert_eq!(stack.poll(&token).await["status"], "paid");
    assert_eq!(
        stack.terms("late").await,
        (1, 0, 1),
        "the free unit taken back"
    );
    stack.assert_invariants("late", Some(1)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_order_paid_later_with_no_unit_left_is_refunded() {
    let stack = stack_without_sweeps().await;
    stack.create_sale("refund", 1).await;
    let (token, intent) = declined(&stack, "refund", "unlucky").await;
    let buyer: Value = stack
        .take_ticket("refund", "quick-buyer", Some("pm_card_visa"))
        .await
        .json()
        .await
        .unwrap();
    let bought = stack.await_final(buyer["ticket"].as_str().unwrap()).await;
    assert_eq!(bought["status"], "paid", "the released unit was sold again");
    pay_again(&stack, &intent).await;
    let ctx = stack.worker_context().await;
    wait_until(30, "the late payment is refunded", || async {
        flashgate_workers::maintenance::run_due(&ctx, 50)
            .await
            .unwrap();
        stack.poll(&token).await["status"] == "refunded"
    })
    .await;
    let refunds: Value = stack
        .http
        .get(stack.stripe("/v1/events?type=refund.created"))
        .bearer_auth("sk_test_refund_check")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refunded = refunds["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["object"]["payment_intent"] == intent.as_str())
        .count();
    assert_eq!(refunded, 1, "one refund for the late payment");
    assert_eq!(stack.terms("refund").await, (1, 0, 1));
    stack.assert_invariants("refund", Some(2)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unreadable_payment_intent_does_not_wedge_reconciliation() {
    let stack = stack_without_sweeps().await;
    stack.create_sale("wedge", 2).await;
    stack.faults(json!({ "webhook_drop": true })).await;
    let mut pending = Vec::new();
    for customer in ["broken", "fine"] {
        let token = stack.token("wedge", customer, None).await;
        let (seen, _) = stack
            .await_ticket(&token, |t| t["status"] == "payment_pending")
            .await;
        pending.push((token, seen));
    }
    let broken = pending[0].1["order_id"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .unwrap();
    sqlx::query(
        "UPDATE orders SET payment_intent_id = 'pi_unknown_to_stripe', updated_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(broken)
    .execute(&stack.pool)
    .await
    .unwrap();
    stack.pay_in_browser(&pending[1].1["payment"]).await;
    let ctx = stack.worker_context().await;
    let report = flashgate_workers::maintenance::reconcile::reconcile(&ctx, Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(
        (report.checked, report.applied, report.failed),
        (2, 1, 1),
        "{report:?}"
    );
    assert_eq!(stack.poll(&pending[1].0).await["status"], "paid");
    stack.stop().await;
}

/// Buys one unit while the next `lost` Stripe answers are dropped after the effect, and
/// checks the order ends paid with exactly one PaymentIntent ever created. (The retry is
/// answered from the first result, unless the success webhook settled the order first.)
async fn pay_through_lost_answers(sale: &str, lost: u32, retry_budget_ms: u64) {
    let (stack, sim, proxy) = start_behind_proxy(&Role::ALL, |c| {
        c.worker.stripe_retry_budget_ms = retry_budget_ms
    })
    .await;
    stack.create_sale(sale, 2).await;
    proxy.set(ProxyMode::DropAnswers(lost));
    let token = stack.token(sale, "buyer", Some("pm_card_visa")).await;
    let paid = stack.await_final(&token).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(
        sim.stats()["payment_intents"]["total"],
        1,
        "one PaymentIntent created, whatever was retried"
    );
    stack.assert_invariants(sale, Some(1)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stripe_answer_is_retried_with_the_same_key_and_makes_one_payment_intent() {
    pay_through_lost_answers("lost", 1, 30_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_stripe_call_and_the_commit_leaves_one_payment_intent() {
    // A retry budget too short to retry in place: each lost answer ends the attempt with
    // nothing stored, like a crash, and the payment task is redelivered.
    pay_through_lost_answers("crashy", 3, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_rate_limits_and_server_errors_are_retried_with_the_same_key() {
    let stack = Stack::start().await;
    stack.create_sale("busy", 2).await;
    stack
        .faults(json!({ "rate_limit_next": 2, "server_error_next": 1 }))
        .await;
    let token = stack.token("busy", "fay", Some("pm_card_visa")).await;
    let paid = stack.await_final(&token).await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(
        stack
            .intents_of(paid["order_id"].as_str().unwrap())
            .await
            .len(),
        1
    );
    stack.assert_invariants("busy", Some(1)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_paying_one_order_at_once_make_one_payment_intent() {
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Webhook, Role::Catalog],
        None,
        |_| {},
    )
    .await;
    stack.create_sale("twin", 2).await;
    let order = uuid::Uuid::now_v7();
    insert_reserved_order(&stack, "twin", order).await;
    stack.faults(json!({ "latency_ms": 300 })).await;
    let ctx = stack.worker_context().await;
    let (a, b) = tokio::join!(
        flashgate_workers::pay::intent::pay(&ctx, order),
        flashgate_workers::pay::intent::pay(&ctx, order)
    );
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(stack.intents_of(&order.to_string()).await.len(), 1);
    assert_eq!(
        order_status(&stack, &order.to_string()).await,
        "payment_pending"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_finalizes_an_order_whose_webhook_never_came() {
    let stack = Stack::start().await;
    stack.create_sale("quiet", 2).await;
    stack.faults(json!({ "webhook_drop": true })).await;
    let ticket: Value = stack
        .take_ticket("quiet", "gus", None)
        .await
        .json()
        .await
        .unwrap();
    let (pending, _) = stack
        .await_ticket(ticket["ticket"].as_str().unwrap(), |t| {
            t["status"] == "payment_pending"
        })
        .await;
    let order = pending["order_id"].as_str().unwrap().to_owned();
    stack.pay_in_browser(&pending["payment"]).await;
    assert_eq!(
        stack.intents_of(&order).await[0]["status"],
        "succeeded",
        "charged at Stripe, unknown here"
    );
    let ctx = stack.worker_context().await;
    let report = flashgate_workers::maintenance::reconcile::reconcile(&ctx, Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!((report.checked, report.applied), (1, 1));
    assert_eq!(order_status(&stack, &order).await, "paid");
    assert_eq!(
        stack.poll(ticket["ticket"].as_str().unwrap()).await["status"],
        "paid"
    );
    stack.assert_invariants("quiet", Some(1)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_is_announced_on_the_orders_exchange() {
    let stack = Stack::start().await;
    stack.create_sale("announced", 2).await;
    let token = stack.token("announced", "hal", Some("pm_card_visa")).await;
    let paid = stack.await_final(&token).await;
    let order = paid["order_id"].as_str().unwrap().to_owned();
    let amqp = stack.direct_amqp();
    let connection = amqp.connection().await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let event = crate::support::poll_until(10, "the order event is relayed", || async {
        let message = channel
            .basic_get(
                amqp.topology().orders_queue().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()?;
        Some(serde_json::from_slice::<Value>(&message.delivery.data).unwrap())
    })
    .await;
    assert_eq!(event["type"], "order.paid.v1");
    assert_eq!(event["order_id"], order.as_str());
    assert_eq!(event["amount"], 1000);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_stripes_key_memory_an_earlier_payment_intent_is_found_by_its_metadata() {
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Webhook, Role::Catalog],
        None,
        |_| {},
    )
    .await;
    stack.create_sale("memory", 2).await;
    let order = uuid::Uuid::now_v7();
    insert_reserved_order(&stack, "memory", order).await;
    // An attempt more than a day ago created a PaymentIntent, then the worker died.
    let earlier: Value = stack
        .http
        .post(stack.stripe("/v1/payment_intents"))
        .bearer_auth("sk_test_yesterday")
        .header("idempotency-key", "a-key-stripe-has-forgotten")
        .form(&[
            ("amount", "1000"),
            ("currency", "eur"),
            ("metadata[flashgate_order]", order.to_string().as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sqlx::query("UPDATE orders SET pi_requested_at = now() - interval '25 hours' WHERE id = $1")
        .bind(order)
        .execute(&stack.pool)
        .await
        .unwrap();
    let ctx = stack.worker_context().await;
    flashgate_workers::pay::intent::pay(&ctx, order)
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT payment_intent_id FROM orders WHERE id = $1")
        .bind(order)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        earlier["id"].as_str().unwrap(),
        "the earlier PaymentIntent is reused"
    );
    assert_eq!(stack.intents_of(&order.to_string()).await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_order_whose_payment_task_was_lost_is_asked_to_pay_again() {
    let stack = Stack::start().await;
    stack.create_sale("unasked", 2).await;
    // Committed, then the payment task lost (a broker blip after a wait-list promotion).
    let order = uuid::Uuid::now_v7();
    insert_reserved_order(&stack, "unasked", order).await;
    sqlx::query("UPDATE orders SET updated_at = now() - interval '2 minutes' WHERE id = $1")
        .bind(order)
        .execute(&stack.pool)
        .await
        .unwrap();
    wait_until(30, "the order is asked to pay", || async {
        order_status(&stack, &order.to_string()).await == "payment_pending"
    })
    .await;
    assert_eq!(stack.intents_of(&order.to_string()).await.len(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_hold_whose_payment_intent_stripe_does_not_know_is_released() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("ghost", json!({ "stock": 1, "hold_seconds": 5 }))
        .await;
    let token = stack.token("ghost", "ghost", None).await;
    stack
        .await_ticket(&token, |t| t["status"] == "payment_pending")
        .await;
    // Stripe has no such PaymentIntent (another account, a restored database, …).
    sqlx::query("UPDATE orders SET payment_intent_id = 'pi_stripe_never_heard_of'")
        .execute(&stack.pool)
        .await
        .unwrap();
    assert_eq!(stack.await_final(&token).await["status"], "expired");
    assert_eq!(stack.terms("ghost").await, (1, 0, 0));
    stack.stop().await;
}

/// The value of a gauge on the worker's `/metrics` (0 before it is first set).
async fn gauge(stack: &Stack, name: &str) -> f64 {
    stack.worker_metric(name).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_task_for_many_orders_holds_only_as_many_payments_as_may_run() {
    // One task names every order of a reservation batch (thousands). Each payment is a
    // large future: made all at once, a 10,000-order task grew the worker that took it by
    // about 580 MB and cost it a second of CPU (the cluster's scale-out run). Stripe hangs here,
    // so payments stay in flight and the count can be read.
    let (stack, _sim, proxy) = start_behind_proxy(&Role::ALL, |c| {
        c.worker.payment_concurrency = 2;
    })
    .await;
    stack.create_sale("many", 100).await;
    proxy.set(ProxyMode::Hang);
    let mut orders = Vec::new();
    for _ in 0..50 {
        let order = uuid::Uuid::now_v7();
        insert_reserved_order(&stack, "many", order).await;
        orders.push(order);
    }
    let amqp = stack.direct_amqp();
    flashgate_common::amqp::Publisher::new(amqp.clone())
        .publish_json(
            &amqp.topology().payments(),
            "many-orders",
            &flashgate_common::amqp::messages::PaymentMessage::Requested { order_ids: orders },
            None,
        )
        .await
        .unwrap();
    wait_until(30, "payments are in flight", || async {
        gauge(&stack, "flashgate_payments_in_flight").await > 0.0
    })
    .await;
    let in_flight = gauge(&stack, "flashgate_payments_in_flight").await;
    assert!(
        in_flight <= 2.0,
        "{in_flight} payments held at once with payment_concurrency = 2"
    );
    proxy.set(ProxyMode::Pass);
    stack.stop().await;
}

/// Shoppers with saved cards are reserved faster than Stripe takes payments (each call
/// answered 3 s late, one payment at a time, 5 s holds): the third order's payment starts
/// about 6 s after its reservation, when its hold would have run out. A hold is the
/// shopper's time to pay; these shoppers gave their card and wait on us, so the clock
/// starts when their payment is taken up, and nobody loses a unit to our own backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_card_order_waiting_for_the_workers_to_pay_keeps_its_unit() {
    let stack = Stack::start_with(|c| c.worker.payment_concurrency = 1).await;
    stack
        .create_sale_with("patient", json!({ "stock": 3, "hold_seconds": 5 }))
        .await;
    stack.faults(json!({ "latency_ms": 3000 })).await;
    let mut tokens = Vec::new();
    for shopper in ["p1", "p2", "p3"] {
        tokens.push(stack.token("patient", shopper, Some("pm_card_visa")).await);
    }
    for token in &tokens {
        let (done, seen) = stack
            .await_ticket(token, |t| {
                ["paid", "failed", "expired"].contains(&t["status"].as_str().unwrap())
            })
            .await;
        assert_eq!(done["status"], "paid", "statuses seen: {seen:?}");
    }
    stack.faults(json!({})).await;
    assert_eq!(stack.terms("patient").await, (3, 0, 3));
    stack.assert_invariants("patient", Some(3)).await;
    stack.stop().await;
}
