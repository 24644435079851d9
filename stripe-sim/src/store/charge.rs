//! Charging a PaymentIntent with a test card: success, or a decline shaped exactly
//! like Stripe's 402 (`card_error` carrying the PaymentIntent and PaymentMethod).

use serde_json::{Value, json};

use super::State;
use crate::error::Details;
use crate::model::{EventType, Origin, Outcome, PaymentMethod, Status, test_card};
use crate::{Error, Result, ids};

impl State {
    /// The PaymentMethod named by a test token (creating a `pm_…`) or by an earlier `pm_…`.
    pub(super) fn resolve_payment_method(&mut self, given: &str) -> Result<PaymentMethod> {
        if let Some(existing) = self.payment_methods.get(given) {
            return Ok(existing.clone());
        }
        let Some(card) = test_card(given) else {
            let message = format!("No such PaymentMethod: '{given}'");
            return Err(Error::invalid(
                "payment_method",
                Some("resource_missing"),
                message,
            ));
        };
        let method = PaymentMethod {
            id: ids::object_id("pm"),
            card,
            created: ids::now(),
        };
        self.payment_methods
            .insert(method.id.clone(), method.clone());
        Ok(method)
    }

    /// Charges the PaymentIntent `id` (already checked confirmable) with `method`.
    pub(super) fn charge(
        &mut self,
        id: &str,
        method: &PaymentMethod,
        origin: &Origin,
    ) -> Result<Value> {
        let payment_intent = self.payment_intent_mut(id, "intent")?;
        if payment_intent.successful_charges > 0 {
            // Defence in depth: the status checks should make this unreachable.
            let message = "This PaymentIntent has already been charged.".to_owned();
            return Err(Error::unexpected_state(message, payment_intent.to_json()));
        }
        match method.card.outcome {
            Outcome::Succeed => Ok(self.succeed(id, method, origin)),
            Outcome::Decline {
                code,
                decline_code,
                message,
            } => Err(self.decline(id, method, origin, (code, decline_code, message))),
        }
    }

    fn succeed(&mut self, id: &str, method: &PaymentMethod, origin: &Origin) -> Value {
        let Ok(payment_intent) = self.payment_intent_mut(id, "intent") else {
            return Value::Null;
        };
        payment_intent.status = Status::Succeeded;
        payment_intent.amount_received = payment_intent.amount;
        payment_intent.payment_method = Some(method.id.clone());
        payment_intent.latest_charge = Some(ids::object_id("ch"));
        payment_intent.last_payment_error = None;
        payment_intent.successful_charges += 1;
        let object = payment_intent.to_json();
        self.emit(EventType::PaymentIntentSucceeded, object.clone(), origin);
        object
    }

    fn decline(
        &mut self,
        id: &str,
        method: &PaymentMethod,
        origin: &Origin,
        why: (&'static str, &'static str, &'static str),
    ) -> Error {
        let (code, decline_code, message) = why;
        let charge = ids::object_id("ch");
        let details = Details::new(message)
            .code(code)
            .with("decline_code", json!(decline_code))
            .with("charge", json!(charge))
            .with("payment_method", method.to_json());
        let last_error = crate::Error::Card(Box::new(details.clone())).body()["error"].clone();
        let Ok(payment_intent) = self.payment_intent_mut(id, "intent") else {
            return Error::Card(Box::new(details));
        };
        // Stripe detaches the failed method so the customer can try another one.
        payment_intent.status = Status::RequiresPaymentMethod;
        payment_intent.payment_method = None;
        payment_intent.latest_charge = Some(charge);
        payment_intent.last_payment_error = Some(last_error);
        let object = payment_intent.to_json();
        self.emit(
            EventType::PaymentIntentPaymentFailed,
            object.clone(),
            origin,
        );
        Error::Card(Box::new(details.with("payment_intent", object)))
    }
}
