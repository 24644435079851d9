//! Starting catalogs for one test, in process, on port 0, against the real PostgreSQL and
//! Redis with the test's own database and key prefix. Each catalog keeps its
//! `Arc<Catalog>` so tests can read its counters and breaker. Waits are on observable
//! conditions with deadlines, never sleeps.

use std::net::SocketAddr;
use std::sync::Arc;

use flashgate_catalog::{Catalog, ProductInput};
use flashgate_common::Config;
use flashgate_common::domain::{SaleId, SaleTerms, Sku};
use flashgate_common::live::Redis;
use flashgate_common::testkit::TestEnv;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The admin token the test config sets.
pub(crate) const ADMIN: &str = "test-admin-token";

/// A fresh environment and its config after `tweak`.
pub(crate) async fn setup(tweak: impl FnOnce(&mut Config)) -> (TestEnv, Config) {
    let env = TestEnv::new().await;
    let mut config = env.config.clone();
    tweak(&mut config);
    config.validate().unwrap();
    (env, config)
}

/// One running catalog process.
pub(crate) struct App {
    pub catalog: Arc<Catalog>,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    serving: JoinHandle<flashgate_common::Result<()>>,
}

impl App {
    /// Starts a catalog with `config` and waits until it follows invalidations.
    pub(crate) async fn start(config: &Config) -> Self {
        let catalog = Arc::new(Catalog::connect(config).await.unwrap());
        let listener = flashgate_common::http::bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn({
            let (catalog, config, shutdown) = (catalog.clone(), config.clone(), shutdown.clone());
            async move { flashgate_catalog::serve(catalog, &config, listener, shutdown).await }
        });
        let app = Self {
            catalog,
            addr,
            http: reqwest::Client::new(),
            shutdown,
            serving,
        };
        let catalog = app.catalog.clone();
        wait_until(10, "the invalidation feed is live", || {
            let live = catalog.invalidations_live();
            async move { live }
        })
        .await;
        app
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// The JSON body of a `GET path` that must answer 200.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// The name of product `sku` as this catalog serves it.
    pub(crate) async fn name_of(&self, sku: &str) -> String {
        let product = self.get_json(&format!("/v1/products/{sku}")).await;
        product["name"].as_str().unwrap().to_owned()
    }

    /// The names on the first listing page.
    pub(crate) async fn listed_names(&self) -> Vec<String> {
        let page = self.get_json("/v1/products?limit=100").await;
        let products = page["products"].as_array().unwrap();
        let names = products
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned());
        names.collect()
    }

    /// `PUT /admin/v1/products/{sku}` with the admin token.
    pub(crate) async fn put_product(&self, sku: &str, body: &Value) -> reqwest::Response {
        let url = self.url(&format!("/admin/v1/products/{sku}"));
        let put = self.http.put(url).bearer_auth(ADMIN).json(body);
        put.send().await.unwrap()
    }

    /// Stops the catalog; it must stop cleanly.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.serving.await.unwrap().unwrap();
    }
}

/// A product body named `name`.
pub(crate) fn product_body(name: &str, category: &str) -> Value {
    json!({ "name": name, "category": category, "price": 4999, "currency": "eur",
            "description": "for the test", "attributes": { "size": "42" },
            "images": ["https://img.example/1.jpg"] })
}

/// Writes a product straight to PostgreSQL, behind every cache's back.
pub(crate) async fn create_product(pool: &PgPool, sku: &str, name: &str, category: &str) {
    let input: ProductInput = serde_json::from_value(product_body(name, category)).unwrap();
    let sku = Sku::parse(sku).unwrap();
    flashgate_catalog::upsert_product(pool, &sku, &input, "eur")
        .await
        .unwrap();
}

/// Creates a sale of `sku` with `stock` units in PostgreSQL.
pub(crate) async fn create_sale(pool: &PgPool, sale: &str, sku: &str, stock: i32) {
    sqlx::query(
        "INSERT INTO sales (id, sku, stock, price, currency, rate_per_second, burst)
         VALUES ($1, $2, $3, 4999, 'eur', 100, 100)",
    )
    .bind(sale)
    .bind(sku)
    .bind(stock)
    .execute(pool)
    .await
    .unwrap();
}

/// Publishes a sale's live counters to Redis, as the workers do.
pub(crate) async fn write_terms(config: &Config, sale: &str, terms: SaleTerms) {
    let redis = Redis::connect(&config.redis).unwrap();
    let sale = SaleId::parse(sale).unwrap();
    redis.write_terms(&sale, &terms).await.unwrap();
}

pub(crate) use flashgate_common::testkit::wait_until;
