//! The pre-queue: shoppers who arrive before the opening all get a place, in an order
//! drawn at the opening from a seed committed to in advance, which anyone can recompute.

use chrono::Utc;
use flashgate_common::fairness::FairnessDocument;
use serde_json::{Value, json};

use crate::support::{Stack, assert_problem};

const SHOPPERS: usize = 30;

async fn verify_fairness(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .arg("verify-fairness")
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_before_the_opening_are_all_served_in_a_drawn_order_anyone_can_recompute() {
    let stack = Stack::start().await;
    let opens = Utc::now() + chrono::Duration::seconds(4);
    stack
        .create_sale_with(
            "drop",
            json!({ "stock": SHOPPERS + 1, "starts_at": opens.to_rfc3339() }),
        )
        .await;
    let sale: Value = stack.get_json("/v1/sales/drop").await;
    assert_eq!(sale["status"], "scheduled");
    assert_eq!(sale["prequeue_open"], true);
    assert_eq!(sale["fairness"]["seed"], Value::Null);
    let commitment = sale["fairness"]["commitment"].as_str().unwrap().to_owned();
    assert_eq!(commitment.len(), 64);

    // Arrivals one after another, each with a saved card.
    let mut tokens = Vec::new();
    for i in 0..SHOPPERS {
        let customer = format!("early-{i:02}");
        let answer = stack
            .take_ticket("drop", &customer, Some("pm_card_visa"))
            .await;
        assert_eq!(answer.status(), 202, "{customer}");
        let ticket: Value = answer.json().await.unwrap();
        assert_eq!(ticket["status"], "prequeued");
        assert_eq!(ticket["position"], Value::Null);
        assert!(ticket["opens_at"].is_string());
        let poll_after = ticket["poll_after_ms"].as_u64().unwrap();
        assert!(
            (1_000..=7_000).contains(&poll_after),
            "poll just after the opening: {poll_after}"
        );
        tokens.push(ticket["ticket"].as_str().unwrap().to_owned());
    }
    // Asking again returns the same ticket; polling shows the pre-queue.
    let again = stack
        .take_ticket("drop", "early-00", Some("pm_card_visa"))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["ticket"], tokens[0]);
    assert_eq!(stack.poll(&tokens[5]).await["status"], "prequeued");
    let before: FairnessDocument =
        serde_json::from_value(stack.get_json("/v1/sales/drop/fairness").await).unwrap();
    assert!(before.seed.is_none() && before.tickets.is_empty());
    assert!(
        !verify_fairness(&["drop", "--door", &stack.door("")])
            .await
            .status
            .success()
    );

    // After the opening every pre-queued shopper is served (and paid).
    for token in &tokens {
        assert_eq!(stack.await_final(token).await["status"], "paid");
    }
    let late = stack
        .take_ticket("drop", "late", Some("pm_card_visa"))
        .await;
    assert_eq!(late.status(), 202);
    let late: Value = late.json().await.unwrap();
    assert_eq!(late["status"], "queued");

    let order: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT id, customer_id, seq FROM tickets WHERE sale_id = 'drop' ORDER BY seq",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    stack.await_final(late["ticket"].as_str().unwrap()).await;
    let seqs: Vec<i64> = order.iter().map(|(_, _, seq)| *seq).collect();
    assert_eq!(seqs, (1..=SHOPPERS as i64).collect::<Vec<_>>());
    let late_seq: i64 = sqlx::query_scalar(
        "SELECT seq FROM tickets WHERE sale_id = 'drop' AND customer_id = 'late'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(late_seq, SHOPPERS as i64 + 1, "after the drawn ones");
    let arrival: Vec<String> = (0..SHOPPERS).map(|i| format!("early-{i:02}")).collect();
    let drawn: Vec<String> = order.iter().map(|(_, c, _)| c.clone()).collect();
    assert_ne!(drawn, arrival, "the places are the arrival order");

    // The revealed seed is the committed one, and it gives exactly the order served.
    let document: FairnessDocument =
        serde_json::from_value(stack.get_json("/v1/sales/drop/fairness").await).unwrap();
    assert_eq!(document.commitment, commitment);
    assert_eq!(
        document.order,
        order.iter().map(|(id, _, _)| *id).collect::<Vec<_>>()
    );
    assert_eq!(
        document.verify(Some(&commitment)).unwrap().tickets,
        SHOPPERS
    );
    let sale: Value = stack.get_json("/v1/sales/drop").await;
    assert_eq!(
        sale["fairness"]["seed"],
        document.seed.clone().unwrap().as_str()
    );

    let checked = verify_fairness(&[
        "drop",
        "--door",
        &stack.door(""),
        "--commitment",
        &commitment,
    ])
    .await;
    assert!(checked.status.success(), "{checked:?}");
    assert!(String::from_utf8_lossy(&checked.stdout).contains(&format!("fair: {SHOPPERS}")));

    // Tampered documents are caught: two places swapped, another seed, a ticket dropped.
    let dir = std::env::temp_dir().join(format!("fairness-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut swapped = document.clone();
    swapped.order.swap(0, 1);
    let mut reseeded = document.clone();
    reseeded.seed = Some("00".repeat(32));
    let mut shortened = document.clone();
    shortened.tickets.pop();
    for (name, tampered, says) in [
        ("swapped", swapped, "order differs"),
        ("reseeded", reseeded, "seed does not hash"),
        ("shortened", shortened, "does not hash to the digest"),
    ] {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(&tampered).unwrap()).unwrap();
        let out = verify_fairness(&["drop", "--file", path.to_str().unwrap()]).await;
        assert!(!out.status.success(), "{name} passed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_the_pre_queue_opens_arrivals_are_told_to_come_back_at_spread_moments() {
    let stack = Stack::start().await;
    let now = Utc::now();
    let window = |opens: i64, starts: i64| {
        json!({
            "stock": 5,
            "prequeue_opens_at": (now + chrono::Duration::seconds(opens)).to_rfc3339(),
            "starts_at": (now + chrono::Duration::seconds(starts)).to_rfc3339(),
        })
    };
    stack.create_sale_with("later", window(120, 900)).await;
    let mut waits = std::collections::BTreeSet::new();
    for i in 0..12 {
        let answer = stack.take_ticket("later", &format!("c{i}"), None).await;
        let wait: u64 = answer.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((110..=900).contains(&wait), "{wait}");
        waits.insert(wait);
        assert_problem(answer, 409, "sale_not_open", "before the window").await;
    }
    assert!(waits.len() > 3, "one instant for everyone: {waits:?}");
    // A window that opens after the sale makes no sense.
    let bad = stack
        .put_sale(
            "backwards",
            &json!({ "sku": "sku-later", "stock": 1, "price": 100, "currency": "eur",
                     "rate_per_second": 10, "burst": 10,
                     "prequeue_opens_at": (now + chrono::Duration::seconds(60)).to_rfc3339(),
                     "starts_at": (now + chrono::Duration::seconds(30)).to_rfc3339() }),
        )
        .await;
    assert_problem(bad, 422, "invalid_sale", "window after the opening").await;
    stack.stop().await;
}
