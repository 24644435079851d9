//! Worker processes killed mid-batch and run side by side on one sale, and a batch sized
//! in tickets across processes: the real `flashgate worker` binary, started by the test.

use flashgate::stack::Role;
use flashgate_common::amqp::messages::TicketMessage;
use flashgate_common::amqp::{Publisher, message_properties};

use crate::support::{Processes, Stack, count, issued_ticket, tickets, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_and_two_workers_on_one_sale_oversell_nothing_and_lose_nothing() {
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Webhook, Role::Catalog],
        None,
        |_| {},
    )
    .await;
    stack.create_sale("crash", 100).await;
    stack
        .publish_tickets("crash", &tickets("c-", 1, 3000, Some("pm_card_visa")))
        .await;

    let mut first = stack.spawn_worker();
    wait_until(60, "the first worker commits a batch", || async {
        stack.decided("crash").await > 0
    })
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let decided_at_kill = stack.decided("crash").await;
    assert!(
        decided_at_kill < 3000,
        "killed mid-flow ({decided_at_kill} decided)"
    );

    let (_second, _third) = (stack.spawn_worker(), stack.spawn_worker());
    wait_until(90, "every ticket is decided", || async {
        stack.decided("crash").await == 3000
    })
    .await;
    wait_until(60, "every reserved unit is paid", || async {
        stack.terms("crash").await == (100, 0, 100)
    })
    .await;
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM tickets WHERE sale_id = $1",
            "crash"
        )
        .await,
        3000
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE sale_id = $1",
            "crash"
        )
        .await,
        100
    );
    stack.assert_invariants("crash", Some(3000)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_sized_in_tickets_not_in_messages() {
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Webhook, Role::Catalog],
        None,
        |_| {},
    )
    .await;
    stack.create_sale("sized", 100).await;
    let amqp = stack.direct_amqp();
    let queue = amqp.topology().tickets();
    for message in 0..3 {
        let tickets: Vec<_> = (1..=3)
            .map(|n| {
                let seq = message * 3 + n;
                issued_ticket("sized", seq, &format!("s-{seq}"), None)
            })
            .collect();
        let properties = flashgate_common::amqp::with_ticket_count(
            message_properties(&format!("m{message}"), None),
            tickets.len(),
        );
        let payload = serde_json::to_vec(&TicketMessage::of(tickets)).unwrap();
        Publisher::new(amqp.clone())
            .publish("", &queue, &payload, properties)
            .await
            .unwrap();
    }
    let _worker = stack.spawn_worker_with(&[
        ("FLASHGATE_WORKER__BATCH_SIZE", "4"),
        ("FLASHGATE_WORKER__BATCH_WAIT_MS", "2000"),
    ]);
    wait_until(60, "every ticket is decided", || async {
        stack.decided("sized").await == 9
    })
    .await;
    // One transaction decides its tickets at one `now()`.
    let per_transaction: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM tickets WHERE sale_id = 'sized' GROUP BY decided_at ORDER BY 1",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(
        per_transaction,
        [3, 6],
        "two messages (6 tickets) reach the limit of 4; the third goes next"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_holds_no_more_of_a_backlog_than_its_prefetch() {
    let stack = Stack::start_custom(
        &[Role::Admission, Role::Webhook, Role::Catalog],
        None,
        |_| {},
    )
    .await;
    stack.create_sale("backlog", 1000).await;
    stack
        .publish_tickets("backlog", &tickets("b-", 1, 600, None))
        .await;
    // A batch waits long enough to take every ticket its prefetch lets it hold.
    let _worker = stack.spawn_worker_with(&[
        ("FLASHGATE_WORKER__RESERVE_PREFETCH", "100"),
        ("FLASHGATE_WORKER__BATCH_WAIT_MS", "300"),
    ]);
    wait_until(60, "every ticket is decided", || async {
        stack.decided("backlog").await == 600
    })
    .await;
    // One transaction decides its tickets at one `now()`; each message carries one.
    let per_transaction: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM tickets WHERE sale_id = 'backlog' GROUP BY decided_at ORDER BY 1 DESC",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert!(
        per_transaction[0] <= 100 && per_transaction.len() >= 6,
        "the backlog of 600 is taken 100 messages at a time at most: {per_transaction:?}"
    );
    stack.stop().await;
}
