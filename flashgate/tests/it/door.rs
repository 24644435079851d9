//! Inventory-aware admission with the whole stack: the door refuses what can never be
//! served, reopens when a hold expires, and a wait-list gets the units that come back.

use flashgate_common::testkit::{FaultProxy, ProxyMode};
use serde_json::{Value, json};

use crate::support::{Stack, poll_until, wait_until};

async fn ticket(stack: &Stack, sale: &str, customer: &str, pm: Option<&str>) -> (u16, Value) {
    let response = stack.take_ticket(sale, customer, pm).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn intent_status(stack: &Stack, order: &str) -> String {
    stack.intents_of(order).await[0]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_whose_units_are_held_refuses_at_the_door_and_reopens_when_the_hold_expires() {
    let stack = Stack::start().await;
    stack
        .create_sale_with(
            "brief",
            json!({ "stock": 1, "hold_seconds": 5, "waitlist": false }),
        )
        .await;
    let (status, holder) = ticket(&stack, "brief", "holder", None).await;
    assert_eq!(status, 202);
    let holder_token = holder["ticket"].as_str().unwrap();
    let (held, _) = stack
        .await_ticket(holder_token, |t| t["status"] == "payment_pending")
        .await;
    let order = held["order_id"].as_str().unwrap().to_owned();

    let (status, refused) = ticket(&stack, "brief", "latecomer", Some("pm_card_visa")).await;
    assert_eq!(
        status, 410,
        "nothing can come of a ticket while the only unit is held: {refused}"
    );
    assert_eq!(refused["code"], "sold_out");
    assert_eq!(refused.get("ticket"), None);

    assert_eq!(stack.await_final(holder_token).await["status"], "expired");
    wait_until(
        15,
        "the expired hold's PaymentIntent is canceled",
        || async { intent_status(&stack, &order).await == "canceled" },
    )
    .await;
    let reopened = poll_until(5, "the door admits again", || async {
        let (status, body) = ticket(&stack, "brief", "latecomer", Some("pm_card_visa")).await;
        (status == 202).then_some(body)
    })
    .await;
    let paid = stack
        .await_final(reopened["ticket"].as_str().unwrap())
        .await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(stack.terms("brief").await, (1, 0, 1));
    stack.assert_invariants("brief", Some(2)).await;
    stack.stop().await;
}

/// A shopper whose waiting room polled while the unit was held (which records their
/// presence on the ticket) asks for their ticket again once paid: they get it back, paid,
/// and the sale's count of published tickets does not move. The presence field once had
/// the name of the door's "publish not yet confirmed" mark, so the door took the paid
/// ticket for an unconfirmed one, published it again, answered `202 queued` and counted
/// it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_shopper_whose_page_was_seen_gets_their_ticket_back_paid() {
    let stack = Stack::start().await;
    stack.create_sale("seen", 1).await;
    let (status, first) = ticket(&stack, "seen", "watcher", None).await;
    assert_eq!(status, 202);
    let token = first["ticket"].as_str().unwrap();
    let (pending, _) = stack
        .await_ticket(token, |t| t["status"] == "payment_pending")
        .await;
    // The page asks while the unit is held: its presence is recorded on the ticket.
    let redis = redis::Client::open("redis://127.0.0.1:6379")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pattern = format!("{}*", stack.config.redis.prefix);
    wait_until(10, "the shopper's presence is recorded", || async {
        let mut redis = redis.clone();
        stack.poll(token).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut redis)
            .await
            .unwrap();
        let mut seen = false;
        for key in keys.iter().filter(|k| k.contains(":t:")) {
            let fields: Vec<String> = redis::cmd("HKEYS")
                .arg(key)
                .query_async(&mut redis)
                .await
                .unwrap();
            seen |= fields
                .iter()
                .any(|f| f == flashgate_common::live::tickets::field::SEEN);
        }
        seen
    })
    .await;
    stack.pay_in_browser(&pending["payment"]).await;
    assert_eq!(stack.await_final(token).await["status"], "paid");
    let published = |stats: Value| stats["queue"]["issued"].as_i64().unwrap();
    let admin_stats = || stack.admin_json("/admin/v1/sales/seen/stats");
    let before = published(admin_stats().await);
    let (status, again) = ticket(&stack, "seen", "watcher", None).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("paid")),
        "{again}"
    );
    assert_eq!(published(admin_stats().await), before, "published once");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_with_nothing_left_refuses_at_once_and_says_so() {
    let stack = Stack::start().await;
    stack.create_sale("gone", 1).await;
    let (_, first) = ticket(&stack, "gone", "first", Some("pm_card_visa")).await;
    assert_eq!(
        stack.await_final(first["ticket"].as_str().unwrap()).await["status"],
        "paid"
    );
    let sale: Value = poll_until(5, "the sale reads sold out", || async {
        let sale: Value = stack
            .http
            .get(stack.door("/v1/sales/gone"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (sale["status"] == "sold_out").then_some(sale)
    })
    .await;
    assert_eq!(sale["remaining"], 0);
    let (status, refused) = ticket(&stack, "gone", "second", Some("pm_card_visa")).await;
    assert_eq!((status, refused["code"].as_str()), (410, Some("sold_out")));
    let (status, again) = ticket(&stack, "gone", "first", Some("pm_card_visa")).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("paid")),
        "a holder gets their ticket back, not a 410"
    );
    stack.stop().await;
}

/// After the last unit the crowd is refused from the door's memory: with Redis away, a
/// shopper who holds nothing still hears `410 sold_out` (the door used to ask Redis
/// whether each of them held a ticket, and answered `503` while it could not), and a
/// holder is never told sold out. Units the operator adds reopen the sale, and the
/// shopper who buys one is on the roll read when it sells out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sold_out_sale_refuses_the_crowd_from_memory_and_never_a_holder() {
    let proxy = FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let url = format!("redis://{}/0", proxy.addr());
    let stack = Stack::start_with(|c| c.redis.url = url).await;
    let sealed = r#"flashgate_admission_sealed{sale="sealed"}"#;
    let sell = |customer: &'static str| {
        let stack = &stack;
        async move {
            let (status, body) = ticket(stack, "sealed", customer, Some("pm_card_visa")).await;
            assert_eq!(status, 202, "{body}");
            let paid = stack.await_final(body["ticket"].as_str().unwrap()).await;
            assert_eq!(paid["status"], "paid");
            wait_until(10, "the door seals the sold-out sale", || async {
                stack.worker_metric(sealed).await == Some(1.0)
            })
            .await;
        }
    };
    let refused_while_redis_is_away = |holders: &'static [&'static str]| {
        let (stack, proxy) = (&stack, &proxy);
        async move {
            proxy.set(ProxyMode::Refuse);
            for n in 0..20 {
                let (status, refused) = ticket(stack, "sealed", &format!("late-{n}"), None).await;
                assert_eq!(
                    (status, refused["code"].as_str()),
                    (410, Some("sold_out")),
                    "{refused}"
                );
            }
            for holder in holders {
                let (status, body) = ticket(stack, "sealed", holder, None).await;
                assert_ne!(status, 410, "{holder} holds a ticket: {body}");
            }
            proxy.set(ProxyMode::Pass);
            for holder in holders {
                let again = poll_until(15, "a holder gets their ticket back", || async {
                    let (status, body) = ticket(stack, "sealed", holder, None).await;
                    (status == 200).then_some(body)
                })
                .await;
                assert_eq!(again["status"], "paid", "{holder}");
            }
        }
    };

    stack.create_sale("sealed", 1).await;
    sell("first").await;
    refused_while_redis_is_away(&["first"]).await;

    stack
        .create_sale_with(
            "sealed",
            json!({ "stock": 2, "rate_per_second": 100000, "burst": 100000 }),
        )
        .await;
    poll_until(10, "the door reopens", || async {
        let sale = stack.get_json("/v1/sales/sealed").await;
        (sale["status"] == "open").then_some(())
    })
    .await;
    sell("second").await;
    refused_while_redis_is_away(&["first", "second"]).await;
    stack.assert_invariants("sealed", None).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_that_come_back_go_to_the_wait_list_in_order_and_the_rest_end_sold_out() {
    let stack = Stack::start().await;
    stack
        .create_sale_with(
            "listed",
            json!({ "stock": 1, "hold_seconds": 5, "waitlist": true }),
        )
        .await;
    let (_, holder) = ticket(&stack, "listed", "holder", None).await;
    let holder_token = holder["ticket"].as_str().unwrap();
    stack
        .await_ticket(holder_token, |t| t["status"] == "payment_pending")
        .await;

    let (status, second) = ticket(&stack, "listed", "second", Some("pm_card_visa")).await;
    assert_eq!(status, 202);
    assert_eq!(second["waitlisted"], true);
    let (_, third) = ticket(&stack, "listed", "third", Some("pm_card_visa")).await;
    let second_token = second["ticket"].as_str().unwrap();
    let third_token = third["ticket"].as_str().unwrap();
    stack
        .await_ticket(second_token, |t| t["status"] == "waitlisted")
        .await;
    stack
        .await_ticket(third_token, |t| t["status"] == "waitlisted")
        .await;

    assert_eq!(stack.await_final(holder_token).await["status"], "expired");
    assert_eq!(
        stack.await_final(second_token).await["status"],
        "paid",
        "the first on the wait-list gets the unit"
    );
    assert_eq!(
        stack.await_final(third_token).await["status"],
        "sold_out",
        "the list closes once nothing can come back"
    );
    assert_eq!(stack.terms("listed").await, (1, 0, 1));
    stack.assert_invariants("listed", Some(3)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_list_takes_only_as_many_as_the_held_units_could_serve() {
    let stack = Stack::start().await;
    // One unit, oversubscription factor 3 (the default).
    stack.create_sale("bounded", 1).await;
    let (status, holder) = ticket(&stack, "bounded", "holder", None).await;
    assert_eq!(status, 202);
    stack
        .await_ticket(holder["ticket"].as_str().unwrap(), |t| {
            t["status"] == "payment_pending"
        })
        .await;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let (status, _) = ticket(&stack, "bounded", &format!("late-{n}"), None).await;
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [202, 202, 202, 410, 410, 410],
        "three may wait for the one held unit; the rest are told at once"
    );
    // An operator's cap replaces the default.
    stack
        .create_sale_with("capped", json!({ "stock": 1, "waitlist_limit": 5 }))
        .await;
    let (_, holder) = ticket(&stack, "capped", "holder", None).await;
    stack
        .await_ticket(holder["ticket"].as_str().unwrap(), |t| {
            t["status"] == "payment_pending"
        })
        .await;
    let mut capped = Vec::new();
    for n in 0..7 {
        capped.push(ticket(&stack, "capped", &format!("late-{n}"), None).await.0);
    }
    assert_eq!(capped, [202, 202, 202, 202, 202, 410, 410]);
    stack.stop().await;
}
