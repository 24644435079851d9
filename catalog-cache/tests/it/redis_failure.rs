//! A hung or dead Redis (a fault proxy in front of the real one) degrades the catalog to
//! PostgreSQL: requests keep succeeding within the Redis timeout plus a margin, the
//! breaker opens, and everything recovers by itself once Redis is back: reads, the
//! invalidation feed, and deletes that could not be delivered during the outage.

use std::time::{Duration, Instant};

use flashgate_common::Config;
use flashgate_common::domain::SaleTerms;
use flashgate_common::testkit::{FaultProxy, ProxyMode};
use serde_json::Value;

use crate::support::{
    App, create_product, create_sale, product_body, setup, wait_until, write_terms,
};

/// The Redis response timeout of these tests.
const TIMEOUT_MS: u64 = 200;
/// Before the breaker opens a request may wait out two Redis calls (product, then
/// availability); the rest is margin for a busy machine, not a speed target.
const BOUND: Duration = Duration::from_millis(2 * TIMEOUT_MS + 1000);

async fn proxy() -> FaultProxy {
    FaultProxy::start("127.0.0.1:6379".parse().unwrap()).await
}

/// Points `config` at Redis through `proxy`, with a short response timeout. Connecting
/// may take longer (as in production), so only the catalog's own per-call deadline keeps
/// a request from waiting out a reconnect.
fn through(proxy: &FaultProxy, config: &mut Config) {
    config.redis.url = format!("redis://{}/0", proxy.addr());
    config.redis.response_timeout_ms = TIMEOUT_MS;
    config.redis.connect_timeout_ms = 5 * TIMEOUT_MS;
}

/// Reads two products and two listings; each must succeed within [`BOUND`].
async fn read_everything(app: &App, phase: &str) {
    let paths = [
        "/v1/products/rf-1",
        "/v1/products/rf-2",
        "/v1/products?limit=10",
        "/v1/products?category=shoes",
    ];
    for path in paths {
        let started = Instant::now();
        let response = app.get(path).await;
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 200, "{phase}: GET {path}");
        assert!(elapsed < BOUND, "{phase}: GET {path} took {elapsed:?}");
        let body: Value = response.json().await.unwrap();
        if path == "/v1/products/rf-1" {
            assert_eq!(body["name"], "Sneaker one", "{phase}");
            assert_eq!(body["availability"]["remaining"], 7, "{phase}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_or_dead_redis_degrades_to_postgres_and_recovers_by_itself() {
    let proxy = proxy().await;
    let (env, config) = setup(|c| {
        through(&proxy, c);
        // Every read goes past L1, so each one meets Redis (or its absence).
        c.catalog.l1_ttl_ms = 1;
        c.catalog.availability_ttl_ms = 1;
    })
    .await;
    create_product(&env.pool, "rf-1", "Sneaker one", "shoes").await;
    create_product(&env.pool, "rf-2", "Sneaker two", "shoes").await;
    create_sale(&env.pool, "rf-sale", "rf-1", 7).await;
    let terms = SaleTerms {
        version: 1,
        stock: 7,
        reserved: 0,
        sold: 0,
        decided: 0,
        waitlisted: 0,
    };
    write_terms(&config, "rf-sale", terms).await;
    let running = App::start(&config).await;
    let app = &running;
    wait_until(10, "the caches are warm", || async move {
        let before = app.catalog.stats().db_reads();
        read_everything(app, "warming").await;
        app.catalog.stats().db_reads() == before
    })
    .await;
    for mode in [ProxyMode::Blackhole, ProxyMode::Refuse] {
        let before = app.catalog.stats();
        proxy.set(mode);
        let phase = format!("{mode:?}");
        let phase = phase.as_str();
        wait_until(10, &format!("{phase}: the breaker opens"), || async move {
            read_everything(app, phase).await;
            app.catalog.redis_bypassed()
        })
        .await;
        read_everything(app, phase).await;
        let during = app.catalog.stats();
        assert!(during.redis_failures > before.redis_failures, "{during:?}");
        assert!(during.redis_bypassed > before.redis_bypassed, "{during:?}");
        assert!(
            during.db_product_reads > before.db_product_reads,
            "{during:?}"
        );
        assert!(
            during.db_availability_reads > before.db_availability_reads,
            "{during:?}"
        );
        proxy.set(ProxyMode::Pass);
        let hits = during.redis_hits;
        wait_until(
            20,
            &format!("{phase}: Redis is used again"),
            || async move {
                read_everything(app, "recovering").await;
                !app.catalog.redis_bypassed() && app.catalog.stats().redis_hits > hits
            },
        )
        .await;
    }
    running.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_redis_outage_is_not_shadowed_by_old_entries_afterwards() {
    let proxy = proxy().await;
    let (env, config) = setup(|c| through(&proxy, c)).await;
    let mut direct = env.config.clone();
    // The reader asks Redis on every read: what Redis holds is what it serves.
    direct.catalog.l1_ttl_ms = 1;
    create_product(&env.pool, "out-1", "Before the outage", "shoes").await;
    let writer = App::start(&config).await;
    let reading = App::start(&direct).await;
    let reader = &reading;
    assert_eq!(reader.name_of("out-1").await, "Before the outage");
    let reads = reader.catalog.stats().db_product_reads;
    wait_until(5, "the reader is served from Redis", || async move {
        reader.name_of("out-1").await;
        reader.catalog.stats().redis_hits > 0
    })
    .await;
    proxy.set(ProxyMode::Refuse);
    let body = product_body("During the outage", "shoes");
    let started = Instant::now();
    assert_eq!(writer.put_product("out-1", &body).await.status(), 200);
    assert!(
        started.elapsed() < BOUND,
        "the write waited {:?}",
        started.elapsed()
    );
    let catalog = writer.catalog.clone();
    wait_until(10, "the delete and the second delete failed", || {
        let failed = catalog.stats().undelivered_invalidations;
        async move { failed >= 2 }
    })
    .await;
    let stale = reader.name_of("out-1").await;
    assert_eq!(stale, "Before the outage", "Redis still holds it");
    proxy.set(ProxyMode::Pass);
    wait_until(20, "the delete reaches Redis", || async move {
        reader.name_of("out-1").await == "During the outage"
    })
    .await;
    // Nobody else read the new value, so the reader's refill came from PostgreSQL.
    assert!(reader.catalog.stats().db_product_reads > reads);
    writer.stop().await;
    reading.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invalidation_feed_resubscribes_after_redis_comes_back() {
    let proxy = proxy().await;
    let (env, config) = setup(|c| {
        through(&proxy, c);
        c.catalog.l1_ttl_ms = 60_000;
    })
    .await;
    let mut direct = env.config.clone();
    direct.catalog.l1_ttl_ms = 60_000;
    create_product(&env.pool, "feed-1", "Old name", "shoes").await;
    let follower = App::start(&config).await;
    let writer = App::start(&direct).await;
    let catalog = follower.catalog.clone();
    proxy.set(ProxyMode::Blackhole);
    wait_until(10, "the feed is down", || {
        let live = catalog.invalidations_live();
        async move { !live }
    })
    .await;
    proxy.set(ProxyMode::Pass);
    wait_until(20, "the feed is back", || {
        let live = catalog.invalidations_live();
        async move { live }
    })
    .await;
    // From here the follower keeps the old product in L1 for a minute.
    assert_eq!(follower.name_of("feed-1").await, "Old name");
    let body = product_body("New name", "shoes");
    assert_eq!(writer.put_product("feed-1", &body).await.status(), 200);
    let follower_ref = &follower;
    wait_until(5, "the follower drops its copy", || async move {
        follower_ref.name_of("feed-1").await == "New name"
    })
    .await;
    follower.stop().await;
    writer.stop().await;
    env.cleanup().await;
}
