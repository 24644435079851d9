//! The maintenance loop's housekeeping: retention deletes only what deduplication, the
//! outbox relay and the audit no longer need.

use serde_json::Value;

use crate::support::{Stack, count};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_only_what_deduplication_relay_and_audit_no_longer_need() {
    // The relay runs only when the test calls it: a sweep relaying the old unrelayed event
    // between its insert and the retention pass made this test fail now and then.
    let stack = Stack::start_with(|c| c.worker.sweep_interval_ms = 3_600_000).await;
    let ctx = stack.worker_context().await;
    stack.create_sale("kept", 2).await;
    for customer in ["old", "new"] {
        let ticket: Value = stack
            .take_ticket("kept", customer, Some("pm_card_visa"))
            .await
            .json()
            .await
            .unwrap();
        stack.await_final(ticket["ticket"].as_str().unwrap()).await;
    }
    crate::support::wait_until(
        30,
        "both orders' events are received and relayed",
        || async {
            flashgate_workers::maintenance::relay(&ctx, 500)
                .await
                .unwrap();
            count(
                &stack,
                "SELECT count(*) FROM stripe_events WHERE $1 <> ''",
                "x",
            )
            .await
                >= 2
                && count(
                    &stack,
                    "SELECT count(*) FROM order_events WHERE published_at IS NULL AND $1 <> ''",
                    "x",
                )
                .await
                    == 0
        },
    )
    .await;
    let old_order: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM orders WHERE customer_id = 'old'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    for sql in [
        "UPDATE stripe_events SET received_at = now() - interval '31 days' WHERE order_id = $1",
        "UPDATE order_events SET created_at = now() - interval '8 days' WHERE order_id = $1",
    ] {
        sqlx::query(sql)
            .bind(old_order)
            .execute(&stack.pool)
            .await
            .unwrap();
    }
    // An old event the relay has not published yet must survive.
    sqlx::query("INSERT INTO order_events (order_id, kind, payload, created_at) VALUES ($1, 'order.test.v1', '{}', now() - interval '30 days')")
        .bind(old_order)
        .execute(&stack.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE admission_audit SET at = now() - interval '400 days'")
        .execute(&stack.pool)
        .await
        .unwrap();
    // A worker gone for two hours, one that wrote just now.
    sqlx::query(
        "INSERT INTO stripe_latency (worker, at, calls, errors) VALUES
             ('gone:1', now() - interval '2 hours', 5, 0), ('live:2', now(), 5, 0)",
    )
    .execute(&stack.pool)
    .await
    .unwrap();
    let deleted = flashgate_workers::maintenance::retention::apply(&ctx)
        .await
        .unwrap();
    assert!(
        deleted.stripe_events >= 1
            && deleted.order_events >= 1
            && deleted.audit >= 1
            && deleted.stripe_latency >= 1,
        "{deleted:?}"
    );
    assert_eq!(
        left_workers(&stack).await,
        vec!["live:2".to_owned()],
        "a gone worker's Stripe figures go, a live one's stay"
    );
    let left = |sql: &'static str| count(&stack, sql, "x");
    assert_eq!(left("SELECT count(*) FROM stripe_events WHERE received_at < now() - interval '30 days' AND $1 <> ''").await, 0);
    assert!(
        left("SELECT count(*) FROM stripe_events WHERE $1 <> ''").await >= 1,
        "recent events kept"
    );
    assert_eq!(
        left("SELECT count(*) FROM order_events WHERE kind = 'order.test.v1' AND $1 <> ''").await,
        1,
        "unrelayed kept"
    );
    assert!(left("SELECT count(*) FROM order_events WHERE created_at > now() - interval '1 day' AND $1 <> ''").await >= 1);
    assert_eq!(
        left("SELECT count(*) FROM admission_audit WHERE $1 <> ''").await,
        0
    );
    stack.stop().await;
}

/// The workers whose Stripe figures are kept, apart from this test's own worker's.
async fn left_workers(stack: &Stack) -> Vec<String> {
    sqlx::query_scalar("SELECT worker FROM stripe_latency WHERE worker IN ('gone:1', 'live:2')")
        .fetch_all(&stack.pool)
        .await
        .unwrap()
}

/// The presence sweep reads the holds of shoppers paying in the page and nothing else:
/// unpaid holds waiting for their payment to start (a payment backlog, a sale of many
/// units) are not in its way, however many there are. It used to read every live hold,
/// every sweep, and drop the ones it did not want.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_presence_sweep_reads_only_the_holds_paid_in_the_page() {
    use flashgate_common::ledger::payment::shopper_holds;
    use flashgate_common::testkit::TestEnv;

    let env = TestEnv::new().await;
    // 20,000 live holds: two whose shoppers pay in the page, the rest not started yet.
    // Inserted after the table's statistics were taken (here: never), as in a sale, where
    // the orders arrive faster than autovacuum samples them.
    sqlx::query(
        "INSERT INTO orders (id, ticket_id, sale_id, customer_id, quantity, amount, currency,
                             status, hold_expires_at)
         SELECT gen_random_uuid(), gen_random_uuid(), 'big', 'c' || n, 1, 1500, 'eur',
                CASE WHEN n % 7000 = 0 THEN 'payment_pending' ELSE 'reserved' END,
                now() + interval '10 minutes'
         FROM generate_series(1, 20000) AS n",
    )
    .execute(&env.pool)
    .await
    .unwrap();

    let holds = shopper_holds(&env.pool, uuid::Uuid::nil(), 1000)
        .await
        .unwrap();
    assert_eq!(holds.len(), 2, "the holds paid in the page: {holds:?}");

    // The rows of `orders` that pass read, once its backend has reported them (it does
    // when idle, within a second or so): nothing else reads the table in this database.
    let read: i64 = crate::support::poll_until(10, "the sweep's reads are reported", || async {
        let read: i64 = sqlx::query_scalar(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
             FROM pg_stat_user_tables WHERE relname = 'orders'",
        )
        .fetch_one(&env.pool)
        .await
        .unwrap();
        (read > 0).then_some(read)
    })
    .await;
    assert_eq!(
        read,
        holds.len() as i64,
        "rows of orders the sweep read, against the holds it wanted"
    );
}

/// A status change Redis did not take reaches the shopper once Redis is back. Polls read
/// Redis first, so before such changes were kept, a shopper whose payment form (here) or
/// `paid` was lost to a Redis outage kept reading the status before it for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_redis_did_not_take_is_published_by_the_sweep_once_it_is_back() {
    use flashgate_common::domain::{SaleId, TicketStatus};
    use flashgate_common::live::Redis;
    use flashgate_common::live::tickets::StatusUpdate;
    use flashgate_common::testkit::{FaultProxy, ProxyMode};

    let stack = crate::support::Stack::start_custom(
        &[
            crate::support::Role::Admission,
            crate::support::Role::Webhook,
            crate::support::Role::Catalog,
        ],
        None,
        |_| {},
    )
    .await;
    stack.create_sale("unheard", 2).await;
    let order = uuid::Uuid::now_v7();
    crate::support::insert_reserved_order(&stack, "unheard", order).await;
    let ticket: uuid::Uuid = sqlx::query_scalar("SELECT ticket_id FROM orders WHERE id = $1")
        .bind(order)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let sale = SaleId::parse("unheard").unwrap();
    let ctx = stack.worker_context().await;
    ctx.redis
        .write_statuses(&[StatusUpdate::new(
            sale.clone(),
            ticket,
            TicketStatus::Reserved,
        )])
        .await
        .unwrap();

    // The payment starts while Redis is away from this worker.
    let proxy = FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let mut away = stack.worker_context().await;
    let mut config = stack.config.redis.clone();
    config.url = format!("redis://{}/0", proxy.addr());
    away.redis = Redis::connect(&config).unwrap();
    proxy.set(ProxyMode::Refuse);
    flashgate_workers::pay::intent::pay(&away, order)
        .await
        .unwrap();
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM orders WHERE id::text = $1 AND status = 'payment_pending'",
            &order.to_string()
        )
        .await,
        1,
        "the payment started"
    );
    let shown = |ctx: &flashgate_workers::Context| {
        let (redis, sale) = (ctx.redis.clone(), sale.clone());
        async move { redis.read_ticket(&sale, ticket).await.unwrap().0.unwrap() }
    };
    assert_eq!(
        shown(&ctx).await.status,
        TicketStatus::Reserved,
        "Redis missed it"
    );

    flashgate_workers::maintenance::sweep(&ctx).await;
    let view = shown(&ctx).await;
    assert_eq!(view.status, TicketStatus::PaymentPending);
    assert!(
        view.client_secret.is_some(),
        "the shopper's page can take the payment"
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM unpublished_tickets WHERE ticket_id::text = $1",
            &ticket.to_string()
        )
        .await,
        0,
        "published, then forgotten"
    );
    stack.stop().await;
}

/// A ticket two commits kept for the sweep is forgotten only by the newer one's settle:
/// the older write settling after the newer change was kept must leave it owed, or a
/// worker dying before the newer write would leave Redis on the older status for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_forgets_a_kept_ticket_only_if_no_newer_change_kept_it_again() {
    use flashgate_common::ledger::unpublished;
    use flashgate_common::testkit::TestEnv;

    let env = TestEnv::new().await;
    let ticket = uuid::Uuid::now_v7();
    let owe = || async {
        let mut tx = env.pool.begin().await.unwrap();
        let owed = unpublished::owe(&mut tx, [ticket, ticket]).await.unwrap();
        tx.commit().await.unwrap();
        owed
    };
    let kept = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM unpublished_tickets WHERE ticket_id = $1",
        )
        .bind(ticket)
        .fetch_one(&env.pool)
        .await
        .unwrap()
    };
    let older = owe().await;
    let newer = owe().await;
    assert_eq!(kept().await, 1);
    unpublished::settle(&env.pool, older).await.unwrap();
    assert_eq!(kept().await, 1, "the newer change is still owed");
    unpublished::settle(&env.pool, newer).await.unwrap();
    assert_eq!(kept().await, 0, "settled");
    env.cleanup().await;
}

/// A Redis outage during a large wait-list close leaves thousands of tickets kept; once
/// Redis is back, one sweep publishes them all. It took one sweep (a second) per 500
/// before, so shoppers read `waitlisted` for minutes after a long outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_redis_is_back_one_sweep_publishes_a_large_backlog_of_kept_statuses() {
    use flashgate_common::domain::{SaleId, TicketStatus};

    let stack = crate::support::Stack::start_custom(
        &[
            crate::support::Role::Admission,
            crate::support::Role::Catalog,
        ],
        None,
        |_| {},
    )
    .await;
    stack.create_sale("backlog", 1).await;
    let kept: Vec<uuid::Uuid> = sqlx::query_scalar(
        "WITH issued AS (
             INSERT INTO tickets (id, sale_id, customer_id, seq, quantity, decision, issued_at)
             SELECT gen_random_uuid(), 'backlog', 'waiter-' || n, n, 1, 'sold_out', now()
             FROM generate_series(1, 2500) AS n
             RETURNING id)
         INSERT INTO unpublished_tickets (ticket_id) SELECT id FROM issued RETURNING ticket_id",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(kept.len(), 2500);

    let ctx = stack.worker_context().await;
    flashgate_workers::maintenance::sweep(&ctx).await;
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM unpublished_tickets u JOIN tickets t ON t.id = u.ticket_id
             WHERE t.sale_id = $1",
            "backlog"
        )
        .await,
        0,
        "every kept ticket published in one sweep"
    );
    let sale = SaleId::parse("backlog").unwrap();
    for ticket in [kept[0], kept[kept.len() - 1]] {
        let (view, _) = ctx.redis.read_ticket(&sale, ticket).await.unwrap();
        assert_eq!(view.unwrap().status, TicketStatus::SoldOut);
    }
    stack.stop().await;
}
