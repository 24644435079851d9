//! A real local HTTP endpoint receiving webhooks: it answers with scripted statuses
//! (200 once the script runs out) and hands every delivery to the test.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use stripe_webhook::{Event, Webhook};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{PATIENCE, WEBHOOK_SECRET};

/// One delivery as received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub body: String,
    pub signature: String,
    pub content_type: String,
    pub at: Instant,
}

impl Received {
    /// The event, verified with Stripe's own signature check and parsed with its types.
    pub(crate) fn event(&self) -> Event {
        Webhook::construct_event(&self.body, &self.signature, WEBHOOK_SECRET).unwrap()
    }
}

#[derive(Clone)]
struct SinkState {
    script: Arc<Mutex<VecDeque<u16>>>,
    deliveries: mpsc::UnboundedSender<Received>,
}

/// The receiving end of a webhook endpoint.
pub(crate) struct Sink {
    pub url: String,
    script: Arc<Mutex<VecDeque<u16>>>,
    deliveries: mpsc::UnboundedReceiver<Received>,
}

impl Sink {
    /// Starts a receiver on a free port.
    pub(crate) async fn start() -> Self {
        let (sender, deliveries) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let state = SinkState {
            script: script.clone(),
            deliveries: sender,
        };
        let app = Router::new()
            .route("/webhooks", post(receive))
            .with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            script,
            deliveries,
        }
    }

    /// Answers the next deliveries with these statuses, in order.
    pub(crate) fn answer_next(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// The next delivery; panics if none arrives in time.
    pub(crate) async fn next(&mut self) -> Received {
        tokio::time::timeout(PATIENCE, self.deliveries.recv())
            .await
            .expect("no webhook delivery arrived in time")
            .unwrap()
    }

    /// The next `n` deliveries' events, verified and parsed.
    pub(crate) async fn events(&mut self, n: usize) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..n {
            events.push(self.next().await.event());
        }
        events
    }

    /// True if nothing arrives within `wait`.
    pub(crate) async fn quiet_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.deliveries.recv())
            .await
            .is_err()
    }
}

async fn receive(State(state): State<SinkState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        body: String::from_utf8(body.to_vec()).unwrap(),
        signature: header("stripe-signature"),
        content_type: header("content-type"),
        at: Instant::now(),
    };
    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
    let _ = state.deliveries.send(received);
    StatusCode::from_u16(status).unwrap()
}
