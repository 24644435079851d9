//! Tickets a shopper was told about must never be lost, whatever the live state went
//! through (issue 12): Redis losing its data, claims whose publish failed, status writes
//! arriving in any order.

use std::collections::HashMap;

use flashgate_common::domain::{SaleId, TicketStatus};
use flashgate_common::live::Redis;
use flashgate_common::live::tickets::StatusUpdate;
use flashgate_common::testkit::{FaultProxy, ProxyMode};
use serde_json::Value;

use crate::support::{Stack, poll_until, wait_until};

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
