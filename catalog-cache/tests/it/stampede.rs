//! Stampede protection: concurrent misses of one key cost one query, unknown skus are
//! cached as missing, and an expired hot entry is served stale while one reader
//! refreshes it.

use chrono::Utc;
use serde_json::Value;

use crate::support::{App, create_product, setup, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_for_a_cold_product_cause_one_database_query() {
    let (env, config) = setup(|c| {
        c.catalog.l1_ttl_ms = 60_000;
        // The fill waits on the table lock below until every request has arrived.
        c.database.statement_timeout_ms = 60_000;
    })
    .await;
    create_product(&env.pool, "hot-1", "Hot sneaker", "shoes").await;
    let app = App::start(&config).await;
    // Hold the table so the one fill cannot finish before every request has missed.
    let mut lock = env.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let url = app.url("/v1/products/hot-1");
    let requests: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(app.http.get(&url).send()))
        .collect();
    let catalog = app.catalog.clone();
    wait_until(60, "all 1000 requests missed L1", || {
        let misses = catalog.stats().l1_misses;
        async move { misses == 1000 }
    })
    .await;
    lock.commit().await.unwrap();
    for request in requests {
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["name"], "Hot sneaker");
    }
    let stats = app.catalog.stats();
    assert_eq!(stats.db_product_reads, 1, "{stats:?}");
    assert_eq!(stats.db_reads(), 1, "{stats:?}");
    assert_eq!(stats.coalesced_waits, 999, "{stats:?}");
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_skus_are_cached_as_missing_until_the_product_is_created() {
    let (env, config) = setup(|c| c.catalog.l1_ttl_ms = 60_000).await;
    let first = App::start(&config).await;
    for _ in 0..20 {
        assert_eq!(first.get("/v1/products/ghost-1").await.status(), 404);
    }
    assert_eq!(first.catalog.stats().db_product_reads, 1);
    // A second process finds the negative entry in Redis once the first has written it.
    let redis = flashgate_common::live::Redis::connect(&config.redis)
        .unwrap()
        .conn();
    let key = format!("{}catalog:p:ghost-1", config.redis.prefix);
    wait_until(5, "the negative entry is in Redis", || {
        let (mut redis, key) = (redis.clone(), key.clone());
        async move {
            let found: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap();
            found.is_some()
        }
    })
    .await;
    let second = App::start(&config).await;
    assert_eq!(second.get("/v1/products/ghost-1").await.status(), 404);
    assert_eq!(second.catalog.stats().db_product_reads, 0);
    assert_eq!(second.catalog.stats().redis_hits, 1);
    let created = first
        .put_product("ghost-1", &crate::support::product_body("Now real", "hats"))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(first.name_of("ghost-1").await, "Now real");
    let second_ref = &second;
    wait_until(5, "the second process sees the product", || async move {
        second_ref.get("/v1/products/ghost-1").await.status() == 200
    })
    .await;
    first.stop().await;
    second.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entry_is_served_stale_while_one_background_refresh_replaces_it() {
    let (env, config) = setup(|c| {
        c.catalog.l1_ttl_ms = 1;
        c.catalog.redis_ttl_secs = 1;
    })
    .await;
    create_product(&env.pool, "swr-1", "Old name", "shoes").await;
    let app = App::start(&config).await;
    assert_eq!(app.name_of("swr-1").await, "Old name");
    let key = format!("{}catalog:p:swr-1", config.redis.prefix);
    let redis = flashgate_common::live::Redis::connect(&config.redis).unwrap();
    let entry = || {
        let mut conn = redis.conn();
        let key = key.clone();
        async move {
            let raw: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            raw.map(|r| serde_json::from_str::<Value>(&r).unwrap())
        }
    };
    let entry = &entry;
    wait_until(5, "the entry is in Redis", || async move {
        entry().await.is_some()
    })
    .await;
    sqlx::query("UPDATE products SET name = 'New name' WHERE sku = 'swr-1'")
        .execute(&env.pool)
        .await
        .unwrap();
    wait_until(5, "the entry's logical TTL is over", || async move {
        let expires = entry().await.unwrap()["expires_at_ms"].as_i64().unwrap();
        Utc::now().timestamp_millis() > expires
    })
    .await;
    assert_eq!(
        app.name_of("swr-1").await,
        "Old name",
        "served stale, at once"
    );
    wait_until(5, "the refresh replaced the entry", || async move {
        entry().await.unwrap()["value"]["name"] == "New name"
    })
    .await;
    assert_eq!(app.name_of("swr-1").await, "New name");
    assert_eq!(app.catalog.stats().db_product_reads, 2);
    app.stop().await;
    env.cleanup().await;
}
