//! Reading Stripe events tolerantly. Stripe renders payloads in the account's API version,
//! which drifts from any library's; only the fields the state machine needs are read
//! (event id, type, created, and the PaymentIntent's id, status, amount, metadata and last
//! error), so a version change never drops an event. Verification stays strict.

use std::collections::HashMap;

use flashgate_common::ledger::IntentOutcome;
use serde::Deserialize;

/// The envelope of any event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    /// `evt_…`: the dedupe key.
    pub id: String,
    /// `payment_intent.succeeded`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    /// The object the event is about.
    pub data: EventData,
}

/// `data` of an event.
#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    /// The object, kept raw until the type says what it is.
    pub object: serde_json::Value,
}

/// The parts of a PaymentIntent the state machine reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Intent {
    /// `pi_…`.
    pub id: String,
    /// Its status.
    #[serde(default)]
    pub status: Option<String>,
    /// Amount in minor units.
    #[serde(default)]
    pub amount: Option<i64>,
    /// Our order id lives here.
    #[serde(default, deserialize_with = "lenient_metadata")]
    pub metadata: HashMap<String, String>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_payment_error: Option<LastError>,
}

/// A PaymentIntent's last error.
#[derive(Debug, Clone, Deserialize)]
pub struct LastError {
    /// `card_declined`, …
    #[serde(default)]
    pub code: Option<String>,
    /// `insufficient_funds`, …
    #[serde(default)]
    pub decline_code: Option<String>,
}

/// Metadata values are strings at Stripe; anything else is kept as its JSON text.
fn lenient_metadata<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<HashMap<String, String>, D::Error> {
    let raw: Option<HashMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect())
}

impl Event {
    /// The PaymentIntent this event is about and what it means, for the event types
    /// the state machine handles; `None` for every other type.
    pub fn intent_outcome(&self) -> Option<Result<(Intent, IntentOutcome), serde_json::Error>> {
        let kind = self.kind.as_str();
        if !matches!(
            kind,
            "payment_intent.succeeded"
                | "payment_intent.payment_failed"
                | "payment_intent.canceled"
        ) {
            return None;
        }
        Some(
            serde_json::from_value::<Intent>(self.data.object.clone()).map(|intent| {
                let outcome = match kind {
                    "payment_intent.succeeded" => IntentOutcome::Succeeded,
                    "payment_intent.canceled" => IntentOutcome::Canceled,
                    _ => IntentOutcome::Failed {
                        code: intent
                            .last_payment_error
                            .as_ref()
                            .and_then(|e| e.decline_code.clone().or_else(|| e.code.clone())),
                    },
                };
                (intent, outcome)
            }),
        )
    }
}
