//! The broker and the database going away mid-sale: the workers notice, back off,
//! reconnect by themselves, and nothing is oversold or lost.

use flashgate_common::testkit::{FaultProxy, ProxyMode};
use secrecy::ExposeSecret;

use crate::support::{Stack, wait_until};

async fn publish(stack: &Stack, sale: &str, seqs: std::ops::Range<i64>) {
    let batch: Vec<_> = seqs
        .map(|seq| (seq, format!("{sale}-{seq}"), Some("pm_card_visa")))
        .collect();
    stack.publish_tickets(sale, &batch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_resume_by_themselves_after_losing_the_broker() {
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let stack = Stack::start_with(|c| c.amqp.url = url.into()).await;
    stack.create_sale("blip", 10).await;
    publish(&stack, "blip", 1..4).await;
    wait_until(30, "the first tickets are decided", || async {
        stack.decided("blip").await == 3
    })
    .await;

    proxy.set(ProxyMode::Refuse);
    wait_until(30, "the workers notice the broker is gone", || async {
        !stack.is_ready(stack.addrs.workers).await
    })
    .await;
    publish(&stack, "blip", 4..7).await;
    proxy.set(ProxyMode::Pass);
    wait_until(60, "the tickets queued meanwhile are decided", || async {
        stack.decided("blip").await == 6
    })
    .await;
    wait_until(60, "their payments go through", || async {
        stack.terms("blip").await == (10, 0, 6)
    })
    .await;
    stack.assert_invariants("blip", Some(6)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_ridden_out_and_nothing_is_lost() {
    let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let stack = Stack::start_with(|c| {
        let direct = c.database.url.expose_secret().to_owned();
        let database = direct.rsplit('/').next().unwrap().to_owned();
        c.database.url = format!("postgres://postgres@{}/{database}", proxy.addr()).into();
        c.database.acquire_timeout_ms = 500;
    })
    .await;
    stack.create_sale("dark", 50).await;
    publish(&stack, "dark", 1..201).await;
    wait_until(30, "reservations are under way", || async {
        stack.decided("dark").await > 0
    })
    .await;

    proxy.set(ProxyMode::Refuse);
    wait_until(30, "the workers notice the database is gone", || async {
        !stack.is_ready(stack.addrs.workers).await
    })
    .await;
    proxy.set(ProxyMode::Pass);
    wait_until(90, "every ticket is decided", || async {
        stack.decided("dark").await == 200
    })
    .await;
    wait_until(90, "every reserved unit is paid", || async {
        stack.terms("dark").await == (50, 0, 50)
    })
    .await;
    stack.assert_invariants("dark", Some(200)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_outage_is_waited_out_without_spending_the_delivery_limit() {
    let stack = Stack::start_with(|c| {
        // Each payment attempt gives up on Stripe fast; two deliveries and it is dead.
        c.worker.stripe_retry_budget_ms = 50;
        c.amqp.delivery_limit = 2;
    })
    .await;
    stack.create_sale("outage", 1).await;
    stack
        .faults(serde_json::json!({ "server_error_share": 1.0 }))
        .await;
    let ticket: serde_json::Value = stack
        .take_ticket("outage", "patient", Some("pm_card_visa"))
        .await
        .json()
        .await
        .unwrap();
    let stats = || async {
        let stats: serde_json::Value = stack
            .http
            .get(stack.stripe("/_sim/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["faults"]["server_errors"].as_u64().unwrap()
    };
    wait_until(
        30,
        "the payment has failed many more times than the limit",
        || async { stats().await >= 8 },
    )
    .await;
    stack.faults(serde_json::json!({})).await;
    assert_eq!(
        stack.await_final(ticket["ticket"].as_str().unwrap()).await["status"],
        "paid"
    );
    assert!(
        flashgate_workers::dlq::list(&stack.direct_amqp(), 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing dead-lettered"
    );
    stack.assert_invariants("outage", Some(1)).await;
    stack.stop().await;
}
