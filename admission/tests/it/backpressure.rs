//! Backpressure: the sale's live GCRA rate, per-address and per-customer limits, queue
//! depth and broker failures, each answered with a problem and an honest `Retry-After`.

use flashgate_common::config::RateConfig;
use flashgate_common::testkit::{FaultProxy, ProxyMode};
use serde_json::{Value, json};

use crate::support::Door;

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_change_takes_effect_without_a_restart() {
    let door = Door::start().await;
    door.sale("live", json!({ "rate_per_second": 1, "burst": 1 }))
        .await;
    assert_eq!(door.ticket("live", "c1").await.status(), 202);
    let limited = door.ticket("live", "c2").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(
        retry_after(&limited),
        1,
        "the limiter's own wait, rounded up"
    );
    assert_eq!(
        limited.json::<Value>().await.unwrap()["code"],
        "rate_limited"
    );

    let changed = door
        .admission("live", json!({ "rate_per_second": 1000, "burst": 50 }))
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.json::<Value>().await.unwrap()["rate_per_second"],
        1000
    );
    for i in 0..20 {
        assert_eq!(
            door.ticket("live", &format!("after-{i}")).await.status(),
            202,
            "admitted at the new rate"
        );
    }
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_x_forwarded_for_from_an_untrusted_peer_does_not_escape_the_per_address_limit() {
    let door = Door::start_with(|c| {
        c.admission.per_address = RateConfig {
            per_second: 1,
            burst: 3,
        }
    })
    .await;
    door.sale("addr", json!({})).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = door
            .http
            .post(door.url("/v1/sales/addr/tickets"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({ "customer_id": format!("rotating-{i}"), "quantity": 1 }))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        3,
        "the burst, then refused: {statuses:?}"
    );
    assert!(statuses[3..].iter().all(|s| *s == 429));
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_from_a_trusted_proxy_limits_each_client_separately() {
    let door = Door::start_with(|c| {
        c.admission.per_address = RateConfig {
            per_second: 1,
            burst: 1,
        };
        c.admission.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    door.sale("proxied", json!({})).await;
    let send = |client: &str, customer: &str| {
        door.http
            .post(door.url("/v1/sales/proxied/tickets"))
            .header("x-forwarded-for", client)
            .json(&json!({ "customer_id": customer, "quantity": 1 }))
            .send()
    };
    for i in 0..5 {
        assert_eq!(
            send(&format!("203.0.113.{i}"), &format!("c{i}"))
                .await
                .unwrap()
                .status(),
            202
        );
    }
    assert_eq!(
        send("203.0.113.0", "c-again").await.unwrap().status(),
        429,
        "one client, one budget"
    );
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_asking_too_often_is_told_to_wait() {
    let door = Door::start_with(|c| {
        c.admission.per_customer = RateConfig {
            per_second: 1,
            burst: 2,
        }
    })
    .await;
    door.sale("eager", json!({})).await;
    assert_eq!(door.ticket("eager", "clicker").await.status(), 202);
    assert_eq!(
        door.ticket("eager", "clicker").await.status(),
        200,
        "the same ticket again"
    );
    let refused = door.ticket("eager", "clicker").await;
    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) >= 1);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "too_many_requests"
    );
    assert_eq!(
        door.ticket("eager", "someone-else").await.status(),
        202,
        "other customers are not affected"
    );
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let door = Door::start_with(|c| c.admission.max_queue_depth = 3).await;
    door.sale("deep", json!({})).await;
    for i in 0..3 {
        assert_eq!(door.ticket("deep", &format!("c{i}")).await.status(), 202);
    }
    let full = door.ticket("deep", "c3").await;
    assert_eq!(full.status(), 503);
    assert!(retry_after(&full) >= 1);
    assert_eq!(
        full.json::<Value>().await.unwrap()["code"],
        "queue_saturated"
    );
    assert_eq!(door.queued_messages().await, 3);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_goes_away_gets_503_and_the_ticket_is_queued_once_it_is_back() {
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let door = Door::start_with(|c| {
        c.amqp.url = url.into();
        c.amqp.confirm_timeout_ms = 2000;
    })
    .await;
    door.sale("flaky", json!({})).await;
    proxy.set(ProxyMode::Refuse);
    let refused = door.ticket("flaky", "patient").await;
    assert_eq!(refused.status(), 503);
    assert!(retry_after(&refused) >= 1);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem.get("ticket").is_none(),
        "no ticket is handed out unconfirmed"
    );
    assert_eq!(door.queued_messages().await, 0);

    proxy.set(ProxyMode::Pass);
    let queued = door.ticket("flaky", "patient").await;
    assert_eq!(
        queued.status(),
        202,
        "the pending claim is published once the broker is back"
    );
    assert_eq!(queued.json::<Value>().await.unwrap()["status"], "queued");
    assert_eq!(door.queued_messages().await, 1);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_a_sale_refuses_arrivals_and_resuming_admits_them_again() {
    let door = Door::start().await;
    door.sale("pausable", json!({})).await;
    assert_eq!(
        door.admission("pausable", json!({ "paused": true }))
            .await
            .status(),
        200
    );
    let paused = door.ticket("pausable", "early").await;
    assert_eq!(paused.status(), 409);
    assert_eq!(
        paused.json::<Value>().await.unwrap()["code"],
        "sale_not_open"
    );
    let sale = door.public_sale("pausable").await;
    assert_eq!(sale["status"], "paused");
    assert_eq!(
        door.admission("pausable", json!({ "paused": false }))
            .await
            .status(),
        200
    );
    assert_eq!(door.ticket("pausable", "early").await.status(), 202);
    // Before the pre-queue opens: not open. Once it is: pre-queued, with no place yet.
    let scheduled = door
        .sale(
            "later",
            json!({ "starts_at": "2099-01-01T00:00:00Z", "prequeue_opens_at": "2098-12-31T00:00:00Z" }),
        )
        .await;
    assert_eq!(scheduled.status(), 201);
    let early = door.ticket("later", "early").await;
    assert_eq!(early.status(), 409);
    assert!(retry_after(&early) >= 1);
    let window = door
        .sale("prequeue", json!({ "starts_at": "2099-01-01T00:00:00Z" }))
        .await;
    assert_eq!(window.status(), 201);
    let prequeued = door.ticket("prequeue", "early").await;
    assert_eq!(prequeued.status(), 202);
    assert_eq!(
        prequeued.json::<Value>().await.unwrap()["status"],
        "prequeued"
    );
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_change_reaches_every_door_at_once() {
    // Periodic re-reads off: only the announcement can carry the change.
    let first = Door::start_with(|c| {
        c.admission.sale_cache_ms = 60_000;
        c.admission.per_address = RateConfig {
            per_second: 0,
            burst: 0,
        };
    })
    .await;
    let second = first.another().await;
    first.sale("everywhere", json!({})).await;
    assert_eq!(second.ticket("everywhere", "c1").await.status(), 202);
    assert_eq!(
        first
            .admission("everywhere", json!({ "paused": true }))
            .await
            .status(),
        200
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut n = 0;
    loop {
        let status = second
            .ticket("everywhere", &format!("after-{n}"))
            .await
            .status();
        if status == 409 {
            break;
        }
        assert_eq!(status, 202);
        assert!(
            std::time::Instant::now() < deadline,
            "the other door never saw the pause"
        );
        n += 1;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    second.stop().await;
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_past_the_doors_bound_on_pending_work_are_shed_at_once_with_503() {
    let proxy = FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let url = format!("redis://{}/0", proxy.addr());
    let door = Door::start_with(|c| {
        c.redis.url = url;
        c.redis.response_timeout_ms = 5000;
        c.admission.max_pending_arrivals = 1;
    })
    .await;
    door.sale("crowd", json!({})).await;
    proxy.set(ProxyMode::Blackhole);
    // Twenty arrive at once: one takes the only slot and waits on a Redis that never
    // answers; the others must not queue behind it.
    let arrivals = (0..20).map(|i| {
        let door = &door;
        async move {
            let started = std::time::Instant::now();
            let response = door.ticket("crowd", &format!("c{i}")).await;
            let status = response.status();
            let code = response.json::<Value>().await.unwrap()["code"].clone();
            (status, code, started.elapsed())
        }
    });
    let answers = futures_util::future::join_all(arrivals).await;
    // A dropped connection can fail an arrival fast and free the slot for another, so
    // several may reach Redis, but never more than one at a time: the rest are shed.
    let shed: Vec<_> = answers
        .iter()
        .filter(|(_, code, _)| code == "door_busy")
        .collect();
    assert!(shed.len() >= 10, "most arrivals shed: {answers:?}");
    assert!(
        shed.iter()
            .all(|(status, _, took)| *status == 503 && *took < std::time::Duration::from_secs(2)),
        "shed at once: {answers:?}"
    );
    assert!(
        answers.iter().all(|(status, code, _)| *status == 503
            && (code == "door_busy" || code == "redis_unavailable")),
        "{answers:?}"
    );
    proxy.set(ProxyMode::Pass);
    door.stop().await;
}

/// However long the queue, the shoppers in it together are asked to poll no more often
/// than the door's budget allows: 40 tickets waiting and a budget of 10 polls a second ask
/// each of them, the front of the queue too, to come back in 4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_queue_is_asked_to_poll_within_the_doors_budget() {
    let door = Door::start_with(|c| {
        crate::support::crowd_from_one_address(c);
        c.admission.poll_budget_per_second = 10;
    })
    .await;
    door.sale("budget", json!({ "stock": 1000 })).await;
    let first: Value = door.ticket("budget", "front").await.json().await.unwrap();
    for i in 1..40 {
        assert_eq!(door.ticket("budget", &format!("c{i}")).await.status(), 202);
    }
    let token = first["ticket"].as_str().unwrap();
    let polled = door.poll(token).await;
    assert_eq!(polled["position"], 1, "{polled}");
    assert_eq!(polled["poll_after_ms"], 4000, "{polled}");
    let last: Value = door.ticket("budget", "last").await.json().await.unwrap();
    assert_eq!(last["poll_after_ms"], 4100, "{last}");
    door.stop().await;
}

/// Past `pace_above_pending` arrivals waiting on Redis, the next are told at once when to
/// come back (`429 door_paced`), in place of a `503` that brings them all back together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_past_the_pacing_bound_are_told_at_once_when_to_come_back() {
    let proxy = FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let url = format!("redis://{}/0", proxy.addr());
    let door = Door::start_with(|c| {
        crate::support::crowd_from_one_address(c);
        c.redis.url = url;
        c.redis.response_timeout_ms = 3000;
        c.admission.pace_above_pending = 1;
    })
    .await;
    door.sale("paced", json!({})).await;
    proxy.set(ProxyMode::Blackhole);
    let arrivals = (0..20).map(|i| {
        let door = &door;
        async move {
            let started = std::time::Instant::now();
            let response = door.ticket("paced", &format!("c{i}")).await;
            let status = response.status();
            let wait = response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let code = response.json::<Value>().await.unwrap()["code"].clone();
            (status, code, wait, started.elapsed())
        }
    });
    let answers = futures_util::future::join_all(arrivals).await;
    let paced: Vec<_> = answers
        .iter()
        .filter(|(_, code, _, _)| code == "door_paced")
        .collect();
    assert!(paced.len() >= 10, "most arrivals paced: {answers:?}");
    assert!(
        paced.iter().all(|(status, _, wait, took)| *status == 429
            && wait.is_some_and(|w| (1..=60).contains(&w))
            && *took < std::time::Duration::from_secs(2)),
        "told at once, with a time to come back: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(_, code, _, _)| code == "door_paced" || code == "redis_unavailable"),
        "{answers:?}"
    );
    proxy.set(ProxyMode::Pass);
    door.stop().await;
}
