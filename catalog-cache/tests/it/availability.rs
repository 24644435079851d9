//! Availability comes from the live per-sale counters, is never cached much longer than a
//! second (whatever the configuration asks), and falls back to the sale's row.

use std::time::{Duration, Instant};

use flashgate_common::domain::SaleTerms;

use crate::support::{App, create_product, create_sale, setup, wait_until, write_terms};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_follows_the_live_counters_within_about_a_second() {
    let (env, config) = setup(|c| {
        c.catalog.l1_ttl_ms = 60_000;
        // Asking for a minute must still give about a second.
        c.catalog.availability_ttl_ms = 60_000;
    })
    .await;
    create_product(&env.pool, "live-1", "Limited sneaker", "shoes").await;
    create_sale(&env.pool, "live-sale", "live-1", 10).await;
    let terms = SaleTerms {
        version: 1,
        stock: 10,
        reserved: 0,
        sold: 0,
        decided: 0,
        waitlisted: 0,
    };
    write_terms(&config, "live-sale", terms).await;
    let app = App::start(&config).await;
    let product = app.get_json("/v1/products/live-1").await;
    assert_eq!(product["sale_id"], "live-sale");
    assert_eq!(product["availability"]["remaining"], 10);
    assert_eq!(product["availability"]["sold_out"], false);
    let terms = SaleTerms {
        version: 2,
        stock: 10,
        reserved: 3,
        sold: 2,
        decided: 5,
        waitlisted: 0,
    };
    write_terms(&config, "live-sale", terms).await;
    let changed = Instant::now();
    let app_ref = &app;
    wait_until(5, "the new counters show", || async move {
        let product = app_ref.get_json("/v1/products/live-1").await;
        product["availability"]["remaining"] == 5
    })
    .await;
    let age = changed.elapsed();
    assert!(
        age < Duration::from_millis(2500),
        "availability was {age:?} old"
    );
    let product = app.get_json("/v1/products/live-1").await;
    assert_eq!(product["availability"]["reserved"], 3);
    assert_eq!(product["availability"]["sold"], 2);
    assert_eq!(
        app.catalog.stats().db_availability_reads,
        0,
        "Redis had them"
    );
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_falls_back_to_the_sale_row_when_redis_has_no_counters() {
    let (env, config) = setup(|_| {}).await;
    create_product(&env.pool, "row-1", "Quiet sneaker", "shoes").await;
    create_sale(&env.pool, "row-sale", "row-1", 4).await;
    let app = App::start(&config).await;
    let product = app.get_json("/v1/products/row-1").await;
    assert_eq!(product["availability"]["sale_id"], "row-sale");
    assert_eq!(product["availability"]["remaining"], 4);
    assert_eq!(app.catalog.stats().db_availability_reads, 1);
    let plain = app.get_json("/v1/products?limit=1").await;
    assert!(
        plain["products"][0].get("availability").is_none(),
        "listings do not carry it"
    );
    app.stop().await;
    env.cleanup().await;
}
