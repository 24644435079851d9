//! The Event record: what happened, the payload webhooks carry, and its deliveries.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::ids;

/// The event types the emulator emits; each one's object parses with async-stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    PaymentIntentCreated,
    PaymentIntentSucceeded,
    PaymentIntentPaymentFailed,
    PaymentIntentRequiresAction,
    PaymentIntentCanceled,
    RefundCreated,
}

impl EventType {
    /// Stripe's name for the type.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentIntentCreated => "payment_intent.created",
            EventType::PaymentIntentSucceeded => "payment_intent.succeeded",
            EventType::PaymentIntentPaymentFailed => "payment_intent.payment_failed",
            EventType::PaymentIntentRequiresAction => "payment_intent.requires_action",
            EventType::PaymentIntentCanceled => "payment_intent.canceled",
            EventType::RefundCreated => "refund.created",
        }
    }
}

/// The API request an event came from (Stripe's `request` member).
#[derive(Clone, Debug, Default)]
pub(crate) struct Origin {
    pub(crate) request_id: Option<String>,
    pub(crate) idempotency_key: Option<String>,
    /// The address the request was sent to (`Host`), for links the answer carries.
    pub(crate) host: Option<String>,
}

/// One delivery attempt of an event to an endpoint.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct DeliveryAttempt {
    pub(crate) url: String,
    pub(crate) attempt: u32,
    /// HTTP status answered, if the endpoint answered at all.
    pub(crate) status: Option<u16>,
    /// Transport failure, if it did not.
    pub(crate) error: Option<String>,
    pub(crate) succeeded: bool,
    pub(crate) at: i64,
}

/// An event, its frozen webhook payload and its delivery record.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) id: String,
    pub(crate) event_type: EventType,
    pub(crate) created: i64,
    object: Value,
    origin: Origin,
    /// The payload as signed and sent; fixed at creation so retries are byte-identical.
    pub(crate) body: Arc<str>,
    /// Endpoint URLs that have not answered 2xx yet.
    pub(crate) undelivered: Vec<String>,
    pub(crate) attempts: Vec<DeliveryAttempt>,
}

impl Event {
    /// A new event about `object`, addressed to the endpoints at `urls`.
    pub(crate) fn new(
        event_type: EventType,
        object: Value,
        origin: Origin,
        api_version: &str,
        urls: Vec<String>,
    ) -> Self {
        let mut event = Self {
            id: ids::object_id("evt"),
            event_type,
            created: ids::now(),
            object,
            origin,
            body: Arc::from(""),
            undelivered: urls,
            attempts: Vec::new(),
        };
        let payload = event.to_json(api_version);
        event.body = Arc::from(serde_json::to_string_pretty(&payload).unwrap_or_default());
        event
    }

    /// The object as Stripe renders it, `pending_webhooks` counting undelivered endpoints.
    pub(crate) fn to_json(&self, api_version: &str) -> Value {
        json!({
            "id": self.id,
            "object": "event",
            "api_version": api_version,
            "created": self.created,
            "data": { "object": self.object },
            "livemode": false,
            "pending_webhooks": self.undelivered.len(),
            "request": { "id": self.origin.request_id, "idempotency_key": self.origin.idempotency_key },
            "type": self.event_type.as_str(),
        })
    }
}
