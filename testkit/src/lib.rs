//! The test kit every crate's integration tests share: the whole stack started for one
//! test (any set of roles, in-process) against the real PostgreSQL, Redis and RabbitMQ,
//! with the test's own database, queue prefix and Redis prefix and the Stripe emulator
//! embedded; tickets published as a door would; the checks of I1–I4; Stripe events
//! rendered and signed as Stripe sends them. Waits are on observable conditions with
//! deadlines, never sleeps (`wait_until`, `poll_until`).
//!
//! A test crate of its own (not a module copied into each `tests/`): the workers', the
//! webhook's and the binary's tests start the same stack. Panicking is how a test fails,
//! so unwrapping here is deliberate.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

mod browser;

pub use browser::Browser;
pub use flashgate::stack::Role;
use flashgate::stack::{self, Addrs};
use flashgate_common::Config;
use flashgate_common::amqp::messages::{IssuedTicket, TicketMessage};
use flashgate_common::amqp::{Amqp, Publisher};
use flashgate_common::config::RateConfig;
use flashgate_common::domain::{CustomerId, PaymentMethodId, Quantity, SaleId};
pub use flashgate_common::testkit::{
    FaultProxy, ProxyMode, TestEnv, assert_problem, poll_until, wait_until,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The admin token the test config sets.
pub const ADMIN: &str = "test-admin-token";
/// The embedded emulator's default webhook signing secret.
pub const WEBHOOK_SECRET: &str = "whsec_flashgate_dev";
/// How long a test's request to the stack may take before the test fails.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// How long the stack may take to stop once asked.
const STOP_DEADLINE: Duration = Duration::from_secs(60);

/// A running stack.
pub struct Stack {
    /// Where each role listens (port 0 resolved).
    pub addrs: Addrs,
    /// A pool on the test's own database.
    pub pool: PgPool,
    /// The configuration the roles run with (Stripe wired to the emulator).
    pub config: Config,
    /// Base URL of the Stripe emulator (its API and its `/_sim/` control surface).
    pub sim: String,
    env: TestEnv,
    /// A client for the roles and the emulator.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    running: JoinHandle<anyhow::Result<()>>,
}

impl Stack {
    /// Every role, with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Every role, with `tweak` applied to the test defaults.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_custom(&Role::ALL, None, tweak).await
    }

    /// Starts `roles` in-process; `sim` is the base URL of an emulator the test runs
    /// itself (with `tweak` pointing Stripe at it), else one is embedded.
    pub async fn start_custom(
        roles: &[Role],
        sim: Option<String>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let env = TestEnv::new().await;
        let mut config = env.config.clone();
        config.admission.per_address = RateConfig {
            per_second: 0,
            burst: 0,
        };
        config.worker.sweep_interval_ms = 100;
        config.worker.batch_wait_ms = 2;
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let started = stack::start(config, roles, shutdown.clone())
            .await
            .expect("the stack starts");
        let addrs = started.addrs;
        let config = started.config.as_ref().clone();
        let sim = sim
            .unwrap_or_else(|| format!("http://{}", addrs.stripe.expect("an embedded emulator")));
        let running = tokio::spawn(started.wait(shutdown.clone()));
        let stack = Self {
            addrs,
            pool: env.pool.clone(),
            config,
            sim,
            env,
            // A bound on every request, so that a request the stack never answers fails
            // its test with a message instead of hanging the whole suite.
            http: reqwest::Client::builder()
                .timeout(REQUEST_DEADLINE)
                .build()
                .expect("an HTTP client"),
            shutdown,
            running,
        };
        stack.wait_ready(roles).await;
        stack
    }

    async fn wait_ready(&self, roles: &[Role]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let a = self.addrs;
        let all = [
            (Role::Admission, a.admission),
            (Role::Catalog, a.catalog),
            (Role::Webhook, a.webhook),
            (Role::Worker, a.workers),
        ];
        for (_, addr) in all.into_iter().filter(|(role, _)| roles.contains(role)) {
            loop {
                let response = self.http.get(format!("http://{addr}/readyz")).send().await;
                if response.as_ref().is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                if Instant::now() > deadline {
                    let body = match response {
                        Ok(r) => r.text().await.unwrap_or_default(),
                        Err(e) => e.to_string(),
                    };
                    panic!("{addr} never became ready: {body}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Whether the role listening on `addr` answers `/readyz` with a success.
    pub async fn is_ready(&self, addr: std::net::SocketAddr) -> bool {
        self.http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// The door's URL for `path`.
    pub fn door(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs.admission)
    }

    /// The catalog's URL for `path`.
    pub fn catalog(&self, path: &str) -> String {
        format!("http://{}{path}", self.addrs.catalog)
    }

    /// The webhook receiver's endpoint.
    pub fn webhook(&self) -> String {
        format!("http://{}/v1/stripe/webhook", self.addrs.webhook)
    }

    /// The emulator's URL for `path`.
    pub fn stripe(&self, path: &str) -> String {
        format!("{}{path}", self.sim)
    }

    /// Creates a product and a sale of it with `stock` units and a generous rate.
    pub async fn create_sale(&self, sale: &str, stock: i64) {
        self.create_sale_with(
            sale,
            json!({ "stock": stock, "rate_per_second": 100000, "burst": 100000 }),
        )
        .await;
    }

    /// The door's HTML page at `path`, asked for in `language` (`Accept-Language`) if any.
    pub async fn page(&self, path: &str, language: Option<&str>) -> String {
        let mut request = self.http.get(self.door(path));
        if let Some(language) = language {
            request = request.header("accept-language", language);
        }
        request.send().await.unwrap().text().await.unwrap()
    }

    /// The door's JSON answer to `GET path` (which must be `200`).
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.door(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// `GET` of an operators' path on the door, with the admin token; asserts `200`.
    pub async fn admin_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.door(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// `PUT /admin/v1/sales/{sale}` with `body` as it is; the raw answer.
    pub async fn put_sale(&self, sale: &str, body: &Value) -> reqwest::Response {
        self.http
            .put(self.door(&format!("/admin/v1/sales/{sale}")))
            .bearer_auth(ADMIN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a product and a sale with `overrides` on top of the defaults.
    pub async fn create_sale_with(&self, sale: &str, overrides: Value) {
        let sku = format!("sku-{sale}");
        let product = json!({ "name": "Test sneaker", "price": 1000, "currency": "eur" });
        let put = self
            .http
            .put(self.catalog(&format!("/admin/v1/products/{sku}")))
            .bearer_auth(ADMIN)
            .json(&product);
        assert!(
            put.send().await.unwrap().status().is_success(),
            "product created"
        );
        let mut body = json!({ "sku": sku, "stock": 1, "price": 1000, "currency": "eur", "hold_seconds": 60,
                               "rate_per_second": 100000, "burst": 100000 });
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = self.put_sale(sale, &body).await;
        assert!(
            response.status().is_success(),
            "sale created: {}",
            response.text().await.unwrap()
        );
    }

    /// Asks the door for a ticket (one unit, `payment_method` if any); the raw answer.
    pub async fn take_ticket(
        &self,
        sale: &str,
        customer: &str,
        payment_method: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({ "customer_id": customer, "quantity": 1 });
        if let Some(pm) = payment_method {
            body["payment_method"] = json!(pm);
        }
        self.http
            .post(self.door(&format!("/v1/sales/{sale}/tickets")))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Takes a ticket that must be issued, and returns its token.
    pub async fn token(&self, sale: &str, customer: &str, payment_method: Option<&str>) -> String {
        let ticket: Value = self
            .take_ticket(sale, customer, payment_method)
            .await
            .json()
            .await
            .unwrap();
        ticket["ticket"]
            .as_str()
            .unwrap_or_else(|| panic!("no ticket for {customer}: {ticket}"))
            .to_owned()
    }

    /// The door's answer for the ticket (which must be `200`).
    pub async fn poll(&self, token: &str) -> Value {
        let response = self
            .http
            .get(self.door(&format!("/v1/tickets/{token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Polls until `done` holds for the ticket (at the suggested interval), and returns
    /// every distinct status seen on the way, the last being the one `done` accepted.
    pub async fn await_ticket(
        &self,
        token: &str,
        done: impl Fn(&Value) -> bool,
    ) -> (Value, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen: Vec<String> = Vec::new();
        loop {
            let ticket = self.poll(token).await;
            let status = ticket["status"].as_str().unwrap().to_owned();
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            if done(&ticket) {
                return (ticket, seen);
            }
            assert!(
                Instant::now() < deadline,
                "ticket stuck; statuses seen: {seen:?}"
            );
            let wait = ticket["poll_after_ms"]
                .as_u64()
                .unwrap_or(100)
                .clamp(20, 200);
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Polls until the ticket is final, and returns it.
    pub async fn await_final(&self, token: &str) -> Value {
        let finals = ["paid", "failed", "expired", "sold_out", "refunded"];
        self.await_ticket(token, |t| finals.contains(&t["status"].as_str().unwrap()))
            .await
            .0
    }

    /// The emulator's PaymentIntents for an order.
    pub async fn intents_of(&self, order: &str) -> Vec<Value> {
        let url = self.stripe(&format!(
            "/_sim/payment_intents?metadata_key=flashgate_order&metadata_value={order}"
        ));
        let list: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["data"].as_array().unwrap().clone()
    }

    /// `(stock, reserved, sold)` of a sale.
    pub async fn terms(&self, sale: &str) -> (i32, i32, i32) {
        sqlx::query_as("SELECT stock, reserved, sold FROM sales WHERE id = $1")
            .bind(sale)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Stops every role (they must stop cleanly), then deletes the test's queues, keys
    /// and database.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(STOP_DEADLINE, self.running)
            .await
            .unwrap_or_else(|_| panic!("the stack did not stop within {STOP_DEADLINE:?}"))
            .unwrap()
            .expect("every role stops cleanly");
        self.pool.close().await;
        self.env.cleanup().await;
    }
}

impl Stack {
    /// Publishes tickets straight into the tickets queue, as the door would (always to
    /// the broker itself, even when the stack reaches it through a fault proxy).
    pub async fn publish_tickets(&self, sale: &str, tickets: &[(i64, String, Option<&str>)]) {
        let amqp = self.direct_amqp();
        let publisher = Publisher::new(amqp.clone());
        let queue = amqp.topology().tickets();
        let sends = tickets.iter().map(|(seq, customer, pm)| {
            let message = ticket_message(sale, *seq, customer, *pm);
            let (publisher, queue) = (publisher.clone(), queue.clone());
            async move {
                publisher
                    .publish_json(&queue, &seq.to_string(), &message, None)
                    .await
                    .unwrap()
            }
        });
        futures_util::future::join_all(sends).await;
    }

    /// This test's queues on the broker itself.
    pub fn direct_amqp(&self) -> Amqp {
        let mut config = self.config.amqp.clone();
        config.url = flashgate_common::config::AmqpConfig::default().url;
        Amqp::new(&config).unwrap()
    }

    /// The value of one series (`name` or `name{labels}`) on the workers' `/metrics`, if
    /// recorded (the recorder is the test process's, shared with the tests beside it).
    pub async fn worker_metric(&self, series: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("http://{}/metrics", self.addrs.workers))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Tickets decided so far in `sale`.
    pub async fn decided(&self, sale: &str) -> i64 {
        sqlx::query_scalar("SELECT decided FROM sales WHERE id = $1")
            .bind(sale)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Checks I1–I4 for `sale` in PostgreSQL and the emulator.
    pub async fn assert_invariants(
        &self,
        sale: &str,
        issued: Option<i64>,
    ) -> flashgate::verify::Verdict {
        let sale = SaleId::parse(sale).unwrap();
        let verdict = flashgate::verify::verify(&self.pool, &sale, issued, Some(&self.sim))
            .await
            .unwrap();
        assert!(
            verdict.violations.is_empty(),
            "invariants broken: {verdict:?}"
        );
        verdict
    }
}

/// A ticket as the door issues it.
pub fn issued_ticket(sale: &str, seq: i64, customer: &str, pm: Option<&str>) -> IssuedTicket {
    IssuedTicket {
        ticket_id: uuid::Uuid::now_v7(),
        sale_id: SaleId::parse(sale).unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
        seq,
        quantity: Quantity::parse(1, 1).unwrap(),
        payment_method: pm.map(|p| PaymentMethodId::parse(p).unwrap()),
        issued_at: chrono::Utc::now(),
        request_id: None,
    }
}

/// `count` tickets as `Stack::publish_tickets` takes them: customers `{prefix}{n}`,
/// sequence numbers from `first`, each with payment method `pm`.
pub fn tickets(
    prefix: &str,
    first: i64,
    count: i64,
    pm: Option<&'static str>,
) -> Vec<(i64, String, Option<&'static str>)> {
    (first..first + count)
        .map(|seq| (seq, format!("{prefix}{seq}"), pm))
        .collect()
}

/// The message the door publishes for a ticket that travels alone.
pub fn ticket_message(sale: &str, seq: i64, customer: &str, pm: Option<&str>) -> TicketMessage {
    TicketMessage::Issued(issued_ticket(sale, seq, customer, pm))
}

/// A Stripe-Signature header for `body`, as Stripe computes it.
pub fn sign(body: &str, secret: &str) -> String {
    sign_at(body, secret, chrono::Utc::now().timestamp())
}

/// A Stripe-Signature header for `body` as signed at `timestamp` (seconds).
pub fn sign_at(body: &str, secret: &str, timestamp: i64) -> String {
    flashgate_webhook::signature::sign(secret, timestamp, body.as_bytes())
}

/// A ticket confirmed in the browser, left at payment_pending: (order, PaymentIntent).
pub async fn pending_order(stack: &Stack, sale: &str, customer: &str) -> (String, String) {
    let ticket: Value = stack
        .take_ticket(sale, customer, None)
        .await
        .json()
        .await
        .unwrap();
    let token = ticket["ticket"].as_str().unwrap();
    let (pending, _) = stack
        .await_ticket(token, |t| t["status"] == "payment_pending")
        .await;
    let order = pending["order_id"].as_str().unwrap().to_owned();
    (
        order,
        pending["payment"]["payment_intent"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

/// A PaymentIntent event as Stripe renders it, `created` seconds after the epoch.
pub fn intent_event(id: &str, kind: &str, intent: &str, order: &str, created: i64) -> String {
    let status = match kind {
        "payment_intent.succeeded" => "succeeded",
        "payment_intent.canceled" => "canceled",
        _ => "requires_payment_method",
    };
    let error = (status == "requires_payment_method")
        .then(|| json!({ "code": "card_declined", "decline_code": "generic_decline" }));
    json!({
        "id": id, "object": "event", "type": kind, "api_version": "2026-09-30.endive",
        "created": created, "livemode": false, "pending_webhooks": 1,
        "data": { "object": { "id": intent, "object": "payment_intent", "status": status, "amount": 1000,
                              "currency": "eur", "metadata": { "flashgate_order": order },
                              "last_payment_error": error } }
    })
    .to_string()
}

/// A `payment_intent.succeeded` event created now.
pub fn succeeded(id: &str, intent: &str, order: &str) -> String {
    intent_event(
        id,
        "payment_intent.succeeded",
        intent,
        order,
        chrono::Utc::now().timestamp(),
    )
}

/// Posts `body` to the webhook receiver with `signature`, if any.
pub async fn deliver(stack: &Stack, body: &str, signature: Option<String>) -> reqwest::Response {
    let mut request = stack
        .http
        .post(stack.webhook())
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    request.send().await.unwrap()
}

/// A single `count(*)` with one bound text parameter.
pub async fn count(stack: &Stack, sql: &'static str, bind: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}

/// An order's status.
pub async fn order_status(stack: &Stack, order: &str) -> String {
    sqlx::query_scalar("SELECT status FROM orders WHERE id::text = $1")
        .bind(order)
        .fetch_one(&stack.pool)
        .await
        .unwrap()
}

/// A reserved order (and its ticket) written straight into the database, holding one
/// unit of `sale`, without a PaymentIntent: a fixture for events from elsewhere.
pub async fn insert_reserved_order(stack: &Stack, sale: &str, order: uuid::Uuid) -> String {
    let ticket = uuid::Uuid::now_v7();
    let mut tx = stack.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO tickets (id, sale_id, customer_id, seq, quantity, decision, issued_at) VALUES ($1, $2, $3, 1, 1, 'reserved', now())")
        .bind(ticket).bind(sale).bind(format!("fixture-{order}")).execute(&mut *tx).await.unwrap();
    sqlx::query("INSERT INTO orders (id, ticket_id, sale_id, customer_id, quantity, amount, currency, status, hold_expires_at) VALUES ($1, $2, $3, 'fixture', 1, 1000, 'eur', 'reserved', now() + interval '10 minutes')")
        .bind(order).bind(ticket).bind(sale).execute(&mut *tx).await.unwrap();
    sqlx::query("UPDATE sales SET reserved = reserved + 1, decided = decided + 1, version = version + 1 WHERE id = $1")
        .bind(sale).execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    order.to_string()
}

/// A stack whose Stripe calls go through a fault proxy in front of an emulator the test
/// controls; the emulator's webhooks reach the stack's receiver directly.
pub async fn start_behind_proxy(
    roles: &[Role],
    tweak: impl FnOnce(&mut Config),
) -> (
    Stack,
    flashgate_stripe_sim::Sim,
    flashgate_common::testkit::FaultProxy,
) {
    use flashgate_stripe_sim::{Sim, SimConfig, WebhookEndpoint};
    let sim = Sim::new(SimConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = listener.local_addr().unwrap();
    tokio::spawn(sim.clone().serve(listener, CancellationToken::new()));
    let proxy = flashgate_common::testkit::FaultProxy::start(sim_addr).await;
    let proxied = format!("http://{}/", proxy.addr());
    let stack = Stack::start_custom(roles, Some(format!("http://{sim_addr}")), |c| {
        c.stripe.api_key = Some("sk_test_behind_proxy".into());
        c.stripe.base_url = proxied;
        c.stripe.js_url = format!("http://{sim_addr}/js/v3/");
        c.webhook.secrets = vec![WEBHOOK_SECRET.into()];
        tweak(c);
    })
    .await;
    sim.add_webhook_endpoint(WebhookEndpoint::new(stack.webhook(), WEBHOOK_SECRET));
    (stack, sim, proxy)
}

impl Stack {
    /// Replaces the emulator's fault switches.
    pub async fn faults(&self, faults: Value) {
        let response = self
            .http
            .post(self.stripe("/_sim/faults"))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "faults set");
    }

    /// Confirms a PaymentIntent the way Stripe.js does in a shopper's browser: publishable
    /// key, client secret, a test card.
    pub async fn confirm_in_browser(&self, payment: &Value) -> reqwest::Response {
        let intent = payment["payment_intent"].as_str().unwrap();
        let secret = payment["client_secret"].as_str().unwrap();
        self.http
            .post(self.stripe(&format!("/v1/payment_intents/{intent}/confirm")))
            .bearer_auth("pk_test_flashgate")
            .form(&[
                ("client_secret", secret),
                ("payment_method", "pm_card_visa"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Pays in the browser ([`Self::confirm_in_browser`]) and asserts the emulator took it.
    pub async fn pay_in_browser(&self, payment: &Value) {
        let answer = self.confirm_in_browser(payment).await;
        assert!(
            answer.status().is_success(),
            "the browser's confirm: {}",
            answer.status()
        );
    }

    /// A worker context on this stack's configuration (for driving worker steps directly).
    pub async fn worker_context(&self) -> flashgate_workers::Context {
        flashgate_workers::Context::connect(std::sync::Arc::new(self.config.clone()))
            .await
            .unwrap()
    }
}
