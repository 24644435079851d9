//! Tickets a shopper was told about must never be lost, whatever the live state went
//! through (issue 12): Redis losing its data, claims whose publish failed, status writes
//! arriving in any order.

use std::collections::HashMap;

use flashgate::stack::Role;
use flashgate_common::domain::{SaleId, TicketStatus};
use flashgate_common::live::Redis;
use flashgate_common::live::tickets::StatusUpdate;
use flashgate_common::testkit::{FaultProxy, ProxyMode};
use serde_json::Value;

use crate::support::{Processes, Stack, count, poll_until, wait_until};

/// Deletes every key of this test's Redis prefix: what a restart without persistence
/// (or `FLUSHALL`) does to the shared instance.
pub(crate) async fn lose_redis_data(stack: &Stack) {
    let redis = Redis::connect(&stack.config.redis).unwrap();
    let mut conn = redis.conn();
    let pattern = format!("{}*", stack.config.redis.prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the sale had live state to lose");
    let _: () = redis::cmd("DEL")
        .arg(&keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_loses_its_data_a_shopper_holding_a_ticket_gets_it_back_not_sold_out() {
    let stack = Stack::start().await;
    stack.create_sale("amnesia", 10).await;
    let mut finals = HashMap::new();
    for n in 0..40 {
        let customer = format!("shopper-{n}");
        let response = stack
            .take_ticket("amnesia", &customer, Some("pm_card_visa"))
            .await;
        if response.status() == 202 {
            let ticket: Value = response.json().await.unwrap();
            finals.insert(customer, ticket["ticket"].as_str().unwrap().to_owned());
        }
    }
    assert!(finals.len() >= 10, "every unit found a ticket");
    for token in finals.values_mut() {
        *token = stack.await_final(token).await["status"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    lose_redis_data(&stack).await;
    for (customer, status) in &finals {
        let again = stack
            .take_ticket("amnesia", customer, Some("pm_card_visa"))
            .await;
        assert_eq!(again.status(), 200, "{customer} holds a ticket");
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["status"], status.as_str(), "{customer}");
        let polled = stack.poll(body["ticket"].as_str().unwrap()).await;
        assert_eq!(polled["status"], status.as_str(), "{customer}");
    }
    stack.assert_invariants("amnesia", None).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_whose_publish_failed_do_not_keep_the_door_shut() {
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let stack = Stack::start_with(|c| c.amqp.url = url.into()).await;
    stack.create_sale("blocked", 10).await;
    proxy.set(ProxyMode::Refuse);
    for n in 0..30 {
        let refused = stack
            .take_ticket("blocked", &format!("early-{n}"), None)
            .await;
        assert_eq!(refused.status(), 503, "the broker is down");
    }
    proxy.set(ProxyMode::Pass);
    let ticket: Value = poll_until(30, "a new shopper is admitted", || async {
        let response = stack.take_ticket("blocked", "later", None).await;
        assert_ne!(
            response.status(),
            410,
            "told sold out with every unit unsold"
        );
        (response.status() == 202).then_some(response.json::<Value>().await.unwrap())
    })
    .await;
    stack
        .await_ticket(ticket["ticket"].as_str().unwrap(), |t| {
            t["status"] == "payment_pending"
        })
        .await;
    wait_until(10, "the sale shows no phantom queue", || async {
        let sale: Value = stack
            .http
            .get(stack.door("/v1/sales/blocked"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sale["queued"] == 0 && sale["remaining"] == 9
    })
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_status_never_turns_into_another_final_status() {
    let stack = Stack::start().await;
    stack.create_sale("final", 1).await;
    let ticket: Value = stack
        .take_ticket("final", "dee", Some("pm_card_chargeDeclined"))
        .await
        .json()
        .await
        .unwrap();
    let token = ticket["ticket"].as_str().unwrap();
    assert_eq!(stack.await_final(token).await["status"], "failed");
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tickets WHERE customer_id = 'dee'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    // A late writer (an expiry sweep that lost the race) publishes `expired`.
    let redis = Redis::connect(&stack.config.redis).unwrap();
    let sale = SaleId::parse("final").unwrap();
    redis
        .write_statuses(&[StatusUpdate::new(sale, id, TicketStatus::Expired)])
        .await
        .unwrap();
    assert_eq!(stack.poll(token).await["status"], "failed");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_unit_that_comes_back_reaches_a_shopper_who_was_turned_away() {
    let stack = Stack::start().await;
    // No `waitlist` in the request: the default.
    stack
        .create_sale_with(
            "comeback",
            serde_json::json!({ "stock": 1, "hold_seconds": 5 }),
        )
        .await;
    let holder: Value = stack
        .take_ticket("comeback", "walks-away", None)
        .await
        .json()
        .await
        .unwrap();
    let holder = holder["ticket"].as_str().unwrap().to_owned();
    stack
        .await_ticket(&holder, |t| t["status"] == "payment_pending")
        .await;
    let late = stack
        .take_ticket("comeback", "patient", Some("pm_card_visa"))
        .await;
    assert_eq!(late.status(), 202, "the unit may still come back");
    let late: Value = late.json().await.unwrap();
    assert_eq!(stack.await_final(&holder).await["status"], "expired");
    assert_eq!(
        stack.await_final(late["ticket"].as_str().unwrap()).await["status"],
        "paid",
        "the unit the expired hold released went to the shopper who waited"
    );
    stack.assert_invariants("comeback", Some(2)).await;
    stack.stop().await;
}

/// A worker context whose Redis answers until `proxy` is set to hang, and then never (its
/// replies wait far longer than any test): a step run on it commits in PostgreSQL and
/// stops at its Redis write, and aborting the step there is a worker dying between the
/// two.
async fn worker_with_redis_behind(stack: &Stack) -> (flashgate_workers::Context, FaultProxy) {
    let proxy = FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let mut config = stack.config.clone();
    config.redis.url = format!("redis://{}/0", proxy.addr());
    config.redis.response_timeout_ms = 600_000;
    let ctx = flashgate_workers::Context::connect(std::sync::Arc::new(config))
        .await
        .unwrap();
    (ctx, proxy)
}

/// Runs `step` on a worker whose Redis hangs, until `committed` says the step's change is
/// in the ledger; then the worker dies, its Redis write never made.
async fn die_after_commit<F, C, Fut>(proxy: &FaultProxy, step: F, committed: C)
where
    F: Future<Output = ()> + Send + 'static,
    C: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    proxy.set(ProxyMode::Hang);
    let step = tokio::spawn(step);
    wait_until(30, "the step commits", committed).await;
    assert!(!step.is_finished(), "the step waits on Redis when it dies");
    step.abort();
}

/// A stack without workers, a sale of one unit (`overrides` on top of the defaults), a
/// worker process (the caller kills it), and its holder's token and ticket once the
/// holder is asked to pay (`payment_pending`).
async fn held_unit(sale: &str, overrides: Value) -> (Stack, tokio::process::Child, String, Value) {
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Webhook, Role::Catalog],
        None,
        |_| {},
    )
    .await;
    stack.create_sale_with(sale, overrides).await;
    let worker = stack.spawn_worker();
    let holder = stack.token(sale, "holder", None).await;
    let (held, _) = stack
        .await_ticket(&holder, |t| t["status"] == "payment_pending")
        .await;
    (stack, worker, holder, held)
}

/// The wait-list's close commits `sold_out` for every waiting ticket, then tells Redis.
/// A worker that died between the two left Redis saying `waitlisted` for good: nothing
/// would ever change those tickets again, and a poll believes Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dying_after_closing_a_wait_list_leaves_no_shopper_waiting_for_good() {
    let (stack, mut first, _, held) = held_unit(
        "closing",
        serde_json::json!({ "stock": 1, "hold_seconds": 60, "waitlist": true }),
    )
    .await;
    let mut waiters = Vec::new();
    for n in 0..3 {
        let token = stack
            .token("closing", &format!("waiter-{n}"), Some("pm_card_visa"))
            .await;
        stack
            .await_ticket(&token, |t| t["status"] == "waitlisted")
            .await;
        waiters.push(token);
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let (ctx, proxy) = worker_with_redis_behind(&stack).await;
    // The holder pays: nothing can come back, so the next sweep closes the wait-list.
    stack.pay_in_browser(&held["payment"]).await;
    wait_until(30, "the holder's unit is sold", || async {
        stack.terms("closing").await == (1, 0, 1)
    })
    .await;
    let closed = || async {
        count(
            &stack,
            "SELECT count(*) FROM tickets WHERE sale_id = $1 AND decision = 'sold_out'",
            "closing",
        )
        .await
            == 3
    };
    die_after_commit(
        &proxy,
        async move {
            flashgate_workers::reserve::waitlist::serve(&ctx)
                .await
                .unwrap();
        },
        closed,
    )
    .await;

    let _second = stack.spawn_worker();
    for waiter in &waiters {
        assert_eq!(stack.await_final(waiter).await["status"], "sold_out");
    }
    wait_until(30, "nothing is left kept once Redis took it", || async {
        count(
            &stack,
            "SELECT count(*) FROM unpublished_tickets u JOIN tickets t ON t.id = u.ticket_id
             WHERE t.sale_id = $1",
            "closing",
        )
        .await
            == 0
    })
    .await;
    stack.assert_invariants("closing", Some(4)).await;
    stack.stop().await;
}

/// An expired hold's order is released in one commit and announced after; a worker that
/// died between the two left the shopper reading `payment_pending` for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dying_after_expiring_a_hold_leaves_no_shopper_holding_for_good() {
    let (stack, mut first, holder, _) = held_unit(
        "lapsed",
        serde_json::json!({ "stock": 1, "hold_seconds": 5, "waitlist": false }),
    )
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();

    let (ctx, proxy) = worker_with_redis_behind(&stack).await;
    wait_until(30, "the hold runs out", || async {
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE sale_id = $1 AND hold_expires_at < now()",
            "lapsed",
        )
        .await
            == 1
    })
    .await;
    let expired = || async {
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'expired'",
            "lapsed",
        )
        .await
            == 1
    };
    die_after_commit(
        &proxy,
        async move {
            // The sweep sends the hold to Stripe to be canceled, then releases it.
            flashgate_workers::maintenance::expire_holds(&ctx, 10)
                .await
                .unwrap();
            flashgate_workers::maintenance::run_due(&ctx, 10)
                .await
                .unwrap();
        },
        expired,
    )
    .await;

    let _second = stack.spawn_worker();
    assert_eq!(stack.await_final(&holder).await["status"], "expired");
    stack.assert_invariants("lapsed", Some(1)).await;
    stack.stop().await;
}

/// A shopper who confirms the payment reads its client secret from the ticket's
/// `payment_pending`, which only the commit storing the PaymentIntent announces: a
/// redelivered payment task finds the order moved on and does nothing. A worker dying
/// before its Redis write left the shopper reading `reserved`, unable to pay, until the
/// hold ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dying_after_storing_a_payment_intent_still_hands_the_shopper_its_secret() {
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Webhook, Role::Catalog],
        None,
        |_| {},
    )
    .await;
    stack
        .create_sale_with(
            "confirm",
            serde_json::json!({ "stock": 1, "hold_seconds": 60 }),
        )
        .await;
    // Stripe fails every call while the first worker runs: the order waits `reserved`.
    stack
        .faults(serde_json::json!({ "server_error_share": 1.0 }))
        .await;
    let mut first = stack.spawn_worker();
    let holder = stack.token("confirm", "holder", None).await;
    stack
        .await_ticket(&holder, |t| t["status"] == "reserved")
        .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    stack.faults(serde_json::json!({})).await;

    let order: uuid::Uuid = sqlx::query_scalar("SELECT id FROM orders WHERE sale_id = 'confirm'")
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let (ctx, proxy) = worker_with_redis_behind(&stack).await;
    let stored = || async {
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE sale_id = $1 AND status = 'payment_pending'",
            "confirm",
        )
        .await
            == 1
    };
    die_after_commit(
        &proxy,
        async move {
            flashgate_workers::pay::intent::pay(&ctx, order)
                .await
                .unwrap();
        },
        stored,
    )
    .await;

    let _second = stack.spawn_worker();
    let (ticket, _) = stack
        .await_ticket(&holder, |t| t["status"] == "payment_pending")
        .await;
    stack.pay_in_browser(&ticket["payment"]).await;
    assert_eq!(stack.await_final(&holder).await["status"], "paid");
    stack.assert_invariants("confirm", Some(1)).await;
    stack.stop().await;
}

/// The webhook commits an event's change, then tells Redis; a receiver that died between
/// the two left Redis on `payment_pending`. Stripe delivers the event again, and the
/// duplicate re-publishes the order's status; but a duplicate that met Redis away (a
/// failover, a restart) dropped its write and still answered `200`, so Stripe stopped
/// retrying and the paying shopper read `payment_pending` for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_event_meeting_redis_away_still_reaches_the_shopper() {
    use tower::ServiceExt;

    let (stack, _worker, holder, held) = held_unit(
        "echoed",
        serde_json::json!({ "stock": 1, "hold_seconds": 120 }),
    )
    .await;
    let order = held["order_id"].as_str().unwrap().to_owned();
    let intent = held["payment"]["payment_intent"].as_str().unwrap();
    let event = crate::support::succeeded("evt_echoed_1", intent, &order);
    // A receiver of its own whose Redis is `redis_url`.
    let receiver = |redis_url: String| {
        let mut config = stack.config.clone();
        config.redis.url = redis_url;
        config.redis.response_timeout_ms = 600_000;
        async move {
            let state = flashgate_webhook::AppState::connect(&config).await.unwrap();
            flashgate_webhook::routes(state, 1 << 20).api
        }
    };
    let delivery = || {
        axum::http::Request::post("/v1/stripe/webhook")
            .header("content-type", "application/json")
            .header(
                "stripe-signature",
                crate::support::sign(&event, crate::support::WEBHOOK_SECRET),
            )
            .body(axum::body::Body::from(event.clone()))
            .unwrap()
    };

    // The first delivery commits `paid` and dies before its Redis write.
    let hung = FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let first = receiver(format!("redis://{}/0", hung.addr())).await;
    let request = delivery();
    let paid = || async {
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE id::text = $1 AND status = 'paid'",
            &order,
        )
        .await
            == 1
    };
    die_after_commit(
        &hung,
        async move {
            first.oneshot(request).await.unwrap();
        },
        paid,
    )
    .await;

    // Stripe's retry reaches a receiver whose Redis is away.
    let away = FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    away.set(ProxyMode::Refuse);
    let retry = receiver(format!("redis://{}/0", away.addr()))
        .await
        .oneshot(delivery())
        .await
        .unwrap();
    assert_eq!(
        retry.status(),
        200,
        "recorded before, and the change is kept"
    );

    assert_eq!(stack.await_final(&holder).await["status"], "paid");
    assert_eq!(stack.terms("echoed").await, (1, 0, 1), "sold once");
    stack.stop().await;
}
