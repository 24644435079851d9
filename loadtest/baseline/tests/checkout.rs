//! The textbook checkout does the textbook's whole job, against the project's emulator and
//! a database of its own: the card is charged inside the request (one PaymentIntent per
//! order, idempotency key from the order), a declined card gives the unit back, the
//! webhook fulfils the order (and only a correctly signed one), the stock never goes
//! negative.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use flashgate_stripe_sim::{Sim, SimConfig, WebhookEndpoint};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec_baseline_test";

struct Baseline {
    url: String,
    child: tokio::process::Child,
    database: String,
}

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

async fn admin_pool() -> sqlx::PgPool {
    sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432")
}

/// The baseline binary on a fresh database, its Stripe the emulator at `stripe`.
async fn start(stripe: &str) -> Baseline {
    let database = format!("baseline_test_{}", uuid::Uuid::new_v4().simple());
    // The name is ours: a fixed prefix and a UUID.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&admin_pool().await)
        .await
        .unwrap();
    let port = free_port().await;
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate-baseline"))
        .env("BASELINE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "BASELINE_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{database}"),
        )
        .env("BASELINE_STRIPE_URL", stripe)
        .env("BASELINE_WEBHOOK_SECRET", SECRET)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the baseline did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Baseline {
        url,
        child,
        database,
    }
}

impl Baseline {
    async fn stop(mut self) {
        self.child.kill().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.database
        )))
        .execute(&admin_pool().await)
        .await
        .unwrap();
    }
}

async fn checkout(http: &reqwest::Client, url: &str, customer: &str, card: &str) -> (u16, Value) {
    let response = http
        .post(format!("{url}/checkout"))
        .json(&json!({ "sale_id": "drop", "customer_id": customer, "payment_method": card }))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_textbook_checkout_charges_in_the_request_and_fulfils_by_webhook() {
    let sim = Sim::new(SimConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stripe = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener, CancellationToken::new()));
    let baseline = start(&stripe).await;
    let url = baseline.url.clone();
    sim.add_webhook_endpoint(WebhookEndpoint::new(format!("{url}/webhook"), SECRET));
    let http = reqwest::Client::new();
    let put = http
        .put(format!("{url}/sales/drop"))
        .json(&json!({ "stock": 2, "price": 2500 }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);

    let (status, first) = checkout(&http, &url, "ann", "pm_card_visa").await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["status"], "succeeded", "{first}");
    let (status, declined) = checkout(&http, &url, "bob", "pm_card_chargeDeclined").await;
    assert_eq!(status, 402, "{declined}");
    assert_eq!(declined["code"], "payment_failed");
    let (status, _) = checkout(&http, &url, "ann", "pm_card_visa").await;
    assert_eq!(status, 409, "one order per customer");
    let (status, second) = checkout(&http, &url, "cat", "pm_card_visa").await;
    assert_eq!(status, 201, "the declined unit came back: {second}");
    let (status, _) = checkout(&http, &url, "dan", "pm_card_visa").await;
    assert_eq!(status, 410);

    // One PaymentIntent per order, charged once.
    for order in [&first, &second] {
        let intent = order["payment_intent"].as_str().unwrap();
        assert_eq!(sim.successful_charges(intent), 1);
        let key = order["order_id"].to_string();
        assert_eq!(
            sim.payment_intents_with_metadata("baseline_order", &key)
                .len(),
            1
        );
    }
    // The webhook fulfils both orders.
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let state: Value = http
            .get(format!("{url}/sales/drop"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if state["paid"] == 2 || Instant::now() > deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        state,
        json!({ "stock": 2, "sold": 2, "orders": 3, "ordered_units": 2, "paid": 2, "failed": 1,
                "pending": 0 })
    );

    // A webhook without the right signature is refused and changes nothing.
    let forged = json!({ "type": "payment_intent.payment_failed",
                         "data": { "object": { "id": "pi_x", "metadata": { "baseline_order": "1" } } } });
    let refused = http
        .post(format!("{url}/webhook"))
        .header("stripe-signature", "t=1,v1=00")
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    baseline.stop().await;
}
