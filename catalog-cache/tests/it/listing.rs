//! Listing: keyset pagination in sku order with an opaque cursor, a category filter,
//! and a default page size.

use serde_json::Value;

use crate::support::{App, create_product, setup};

fn skus(page: &Value) -> Vec<&str> {
    let products = page["products"].as_array().unwrap();
    products
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_follow_the_cursor_and_filter_by_category() {
    let (env, config) = setup(|_| {}).await;
    for (sku, category) in [
        ("a-1", "shoes"),
        ("b-2", "hats"),
        ("c-3", "shoes"),
        ("d-4", "hats"),
        ("e-5", "shoes"),
    ] {
        create_product(&env.pool, sku, &format!("Product {sku}"), category).await;
    }
    let app = App::start(&config).await;
    let first = app.get_json("/v1/products?limit=2").await;
    assert_eq!(skus(&first), ["a-1", "b-2"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get_json(&format!("/v1/products?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(skus(&second), ["c-3", "d-4"]);
    let cursor = second["next_cursor"].as_str().unwrap();
    let last = app
        .get_json(&format!("/v1/products?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(skus(&last), ["e-5"]);
    assert!(last["next_cursor"].is_null());
    let shoes = app.get_json("/v1/products?category=shoes&limit=2").await;
    assert_eq!(skus(&shoes), ["a-1", "c-3"]);
    let cursor = shoes["next_cursor"].as_str().unwrap();
    let more = app
        .get_json(&format!(
            "/v1/products?category=shoes&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(skus(&more), ["e-5"]);
    let all = app.get_json("/v1/products").await;
    assert_eq!(skus(&all).len(), 5);
    let none = app.get_json("/v1/products?category=socks").await;
    assert!(skus(&none).is_empty() && none["next_cursor"].is_null());
    let product = &all["products"][0];
    for field in [
        "name",
        "description",
        "price",
        "currency",
        "attributes",
        "images",
    ] {
        assert!(!product[field].is_null(), "{field} missing: {product}");
    }
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_cursors_cannot_grow_the_page_cache_without_bound() {
    let (env, config) = setup(|_| {}).await;
    create_product(&env.pool, "a-1", "Product a-1", "shoes").await;
    let app = App::start(&config).await;
    // Every cursor a valid sku that exists nowhere: each a distinct page to cache.
    for n in 0..2100 {
        let cursor = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!("zz-{n:05}"),
        );
        let page = app.get(&format!("/v1/products?cursor={cursor}")).await;
        assert_eq!(page.status(), 200);
    }
    let redis = flashgate_common::live::Redis::connect(&config.redis).unwrap();
    let pages = redis.keys().product_pages();
    let count = || async {
        redis::cmd("HLEN")
            .arg(&pages)
            .query_async::<usize>(&mut redis.conn())
            .await
            .unwrap()
    };
    crate::support::wait_until(10, "the background writes land", || async {
        count().await == 2000
    })
    .await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(&pages)
        .query_async(&mut redis.conn())
        .await
        .unwrap();
    assert!(ttl > 0, "the hash expires by itself: {ttl}");
    app.stop().await;
    env.cleanup().await;
}
