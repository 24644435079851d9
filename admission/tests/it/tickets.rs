//! Tickets: one per customer and sale, idempotent requests, tokens nobody can forge.

use std::collections::BTreeSet;

use flashgate_admission::ticket_token::{TicketClaims, TicketSigner};
use flashgate_common::amqp::messages::TicketMessage;
use flashgate_common::domain::SaleId;
use serde_json::{Value, json};

use crate::support::{Door, TICKET_SECRET, crowd_from_one_address};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_from_one_customer_yield_one_ticket() {
    let door = Door::start().await;
    door.sale("rush", json!({})).await;
    let requests = (0..50).map(|_| door.ticket("rush", "same-customer"));
    let responses = futures_util::future::join_all(requests).await;
    let mut statuses = Vec::new();
    let mut tickets = BTreeSet::new();
    for response in responses {
        statuses.push(response.status().as_u16());
        let body: Value = response.json().await.unwrap();
        tickets.insert(body["ticket"].as_str().unwrap().to_owned());
    }
    assert_eq!(tickets.len(), 1, "one ticket for every request");
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "one 202, the rest 200: {statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 202 || *s == 200));
    assert_eq!(
        door.queued_messages().await,
        1,
        "the broker got the ticket once"
    );
    let again = door.ticket("rush", "same-customer").await;
    assert_eq!(again.status(), 200);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_arriving_together_share_broker_messages_and_each_is_queued_once() {
    // One publish in flight at a time: whatever arrives meanwhile goes in the next message.
    let door = Door::start_with(|c| {
        c.admission.publishes_in_flight = 1;
        crowd_from_one_address(c);
        // 300 at once are past the door's own pacing (`backpressure.rs` tests it).
        c.admission.pace_above_pending = 0;
    })
    .await;
    door.sale("crowd", json!({ "stock": 1000 })).await;
    let customers: Vec<String> = (0..300).map(|i| format!("shopper-{i}")).collect();
    let requests = customers.iter().map(|c| door.ticket("crowd", c));
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let messages = door.queued_tickets().await;
    let tickets: Vec<_> = messages
        .iter()
        .cloned()
        .flat_map(|m| m.into_tickets())
        .collect();
    assert_eq!(tickets.len(), 300, "every ticket is queued exactly once");
    let queued: BTreeSet<String> = tickets.iter().map(|t| t.customer_id.to_string()).collect();
    assert_eq!(queued, customers.into_iter().collect());
    let seqs: BTreeSet<i64> = tickets.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, (1..=300).collect(), "each sequence number once");
    assert!(
        messages.len() < 300,
        "tickets that arrive while a publish awaits its confirm share the next message ({} messages)",
        messages.len()
    );
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, TicketMessage::Batch { tickets } if tickets.len() > 1))
    );
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_asking_again_right_after_the_202_gets_the_same_ticket_with_200() {
    // Many customers at once, each asking again the moment their 202 arrives: the answer
    // must already know the ticket is queued (not re-publish it and say 202 again).
    let door = Door::start_with(crowd_from_one_address).await;
    door.sale("twice", json!({ "stock": 1000 })).await;
    let customers: Vec<String> = (0..200).map(|i| format!("eager-{i}")).collect();
    let shared = &door;
    let askers = customers.iter().map(|customer| async move {
        let first = shared.ticket("twice", customer).await;
        let again = shared.ticket("twice", customer).await;
        let first_status = first.status().as_u16();
        let again_status = again.status().as_u16();
        let first: Value = first.json().await.unwrap();
        let again: Value = again.json().await.unwrap();
        assert_eq!(first["ticket"], again["ticket"], "{customer}: one ticket");
        (first_status, again_status)
    });
    let statuses = futures_util::future::join_all(askers).await;
    let twice_accepted: Vec<_> = customers
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| **s != (202, 200))
        .collect();
    assert!(
        twice_accepted.is_empty(),
        "expected 202 then 200 for everyone: {twice_accepted:?}"
    );
    let tickets: Vec<_> = door
        .queued_tickets()
        .await
        .into_iter()
        .flat_map(|m| m.into_tickets())
        .collect();
    assert_eq!(tickets.len(), 200, "each ticket reached the broker once");
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_request() {
    let door = Door::start().await;
    door.sale("idem", json!({})).await;
    let url = door.url("/v1/sales/idem/tickets");
    let send = |body: Value| {
        door.http
            .post(&url)
            .header("idempotency-key", "order-form-7")
            .json(&body)
            .send()
    };
    let first = send(json!({ "customer_id": "ann", "quantity": 1 }))
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    let first_body: Value = first.json().await.unwrap();
    let replay = send(json!({ "customer_id": "ann", "quantity": 1 }))
        .await
        .unwrap();
    assert_eq!(replay.status(), 202, "a replay repeats the first status");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert!(
        replay.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with(first_body["ticket"].as_str().unwrap())
    );
    assert_eq!(replay.json::<Value>().await.unwrap(), first_body);
    let other = send(json!({ "customer_id": "ann", "quantity": 2 }))
        .await
        .unwrap();
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.unwrap()["code"],
        "idempotency_key_reused"
    );
    let bad = door
        .http
        .post(&url)
        .header("idempotency-key", "")
        .json(&json!({ "customer_id": "x", "quantity": 1 }))
        .send();
    assert_eq!(bad.await.unwrap().status(), 400);
    assert_eq!(door.queued_messages().await, 1);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_truncated_expired_and_foreign_tokens_are_refused() {
    let door = Door::start().await;
    door.sale("tokens", json!({})).await;
    let issued: Value = door.ticket("tokens", "tom").await.json().await.unwrap();
    let token = issued["ticket"].as_str().unwrap().to_owned();
    let poll = |token: String| {
        door.http
            .get(door.url(&format!("/v1/tickets/{token}")))
            .send()
    };
    assert_eq!(poll(token.clone()).await.unwrap().status(), 200);

    let ticket = TicketSigner::new(TICKET_SECRET.as_bytes())
        .verify(&token, 0)
        .unwrap()
        .ticket;
    let sale = SaleId::parse("tokens").unwrap();
    let expired = TicketSigner::new(TICKET_SECRET.as_bytes()).sign(&TicketClaims {
        sale: sale.clone(),
        ticket,
        expires_at: 1,
    });
    let foreign = TicketSigner::new(b"another deployment").sign(&TicketClaims {
        sale,
        ticket,
        expires_at: i64::MAX,
    });
    let mut tampered = token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let cases = [
        ("tampered", String::from_utf8(tampered).unwrap()),
        ("truncated", token[..token.len() - 4].to_owned()),
        ("another sale", token.replacen("tokens.", "tokens2.", 1)),
        ("expired", expired),
        ("signed with another key", foreign),
        ("garbage", "not-a-ticket".to_owned()),
    ];
    for (case, token) in cases {
        let response = poll(token).await.unwrap();
        assert_eq!(response.status(), 404, "{case}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            "ticket_not_found",
            "{case}"
        );
    }
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_ticket_shows_its_position_and_the_waiting_room_page_shows_it_too() {
    let door = Door::start().await;
    door.sale("room", json!({})).await;
    for customer in ["a", "b"] {
        door.ticket("room", customer).await;
    }
    let third: Value = door.ticket("room", "c").await.json().await.unwrap();
    assert_eq!(third["position"], 3);
    let token = third["ticket"].as_str().unwrap();
    let polled = door.poll(token).await;
    assert_eq!(polled["status"], "queued");
    assert_eq!(polled["position"], 3);
    assert!(polled["poll_after_ms"].as_u64().unwrap() >= 500);
    let page = door
        .http
        .get(door.url(&format!("/queue/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("You are number 3 in the queue"), "{html}");
    assert!(
        html.contains(&format!("\"{token}\"")),
        "the page polls with its own ticket"
    );
    let sale = door.public_sale("room").await;
    assert_eq!(
        (
            sale["status"].as_str(),
            sale["remaining"].as_i64(),
            sale["queued"].as_i64()
        ),
        (Some("open"), Some(100), Some(3))
    );
    door.stop().await;
}

/// The door counts its own confirmed tickets between refreshes of the shared count; a
/// refresh landing between the shared count's increment and the door's own must not count
/// a ticket twice (the sale showed 4 queued for 3 tickets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_length_counts_each_confirmed_ticket_once_while_the_door_refreshes() {
    let door = Door::start_with(|config| {
        crowd_from_one_address(config);
        config.admission.live_refresh_ms = 1;
    })
    .await;
    door.sale("count", json!({ "stock": 1000 })).await;
    let tickets = 400;
    for wave in 0..8 {
        let customers: Vec<String> = (0..tickets / 8).map(|i| format!("c-{wave}-{i}")).collect();
        let requests = customers.iter().map(|c| door.ticket("count", c));
        for response in futures_util::future::join_all(requests).await {
            assert_eq!(response.status(), 202);
        }
    }
    let sale = door.public_sale("count").await;
    assert_eq!(sale["queued"], tickets, "{sale}");
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_caps_what_one_customer_buys() {
    let door = Door::start().await;
    let refused = door
        .sale("pairs", json!({ "max_quantity_per_customer": 0 }))
        .await;
    assert_eq!(refused.status(), 422);
    assert_eq!(
        door.sale("pairs", json!({ "max_quantity_per_customer": 2 }))
            .await
            .status(),
        201
    );
    let sale = door.public_sale("pairs").await;
    assert_eq!(sale["max_quantity_per_customer"], 2);
    let ask = |customer: &'static str, quantity: i64| {
        door.http
            .post(door.url("/v1/sales/pairs/tickets"))
            .json(&json!({ "customer_id": customer, "quantity": quantity }))
            .send()
    };
    let over = ask("greedy", 3).await.unwrap();
    assert_eq!(over.status(), 422);
    let problem: Value = over.json().await.unwrap();
    assert_eq!(problem["code"], "quantity_over_limit", "{problem}");
    assert_eq!(ask("greedy", 2).await.unwrap().status(), 202);
    // The door's own limit (10) still bounds a sale that allows more.
    assert_eq!(
        door.sale("crates", json!({ "max_quantity_per_customer": 50 }))
            .await
            .status(),
        201
    );
    let sale = door.public_sale("crates").await;
    assert_eq!(sale["max_quantity_per_customer"], 10);
    door.stop().await;
}

/// Two doors, one refreshing its view of the sale ten times less often. Sold out, both
/// refuse newcomers from their rolls of holders, and neither refuses a holder. When units
/// come back, the first claim on the sealed sale waits until no door trusts its roll any
/// more (the slow door's trust, which the seal keeps), so a shopper who got a ticket from
/// one door is never told `sold_out` by the other's roll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shopper_who_claims_after_a_sale_reopens_is_never_refused_by_another_doors_roll() {
    use flashgate_common::domain::SaleTerms;
    use flashgate_common::live::Redis;

    let fast = Door::start_with(crowd_from_one_address).await;
    let slow = fast
        .another_with(|c| c.admission.live_refresh_ms = 1_000)
        .await;
    fast.sale("reopens", json!({ "stock": 1 })).await;
    assert_eq!(fast.ticket("reopens", "first").await.status(), 202);
    // A door follows the sales it was asked about.
    assert_eq!(slow.public_sale("reopens").await["status"], "open");
    let redis = Redis::connect(&fast.config.redis).unwrap();
    let sale = SaleId::parse("reopens").unwrap();
    let terms = |version, stock| SaleTerms {
        version,
        stock,
        reserved: 0,
        sold: 1,
        decided: 1,
        waitlisted: 0,
    };
    // What the worker writes once the unit is sold (no worker runs here).
    redis.write_terms(&sale, &terms(1_000, 1)).await.unwrap();
    let sealed_key = redis.keys().sealed(&sale);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let trusted: Option<u64> = redis::cmd("GET")
            .arg(&sealed_key)
            .query_async(&mut redis.conn())
            .await
            .unwrap();
        if trusted == Some(3_000) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow door never sealed the sale: {trusted:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for door in [&fast, &slow] {
        assert_eq!(door.ticket("reopens", "stranger").await.status(), 410);
        assert_eq!(door.ticket("reopens", "first").await.status(), 200);
    }

    // A unit comes back; the fast door sees it first and admits a new shopper.
    redis.write_terms(&sale, &terms(1_001, 2)).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fast.public_sale("reopens").await["status"] != "open" {
        assert!(
            std::time::Instant::now() < deadline,
            "the fast door never reopened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let second = fast.ticket("reopens", "second").await;
    assert_eq!(second.status(), 202);
    let again = slow.ticket("reopens", "second").await;
    assert_eq!(
        again.status(),
        200,
        "the slow door refused a holder: {}",
        again.text().await.unwrap()
    );
    slow.stop().await;
    fast.stop().await;
}
