//! What tests and operators read back: PaymentIntents by metadata, charge counts, totals.

use serde_json::{Map, Value, json};

use super::State;
use crate::model::{PaymentIntent, Status};

impl State {
    /// PaymentIntents (oldest first) in Stripe JSON plus `sim_successful_charges`;
    /// all of them when `filter` is `None`, else those whose metadata has `key = value`.
    pub(crate) fn payment_intents_json(&self, filter: Option<(&str, &str)>) -> Vec<Value> {
        let wanted = |pi: &&PaymentIntent| {
            filter.is_none_or(|(key, value)| pi.metadata.get(key).is_some_and(|v| v == value))
        };
        self.payment_intents
            .iter()
            .filter(wanted)
            .map(with_charge_count)
            .collect()
    }

    /// How many charges succeeded on PaymentIntent `id` (0 if unknown).
    pub(crate) fn successful_charges(&self, id: &str) -> u32 {
        self.payment_intent(id)
            .map_or(0, |pi| pi.successful_charges)
    }

    /// Totals for `/_sim/stats`.
    pub(crate) fn stats(&self) -> Value {
        let mut by_status = Map::new();
        for status in Status::ALL {
            let count = self
                .payment_intents
                .iter()
                .filter(|pi| pi.status == status)
                .count();
            by_status.insert(status.as_str().to_owned(), json!(count));
        }
        let counters = &self.counters;
        json!({
            "payment_intents": { "total": self.payment_intents.len(), "by_status": by_status },
            "refunds": self.refunds.len(),
            "events": self.events.len(),
            "deliveries": {
                "attempted": counters.deliveries_attempted,
                "succeeded": counters.deliveries_succeeded,
                "abandoned": counters.deliveries_abandoned,
                "pending": self.pending_deliveries(),
            },
            "idempotent_replays": counters.idempotent_replays,
            "faults": {
                "rate_limited": counters.rate_limited,
                "server_errors": counters.server_errors,
                "dropped_responses": counters.dropped_responses,
            },
        })
    }
}

fn with_charge_count(payment_intent: &PaymentIntent) -> Value {
    let mut object = payment_intent.to_json();
    if let Value::Object(map) = &mut object {
        map.insert(
            "sim_successful_charges".into(),
            json!(payment_intent.successful_charges),
        );
    }
    object
}
