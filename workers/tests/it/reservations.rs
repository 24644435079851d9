//! The reservation engine: batched, idempotent under redelivery and crashes, correct with
//! several worker processes, dead-lettering poison without stopping.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flashgate_common::amqp::messages::TicketMessage;
use flashgate_common::amqp::{Publisher, message_properties};
use serde_json::Value;

use flashgate_common::domain::TicketStatus;
use flashgate_workers::reserve::decide::{Batch, Lookup, decide};

use crate::support::{Stack, count, issued_ticket, tickets, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_tickets_for_a_hundred_units_grant_exactly_a_hundred_in_order_within_each_batch()
 {
    let stack = Stack::start().await;
    // Without a wait-list, so the tickets that find nothing are told sold out at once.
    stack
        .create_sale_with(
            "hot",
            serde_json::json!({ "stock": 100, "rate_per_second": 100000, "burst": 100000, "waitlist": false }),
        )
        .await;
    let shared = &stack;
    let producers = (0..4).map(|p| {
        let batch: Vec<_> = tickets("shopper-", 1, 2000, None)
            .into_iter()
            .filter(|(seq, _, _)| seq % 4 == p)
            .collect();
        async move { shared.publish_tickets("hot", &batch).await }
    });
    futures_util::future::join_all(producers).await;
    wait_until(60, "all 2,000 tickets are decided", || async {
        stack.decided("hot").await == 2000
    })
    .await;

    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE sale_id = $1",
            "hot"
        )
        .await,
        100
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM tickets WHERE sale_id = $1 AND decision = 'sold_out'",
            "hot"
        )
        .await,
        1900
    );
    let (stock, reserved, sold) = stack.terms("hot").await;
    assert_eq!((stock, reserved + sold), (100, 100));
    let rows: Vec<(DateTime<Utc>, i64, String)> =
        sqlx::query_as("SELECT decided_at, seq, decision FROM tickets WHERE sale_id = 'hot'")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    let mut batches: BTreeMap<DateTime<Utc>, (i64, i64)> = BTreeMap::new();
    for (decided_at, seq, decision) in rows {
        let (last_granted, first_refused) =
            batches.entry(decided_at).or_insert((i64::MIN, i64::MAX));
        if decision == "reserved" {
            *last_granted = (*last_granted).max(seq);
        } else {
            *first_refused = (*first_refused).min(seq);
        }
    }
    assert!(batches.len() > 1, "tickets were decided in batches");
    for (at, (last_granted, first_refused)) in batches {
        assert!(
            last_granted < first_refused,
            "batch at {at}: granted up to {last_granted}, refused from {first_refused}"
        );
    }
    stack.assert_invariants("hot", Some(2000)).await;
    // Each ticket's time in the queue was observed once it was decided (the recorder is
    // the test process's, shared with tests running beside this one: at least 2,000).
    let observed = stack
        .worker_metric("flashgate_ticket_queue_seconds_count")
        .await
        .expect("a time-in-queue histogram");
    assert!(observed >= 2000.0, "{observed} tickets' time in the queue");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_batch_changes_nothing() {
    let stack = Stack::start().await;
    stack.create_sale("again", 10).await;
    let batch = tickets("twice-", 1, 20, Some("pm_card_visa"));
    let messages: Vec<_> = batch
        .iter()
        .map(|(seq, c, pm)| crate::support::ticket_message("again", *seq, c, *pm))
        .collect();
    let amqp = stack.direct_amqp();
    let publisher = Publisher::new(amqp.clone());
    let queue = amqp.topology().tickets();
    for message in &messages {
        publisher
            .publish_json(&queue, "first", message, None)
            .await
            .unwrap();
    }
    wait_until(30, "20 tickets decided", || async {
        stack.decided("again").await == 20
    })
    .await;
    wait_until(30, "10 orders paid", || async {
        stack.terms("again").await == (10, 0, 10)
    })
    .await;
    let events_before = count(&stack, "SELECT count(*) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.sale_id = $1", "again").await;

    for message in &messages {
        publisher
            .publish_json(&queue, "redelivered", message, None)
            .await
            .unwrap();
    }
    let sentinel = crate::support::ticket_message("again", 21, "sentinel", None);
    publisher
        .publish_json(&queue, "sentinel", &sentinel, None)
        .await
        .unwrap();
    wait_until(
        30,
        "the sentinel behind the redelivery is decided",
        || async { stack.decided("again").await == 21 },
    )
    .await;

    assert_eq!(stack.terms("again").await, (10, 0, 10));
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE sale_id = $1",
            "again"
        )
        .await,
        10
    );
    let events_after = count(&stack, "SELECT count(*) FROM order_events e JOIN orders o ON o.id = e.order_id WHERE o.sale_id = $1", "again").await;
    assert_eq!(events_before, events_after);
    stack.assert_invariants("again", Some(21)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_queue_keeps_flowing_and_can_be_replayed() {
    let stack = Stack::start().await;
    stack.create_sale("flowing", 5).await;
    let amqp = stack.direct_amqp();
    let publisher = Publisher::new(amqp.clone());
    let queue = amqp.topology().tickets();
    publisher
        .publish(
            "",
            &queue,
            b"{not json",
            message_properties("garbage", None),
        )
        .await
        .unwrap();
    let orphan = crate::support::ticket_message("not-yet", 1, "early-bird", None);
    publisher
        .publish_json(&queue, "orphan", &orphan, None)
        .await
        .unwrap();
    stack
        .publish_tickets("flowing", &tickets("f-", 1, 3, None))
        .await;
    wait_until(30, "the good tickets are decided", || async {
        stack.decided("flowing").await == 3
    })
    .await;
    wait_until(30, "two dead letters", || async {
        flashgate_workers::dlq::list(&amqp, 10).await.unwrap().len() == 2
    })
    .await;
    let letters: Vec<Value> = flashgate_workers::dlq::list(&amqp, 10)
        .await
        .unwrap()
        .iter()
        .map(|l| serde_json::to_value(l).unwrap())
        .collect();
    assert!(
        letters
            .iter()
            .all(|l| l["reason"] == "rejected" && l["queue"] == queue.as_str()),
        "{letters:?}"
    );
    assert!(letters.iter().any(|l| l["body"] == "{not json"));

    stack.create_sale("not-yet", 5).await;
    assert_eq!(flashgate_workers::dlq::replay(&amqp, 10).await.unwrap(), 2);
    wait_until(30, "the replayed ticket is decided", || async {
        stack.decided("not-yet").await == 1
    })
    .await;
    wait_until(30, "the garbage is dead-lettered again", || async {
        flashgate_workers::dlq::list(&amqp, 10).await.unwrap().len() == 1
    })
    .await;
    assert_eq!(flashgate_workers::dlq::purge(&amqp).await.unwrap(), 1);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_that_cannot_be_decided_leaves_its_shared_message_alone_and_can_be_replayed() {
    let stack = Stack::start().await;
    stack.create_sale("known", 5).await;
    let amqp = stack.direct_amqp();
    let queue = amqp.topology().tickets();
    let message = TicketMessage::of(vec![
        issued_ticket("known", 1, "k-1", None),
        issued_ticket("not-yet", 1, "early-bird", None),
        issued_ticket("known", 2, "k-2", None),
    ]);
    Publisher::new(amqp.clone())
        .publish_json(&queue, "mixed", &message, None)
        .await
        .unwrap();
    wait_until(30, "the known sale's tickets are decided", || async {
        stack.decided("known").await == 2
    })
    .await;
    wait_until(30, "the stray ticket is dead-lettered", || async {
        flashgate_workers::dlq::list(&amqp, 10).await.unwrap().len() == 1
    })
    .await;
    let letters = flashgate_workers::dlq::list(&amqp, 10).await.unwrap();
    let letter = serde_json::to_value(&letters[0]).unwrap();
    assert_eq!(letter["queue"], queue.as_str());
    assert_eq!(letter["reason"], "rejected");
    assert_eq!(letter["body"]["type"], "ticket.issued.v1");
    assert_eq!(letter["body"]["customer_id"], "early-bird");

    stack.create_sale("not-yet", 5).await;
    assert_eq!(flashgate_workers::dlq::replay(&amqp, 10).await.unwrap(), 1);
    wait_until(30, "the replayed ticket is decided", || async {
        stack.decided("not-yet").await == 1
    })
    .await;
    assert!(
        flashgate_workers::dlq::list(&amqp, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(stack.decided("known").await, 2, "nothing decided twice");
    stack.assert_invariants("known", Some(2)).await;
    stack.stop().await;
}

/// Publishes `tickets` as one message, as the door's group commit does.
async fn publish_together(
    stack: &Stack,
    tickets: Vec<flashgate_common::amqp::messages::IssuedTicket>,
) {
    let amqp = stack.direct_amqp();
    let queue = amqp.topology().tickets();
    Publisher::new(amqp.clone())
        .publish_json(&queue, "together", &TicketMessage::of(tickets), None)
        .await
        .unwrap();
}

/// Each ticket of a decided batch: its status and order.
fn outcomes(batch: &Batch) -> BTreeMap<uuid::Uuid, (TicketStatus, Option<uuid::Uuid>)> {
    batch
        .sales
        .iter()
        .flat_map(|sale| &sale.tickets)
        .map(|t| (t.ticket, (t.status, t.order_id)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decided_ticket_in_a_batch_not_looked_up_first_is_reported_as_it_stands() {
    // A batch of first deliveries is decided without looking its tickets up; one already
    // decided (published twice by the door, not redelivered by the broker) must still get
    // no second unit and no second order, and the batch's new tickets their own.
    let stack = Stack::start_with(|c| c.worker.sweep_interval_ms = 3_600_000).await;
    stack.create_sale("seen", 3).await;
    let (first, second) = (
        issued_ticket("seen", 1, "first", None),
        issued_ticket("seen", 2, "second", None),
    );
    let before = outcomes(
        &decide(
            &stack.pool,
            &[first.clone(), second.clone()],
            Lookup::OnConflict,
        )
        .await
        .unwrap(),
    );
    let third = issued_ticket("seen", 3, "third", None);
    let fourth = issued_ticket("seen", 4, "fourth", None);
    let again = outcomes(
        &decide(
            &stack.pool,
            &[second.clone(), third.clone(), fourth.clone()],
            Lookup::OnConflict,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        again[&second.ticket_id], before[&second.ticket_id],
        "as it stood"
    );
    assert_eq!(again[&third.ticket_id].0, TicketStatus::Reserved);
    assert_ne!(again[&third.ticket_id].1, before[&second.ticket_id].1);
    // The units are held, not sold: the sale keeps a wait-list for them.
    assert_eq!(again[&fourth.ticket_id], (TicketStatus::Waitlisted, None));
    let waiting = outcomes(
        &decide(
            &stack.pool,
            std::slice::from_ref(&fourth),
            Lookup::OnConflict,
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        waiting[&fourth.ticket_id],
        (TicketStatus::Waitlisted, None),
        "still waiting"
    );
    assert_eq!(
        stack.terms("seen").await,
        (3, 3, 0),
        "three units, one each"
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE sale_id = $1",
            "seen"
        )
        .await,
        3
    );
    assert_eq!(
        stack
            .worker_metric("flashgate_reserve_batches_decided_again_total")
            .await
            .map(|n| n >= 1.0),
        Some(true),
        "the second batch was decided again, looking its tickets up"
    );
    stack.assert_invariants("seen", Some(4)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_copies_of_one_ticket_far_apart_in_a_batch_are_decided_once() {
    let stack = Stack::start().await;
    stack.create_sale("twice", 5).await;
    let first = issued_ticket("twice", 1, "forgotten", Some("pm_card_visa"));
    // Redis forgot the claim and the door issued the same ticket again, later in line.
    let mut again = first.clone();
    again.seq = 3;
    publish_together(
        &stack,
        vec![
            first,
            issued_ticket("twice", 2, "other", Some("pm_card_visa")),
            again,
        ],
    )
    .await;
    wait_until(30, "both customers are decided", || async {
        stack.decided("twice").await == 2
    })
    .await;
    wait_until(30, "both are paid", || async {
        stack.terms("twice").await == (5, 0, 2)
    })
    .await;
    stack.assert_invariants("twice", Some(2)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_the_database_refuses_for_good_does_not_sink_its_batch() {
    let stack = Stack::start().await;
    stack.create_sale("sunk", 5).await;
    let mut poison = issued_ticket("sunk", 2, "poison", None);
    poison.seq = -2; // breaks tickets.seq > 0: a message that can never be handled
    publish_together(
        &stack,
        vec![
            issued_ticket("sunk", 1, "good-1", Some("pm_card_visa")),
            poison,
            issued_ticket("sunk", 3, "good-2", Some("pm_card_visa")),
        ],
    )
    .await;
    wait_until(30, "the good tickets are decided and paid", || async {
        stack.terms("sunk").await == (5, 0, 2)
    })
    .await;
    let amqp = stack.direct_amqp();
    wait_until(30, "the bad ticket alone is dead-lettered", || async {
        flashgate_workers::dlq::list(&amqp, 10).await.unwrap().len() == 1
    })
    .await;
    let letters = flashgate_workers::dlq::list(&amqp, 10).await.unwrap();
    let letter = serde_json::to_value(&letters[0]).unwrap();
    assert_eq!(letter["body"]["customer_id"], "poison");
    stack.assert_invariants("sunk", Some(2)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_a_canceled_payment_released_goes_to_the_wait_list_before_a_later_fresh_ticket() {
    // The maintenance loop runs once at start only: the wait-list is served by the next
    // reservation batch or not at all.
    let stack = Stack::start_with(|c| c.worker.sweep_interval_ms = 3_600_000).await;
    stack.create_sale("line", 1).await;
    let take = |customer: &'static str, pm: Option<&'static str>| {
        let stack = &stack;
        async move {
            let response = stack.take_ticket("line", customer, pm).await;
            assert_eq!(response.status(), 202, "{customer} admitted");
            let ticket: Value = response.json().await.unwrap();
            ticket["ticket"].as_str().unwrap().to_owned()
        }
    };
    let holder = take("holder", None).await;
    let (pending, _) = stack
        .await_ticket(&holder, |t| t["status"] == "payment_pending")
        .await;
    let waiter = take("waiter", Some("pm_card_visa")).await;
    stack
        .await_ticket(&waiter, |t| t["status"] == "waitlisted")
        .await;
    // The holder's payment is canceled at Stripe (a declined card in the browser keeps
    // the unit for another card): the webhook releases the unit.
    let key = stack.config.stripe.api_key.as_ref().unwrap();
    let canceled = stack
        .http
        .post(stack.stripe(&format!(
            "/v1/payment_intents/{}/cancel",
            pending["payment"]["payment_intent"].as_str().unwrap()
        )))
        .bearer_auth(secrecy::ExposeSecret::expose_secret(key))
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 200);
    assert_eq!(stack.await_final(&holder).await["status"], "failed");
    let fresh = take("fresh", Some("pm_card_visa")).await;
    assert_eq!(
        stack.await_final(&waiter).await["status"],
        "paid",
        "first in line"
    );
    stack
        .await_ticket(&fresh, |t| t["status"] == "waitlisted")
        .await;
    stack.assert_invariants("line", None).await;
    stack.stop().await;
}

/// Tickets decided after a later ticket of their sale are counted as FIFO inversions (a
/// sale's operator sees the queue's order broken, e.g. by two workers' batches crossing),
/// and each ticket told sold out is observed in the time-to-final-answer histogram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_decided_out_of_sequence_are_counted_and_sold_out_answers_are_timed() {
    let stack = Stack::start().await;
    stack
        .create_sale_with(
            "crossed",
            serde_json::json!({ "stock": 3, "rate_per_second": 100000, "burst": 100000, "waitlist": false }),
        )
        .await;
    let finals = "flashgate_ticket_final_seconds_count{outcome=\"sold_out\"}";
    let before = stack.worker_metric(finals).await.unwrap_or(0.0);
    let later: Vec<_> = (5..=8)
        .map(|seq| issued_ticket("crossed", seq, &format!("later-{seq}"), None))
        .collect();
    let earlier: Vec<_> = (1..=4)
        .map(|seq| issued_ticket("crossed", seq, &format!("earlier-{seq}"), None))
        .collect();
    flashgate_workers::reserve::decide::decide(&stack.pool, &later, Lookup::OnConflict)
        .await
        .unwrap();
    flashgate_workers::reserve::decide::decide(&stack.pool, &earlier, Lookup::OnConflict)
        .await
        .unwrap();
    assert_eq!(
        stack
            .worker_metric("flashgate_tickets_out_of_sequence_total{sale=\"crossed\"}")
            .await,
        Some(4.0),
        "the four earlier tickets were decided after ticket 8"
    );
    // 5, 6 and 7 got the units; 8 and then 1 to 4 were told sold out (the recorder is
    // shared with the tests running beside this one: at least these five).
    let after = stack.worker_metric(finals).await.unwrap();
    assert!(after - before >= 5.0, "{before} then {after}");
    stack.assert_invariants("crossed", Some(8)).await;
    stack.stop().await;
}

/// A wait-list that can no longer be served is closed a bounded number of tickets per
/// transaction, not in one statement: closing the door benchmark's 330,000 wait-listed
/// tickets at once held them all in the worker (292.8 MiB, `all-20261205-184654`) and the
/// sale's row lock for the whole statement. Each chunk commits on its own, so its tickets
/// share a `decided_at` (the transaction's start) that the next chunk's do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_list_is_closed_in_bounded_transactions_and_every_ticket_is_told() {
    use flashgate_workers::reserve::waitlist::CLOSE_BATCH;
    let stack = Stack::start().await;
    stack
        .create_sale_with(
            "long",
            serde_json::json!({ "stock": 1, "hold_seconds": 5, "waitlist": true }),
        )
        .await;
    // The one unit is held without a card, so the rest wait for it; it runs out, goes to
    // the first in line (who pays with a saved card), and then nothing can come back.
    stack
        .publish_tickets("long", &tickets("holder-", 1, 1, None))
        .await;
    wait_until(30, "the holder's ticket is decided", || async {
        stack.decided("long").await == 1
    })
    .await;
    let waiting = 2 * CLOSE_BATCH + 7;
    stack
        .publish_tickets(
            "long",
            &tickets("waiter-", 2, waiting, Some("pm_card_visa")),
        )
        .await;
    wait_until(120, "the wait-list is closed", || async {
        count(
            &stack,
            "SELECT count(*) FROM tickets WHERE sale_id = $1 AND decision = 'sold_out'",
            "long",
        )
        .await
            == waiting - 1
    })
    .await;

    let chunks: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
        "SELECT decided_at, count(*), min(seq), max(seq) FROM tickets
         WHERE sale_id = 'long' AND decision = 'sold_out' GROUP BY decided_at ORDER BY min(seq)",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(chunks.len(), 3, "closed in three transactions: {chunks:?}");
    assert!(
        chunks.iter().all(|(_, n, _, _)| *n <= CLOSE_BATCH),
        "{chunks:?}"
    );
    assert!(
        chunks.windows(2).all(|w| w[0].3 < w[1].2),
        "first in line closed first: {chunks:?}"
    );
    let (waitlisted, sold): (i32, i32) =
        sqlx::query_as("SELECT waitlisted, sold FROM sales WHERE id = 'long'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!((waitlisted, sold), (0, 1));

    // Every closed ticket's page shows it: its status was published with its chunk.
    let closed: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM tickets WHERE sale_id = 'long' AND decision = 'sold_out'",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let ctx = stack.worker_context().await;
    let sale = flashgate_common::domain::SaleId::parse("long").unwrap();
    for ticket in closed {
        let (view, _) = ctx.redis.read_ticket(&sale, ticket).await.unwrap();
        assert_eq!(
            view.map(|v| v.status),
            Some(TicketStatus::SoldOut),
            "{ticket}"
        );
    }
    stack.assert_invariants("long", Some(waiting + 1)).await;
    stack.stop().await;
}
