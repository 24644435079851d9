//! `Sim`, the handle everything goes through: the HTTP router, `serve` (API plus
//! webhook dispatcher until shutdown), and the test/operator controls.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, UnboundedReceiver};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::State;
use crate::webhook::{self, Courier, Job};
use crate::{Faults, SimConfig, WebhookEndpoint};

/// A running emulator's shared state; cloning is cheap and clones share everything.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// The dispatcher's end of the delivery queue, taken by the first `serve`.
    deliveries: Mutex<Option<UnboundedReceiver<Job>>>,
    /// Counts recorded delivery attempts, so waiters wake without polling.
    attempts: watch::Sender<u64>,
}

impl Sim {
    /// A fresh emulator: no objects, the configured endpoints and faults.
    pub fn new(config: SimConfig) -> Self {
        let (queue, deliveries) = mpsc::unbounded_channel();
        let inner = Inner {
            state: Mutex::new(State::new(config, queue)),
            deliveries: Mutex::new(Some(deliveries)),
            attempts: watch::Sender::new(0),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The HTTP surface: Stripe's `/v1` API and the `/_sim` controls. Webhooks are only
    /// delivered while `serve` runs; events emitted before then wait in the queue.
    pub fn router(&self) -> Router {
        crate::http::router(self.clone())
    }

    /// Serves HTTP on `listener` and delivers webhooks until `shutdown` is cancelled,
    /// then drains in-flight requests and delivery attempts and returns.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> io::Result<()> {
        let dispatcher_stop = shutdown.child_token();
        let dispatcher = self.spawn_dispatcher(dispatcher_stop.clone())?;
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        // The dispatcher stops with the server, even when the server failed.
        dispatcher_stop.cancel();
        if let Some(handle) = dispatcher
            && let Err(err) = handle.await
        {
            tracing::error!(error = %err, "webhook dispatcher ended abnormally");
        }
        served
    }

    fn spawn_dispatcher(&self, stop: CancellationToken) -> io::Result<Option<JoinHandle<()>>> {
        let courier = Courier::new(self.clone(), stop).map_err(io::Error::other)?;
        let taken = self
            .inner
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(queue) = taken else {
            tracing::warn!("webhook dispatcher already running for this Sim; serving HTTP only");
            return Ok(None);
        };
        Ok(Some(tokio::spawn(webhook::run(courier, queue))))
    }

    /// Adds an endpoint; it receives events emitted from now on.
    pub fn add_webhook_endpoint(&self, endpoint: WebhookEndpoint) {
        self.state().config.webhook_endpoints.push(endpoint);
    }

    /// Replaces the faults in force.
    pub fn set_faults(&self, faults: Faults) {
        self.state().faults = faults;
    }

    /// The faults in force, counters as they stand.
    pub fn faults(&self) -> Faults {
        self.state().faults.clone()
    }

    /// PaymentIntents whose metadata has `key = value`, oldest first, in Stripe JSON
    /// plus `sim_successful_charges`.
    pub fn payment_intents_with_metadata(&self, key: &str, value: &str) -> Vec<Value> {
        self.state().payment_intents_json(Some((key, value)))
    }

    /// Charges that succeeded on a PaymentIntent (never more than 1; 0 if unknown).
    pub fn successful_charges(&self, payment_intent_id: &str) -> u32 {
        self.state().successful_charges(payment_intent_id)
    }

    /// Every event, oldest first, as `GET /v1/events/{id}` renders it.
    pub fn events(&self) -> Vec<Value> {
        self.state().events_json()
    }

    /// The delivery attempts recorded for an event, oldest first.
    pub fn delivery_attempts(&self, event_id: &str) -> Vec<Value> {
        self.state().delivery_attempts(event_id)
    }

    /// Waits until every endpoint has answered 2xx for an event (its `pending_webhooks`
    /// is 0); false if it is unknown or `timeout` passes first.
    pub async fn wait_for_delivery(&self, event_id: &str, timeout: Duration) -> bool {
        let mut attempts = self.inner.attempts.subscribe();
        let delivered = async {
            loop {
                // Checked after subscribing, so an attempt recorded in between still
                // wakes us; the guard is dropped before awaiting.
                let delivered = self.state().is_delivered(event_id);
                match delivered {
                    Some(false) if attempts.changed().await.is_ok() => {}
                    other => return other.unwrap_or(false),
                }
            }
        };
        tokio::time::timeout(timeout, delivered)
            .await
            .unwrap_or(false)
    }

    /// Wakes `wait_for_delivery` callers after an attempt was recorded.
    pub(crate) fn attempt_recorded(&self) {
        self.inner.attempts.send_modify(|count| *count += 1);
    }

    /// Queues one more delivery of an event to every endpoint; false if it is unknown.
    pub fn resend_event(&self, event_id: &str) -> bool {
        self.state().resend_event(event_id)
    }

    /// Totals: PaymentIntents by status, refunds, events, deliveries, replays, faults.
    pub fn stats(&self) -> Value {
        self.state().stats()
    }

    /// The state, locked; never hold the guard across an await.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-written in a way
        // that matters to an emulator, so carry on rather than poison every request.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim").finish_non_exhaustive()
    }
}
