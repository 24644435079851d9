//! The emulator's state: every object, event, idempotent result and counter.
//!
//! `Sim` keeps one `State` behind a std `Mutex` that is never held across an await:
//! each API call is one synchronous transaction on it, so effects and the events they
//! emit are atomic with respect to other requests.

mod charge;
mod events;
mod payment_intents;
mod refunds;
mod search;
mod stats;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::SimConfig;
use crate::faults::Faults;
use crate::idempotency::IdempotencyStore;
use crate::model::{Event, EventType, Origin, PaymentIntent, PaymentMethod, Refund};
use crate::webhook::Job;
use crate::{Error, Result};

/// Running totals reported by `/_sim/stats`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) idempotent_replays: u64,
    pub(crate) rate_limited: u64,
    pub(crate) server_errors: u64,
    pub(crate) dropped_responses: u64,
    pub(crate) deliveries_attempted: u64,
    pub(crate) deliveries_succeeded: u64,
    pub(crate) deliveries_abandoned: u64,
}

/// Everything the emulator knows.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) faults: Faults,
    pub(crate) idempotency: IdempotencyStore,
    pub(crate) counters: Counters,
    payment_intents: Vec<PaymentIntent>,
    payment_intent_index: HashMap<String, usize>,
    payment_methods: HashMap<String, PaymentMethod>,
    refunds: Vec<Refund>,
    refund_index: HashMap<String, usize>,
    events: Vec<Event>,
    event_index: HashMap<String, usize>,
    /// Feeds the webhook dispatcher; sending never blocks.
    queue: UnboundedSender<Job>,
}

impl State {
    /// Empty state for `config`, emitting deliveries into `queue`.
    pub(crate) fn new(config: SimConfig, queue: UnboundedSender<Job>) -> Self {
        Self {
            faults: config.faults.clone(),
            config,
            idempotency: IdempotencyStore::default(),
            counters: Counters::default(),
            payment_intents: Vec::new(),
            payment_intent_index: HashMap::new(),
            payment_methods: HashMap::new(),
            refunds: Vec::new(),
            refund_index: HashMap::new(),
            events: Vec::new(),
            event_index: HashMap::new(),
            queue,
        }
    }

    /// Records an event about `object` and queues its delivery to every endpoint.
    pub(crate) fn emit(&mut self, event_type: EventType, object: Value, origin: &Origin) {
        let urls = self
            .config
            .webhook_endpoints
            .iter()
            .map(|e| e.url.clone())
            .collect();
        let event = Event::new(
            event_type,
            object,
            origin.clone(),
            &self.config.api_version,
            urls,
        );
        tracing::debug!(event = %event.id, kind = event_type.as_str(), "event emitted");
        self.queue_deliveries(&event.id, &event.body);
        self.event_index.insert(event.id.clone(), self.events.len());
        self.events.push(event);
    }

    /// Queues the event `id` (payload `body`) for delivery to every endpoint.
    fn queue_deliveries(&self, id: &str, body: &Arc<str>) {
        for endpoint in &self.config.webhook_endpoints {
            let job = Job {
                event_id: id.to_owned(),
                endpoint: endpoint.clone(),
                body: body.clone(),
                faults: self.faults.clone(),
            };
            if self.queue.send(job).is_err() {
                tracing::debug!(event = %id, "webhook dispatcher stopped; delivery not queued");
            }
        }
    }

    /// The PaymentIntent `id`, or Stripe's 404 naming `param`.
    fn payment_intent_mut(&mut self, id: &str, param: &str) -> Result<&mut PaymentIntent> {
        self.payment_intent_index
            .get(id)
            .and_then(|&index| self.payment_intents.get_mut(index))
            .ok_or_else(|| Error::no_such("payment_intent", id, param))
    }

    /// The PaymentIntent `id`, if it exists.
    pub(crate) fn payment_intent(&self, id: &str) -> Option<&PaymentIntent> {
        self.payment_intent_index
            .get(id)
            .and_then(|&index| self.payment_intents.get(index))
    }

    fn insert_payment_intent(&mut self, payment_intent: PaymentIntent) {
        let index = self.payment_intents.len();
        self.payment_intent_index
            .insert(payment_intent.id.clone(), index);
        self.payment_intents.push(payment_intent);
    }
}
