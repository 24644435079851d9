//! Starting the door alone (no workers: tickets stay in the queue, where the tests count
//! them), against the real services, with the test's own database, keys and queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_common::Config;
use flashgate_common::amqp::Amqp;
use flashgate_common::amqp::messages::TicketMessage;
use flashgate_common::testkit::TestEnv;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) const ADMIN: &str = "test-admin-token";
pub(crate) const TICKET_SECRET: &str = "test-ticket-secret";

/// Lifts the per-address limit: every test request comes from 127.0.0.1, and a crowd of
/// customers from one address would otherwise be refused as one client.
pub(crate) fn crowd_from_one_address(config: &mut Config) {
    config.admission.per_address = flashgate_common::config::RateConfig {
        per_second: 100_000,
        burst: 100_000,
    };
}

pub(crate) struct Door {
    pub base: String,
    pub http: reqwest::Client,
    /// The test's database, keys and queues; `None` for a second door sharing them.
    pub env: Option<TestEnv>,
    pub config: Config,
    shutdown: CancellationToken,
    task: JoinHandle<flashgate_common::Result<()>>,
}

impl Door {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let env = TestEnv::new().await;
        let mut config = env.config.clone();
        tweak(&mut config);
        Self::launch(config, Some(env)).await
    }

    /// Another door process of the same deployment (same database, keys, queues).
    pub(crate) async fn another(&self) -> Self {
        self.another_with(|_| {}).await
    }

    /// Another door of the same deployment, its configuration changed by `tweak`.
    pub(crate) async fn another_with(&self, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.config.clone();
        tweak(&mut config);
        Self::launch(config, None).await
    }

    async fn launch(config: Config, env: Option<TestEnv>) -> Self {
        let listener = flashgate_common::http::bind(([127, 0, 0, 1], 0).into()).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(flashgate_admission::run(
            Arc::new(config.clone()),
            listener,
            shutdown.clone(),
        ));
        let door = Self {
            base,
            http: reqwest::Client::new(),
            env,
            config,
            shutdown,
            task,
        };
        door.wait_ready().await;
        door
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .http
            .get(self.url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "the door never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The door's `/metrics` page.
    pub(crate) async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Creates a product (directly in PostgreSQL: no catalog here) and a sale of it.
    pub(crate) async fn sale(&self, sale: &str, overrides: Value) -> reqwest::Response {
        sqlx::query("INSERT INTO products (sku, name, price, currency) VALUES ($1, 'Sneaker', 1000, 'eur') ON CONFLICT DO NOTHING")
            .bind(format!("sku-{sale}"))
            .execute(&self.pool())
            .await
            .unwrap();
        let mut body = json!({ "sku": format!("sku-{sale}"), "stock": 100, "price": 1000, "currency": "eur",
                               "rate_per_second": 100000, "burst": 100000 });
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.http
            .put(self.url(&format!("/admin/v1/sales/{sale}")))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn ticket(&self, sale: &str, customer: &str) -> reqwest::Response {
        let body = json!({ "customer_id": customer, "quantity": 1 });
        self.http
            .post(self.url(&format!("/v1/sales/{sale}/tickets")))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn admission(&self, sale: &str, change: Value) -> reqwest::Response {
        let url = self.url(&format!("/admin/v1/sales/{sale}/admission"));
        self.http
            .patch(url)
            .bearer_auth(ADMIN)
            .json(&change)
            .send()
            .await
            .unwrap()
    }

    fn direct_amqp(&self) -> Amqp {
        let mut config = self.config.amqp.clone();
        config.url = flashgate_common::config::AmqpConfig::default().url;
        Amqp::new(&config).unwrap()
    }

    /// The messages waiting in this test's tickets queue, decoded; they stay queued.
    pub(crate) async fn queued_tickets(&self) -> Vec<TicketMessage> {
        let amqp = self.direct_amqp();
        let connection = amqp.connection().await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut messages = Vec::new();
        while let Some(message) = channel
            .basic_get(amqp.topology().tickets().into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            messages.push(serde_json::from_slice(&message.delivery.data).unwrap());
        }
        // Closing the channel unacked puts them back.
        channel.close(200, "counted".into()).await.unwrap();
        messages
    }

    /// `GET /v1/tickets/{token}`: the ticket as its shopper's poll sees it.
    pub(crate) async fn poll(&self, token: &str) -> Value {
        self.get_json(&format!("/v1/tickets/{token}")).await
    }

    /// `GET /v1/sales/{sale}`, as shoppers see it.
    pub(crate) async fn public_sale(&self, sale: &str) -> Value {
        self.get_json(&format!("/v1/sales/{sale}")).await
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Messages waiting in this test's tickets queue (nothing consumes them here).
    pub(crate) async fn queued_messages(&self) -> u32 {
        let amqp = self.direct_amqp();
        let connection = amqp.connection().await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare(
                amqp.topology().tickets().into(),
                passive,
                FieldTable::default(),
            )
            .await
            .unwrap();
        queue.message_count()
    }

    /// The test database.
    pub(crate) fn pool(&self) -> sqlx::PgPool {
        self.env
            .as_ref()
            .expect("the first door owns the environment")
            .pool
            .clone()
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().expect("the door stops cleanly");
        if let Some(env) = self.env {
            env.cleanup().await;
        }
    }
}
