//! Shared test plumbing: a spawned emulator with its async-stripe client, a webhook
//! receiver, and helpers to read Stripe errors.

mod sink;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use flashgate_stripe_sim::{Sim, SimConfig, WebhookEndpoint};
use stripe::{ApiErrors, StripeError};
use stripe_core::payment_intent::CreatePaymentIntent;
use stripe_types::Currency;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use sink::Sink;

/// The secret key every test client uses.
pub(crate) const SECRET_KEY: &str = "sk_test_flashgate_it";
/// The signing secret of the test webhook endpoint.
pub(crate) const WEBHOOK_SECRET: &str = "whsec_test_flashgate_it";
/// Longest a test waits for anything.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

/// An emulator serving on a free port, its client, and its webhook receiver.
pub(crate) struct TestApp {
    pub sim: Sim,
    pub client: stripe::Client,
    pub addr: SocketAddr,
    pub sink: Sink,
    pub shutdown: CancellationToken,
    pub served: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// An emulator with default settings (fast webhook retries).
    pub(crate) async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// An emulator whose config `tune` adjusts.
    pub(crate) async fn spawn_with(tune: impl FnOnce(&mut SimConfig)) -> Self {
        let sink = Sink::start().await;
        let mut config = SimConfig {
            webhook_endpoints: vec![WebhookEndpoint::new(sink.url.clone(), WEBHOOK_SECRET)],
            webhook_retry_base: Duration::from_millis(20),
            webhook_retry_cap: Duration::from_millis(200),
            ..SimConfig::default()
        };
        tune(&mut config);
        let sim = Sim::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(sim.clone().serve(listener, shutdown.clone()));
        let client = client_for(addr, SECRET_KEY);
        Self {
            sim,
            client,
            addr,
            sink,
            shutdown,
            served: Some(served),
        }
    }

    /// A client of this emulator using another API key.
    pub(crate) fn client_with_key(&self, key: &str) -> stripe::Client {
        client_for(self.addr, key)
    }

    /// The absolute URL of `path` on this emulator.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client_for(addr: SocketAddr, key: &str) -> stripe::Client {
    // async-stripe joins "{base}v1{path}", so the base ends with a slash.
    stripe::ClientBuilder::new(key)
        .url(format!("http://{addr}/"))
        .build()
        .unwrap()
}

/// A PaymentIntent creation for `amount` cents with `order_id` metadata.
pub(crate) fn create_order(amount: i64, order_id: &str) -> CreatePaymentIntent {
    let metadata = HashMap::from([("order_id".to_owned(), order_id.to_owned())]);
    CreatePaymentIntent::new(amount, Currency::USD).metadata(metadata)
}

/// The Stripe error and HTTP status of a failed call; panics on success or other errors.
#[track_caller]
pub(crate) fn stripe_error<T: std::fmt::Debug>(result: Result<T, StripeError>) -> (ApiErrors, u16) {
    match result {
        Err(StripeError::Stripe(error, status)) => (*error, status),
        other => panic!("expected a Stripe error, got {other:?}"),
    }
}

/// The `code` of a Stripe error as Stripe spells it.
pub(crate) fn code(error: &ApiErrors) -> String {
    error
        .code
        .as_ref()
        .map(|code| code.to_string())
        .unwrap_or_default()
}
