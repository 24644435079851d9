//! A product write reaches every catalog process: with a minute-long L1, only the
//! invalidation can explain another process serving the new value.

use crate::support::{App, create_product, product_body, setup, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_write_reaches_every_catalog_process() {
    let (env, config) = setup(|c| c.catalog.l1_ttl_ms = 60_000).await;
    create_product(&env.pool, "inv-1", "Old name", "shoes").await;
    create_product(&env.pool, "inv-2", "Bystander", "shoes").await;
    let (writer, other) = (App::start(&config).await, App::start(&config).await);
    for app in [&writer, &other] {
        assert_eq!(app.name_of("inv-1").await, "Old name");
        assert_eq!(app.listed_names().await, ["Old name", "Bystander"]);
    }
    let misses_before = other.catalog.stats().l1_misses;
    let put = writer
        .put_product("inv-1", &product_body("New name", "shoes"))
        .await;
    assert_eq!(put.status(), 200);
    assert_eq!(
        writer.name_of("inv-1").await,
        "New name",
        "the writer at once"
    );
    assert_eq!(writer.listed_names().await, ["New name", "Bystander"]);
    let reader = &other;
    wait_until(
        5,
        "the other process serves the new product",
        || async move { reader.name_of("inv-1").await == "New name" },
    )
    .await;
    wait_until(5, "the other process lists the new name", || async move {
        reader.listed_names().await == ["New name", "Bystander"]
    })
    .await;
    let stats = other.catalog.stats();
    assert!(stats.invalidations >= 1, "{stats:?}");
    assert!(stats.l1_misses > misses_before, "L1 was dropped: {stats:?}");
    assert_eq!(other.name_of("inv-2").await, "Bystander");
    writer.stop().await;
    other.stop().await;
    env.cleanup().await;
}
