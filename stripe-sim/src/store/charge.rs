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
            Outcome::Authenticate => Ok(self.require_action(id, method, origin)),
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
        payment_intent.next_action = None;
        payment_intent.successful_charges += 1;
        let object = payment_intent.to_json();
        self.emit(EventType::PaymentIntentSucceeded, object.clone(), origin);
        object
    }

    /// The card needs the cardholder's 3-D Secure step: the PaymentIntent waits in
    /// `requires_action` with a `redirect_to_url` to the emulator's authentication page
    /// (Stripe.js shows it in a frame; completing or failing it is
    /// [`State::authenticate`]).
    fn require_action(&mut self, id: &str, method: &PaymentMethod, origin: &Origin) -> Value {
        let Ok(payment_intent) = self.payment_intent_mut(id, "intent") else {
            return Value::Null;
        };
        let host = origin.host.as_deref().unwrap_or("127.0.0.1");
        let url = format!(
            "http://{host}/_sim/authenticate/{id}?client_secret={}",
            payment_intent.client_secret
        );
        payment_intent.status = Status::RequiresAction;
        payment_intent.payment_method = Some(method.id.clone());
        payment_intent.last_payment_error = None;
        payment_intent.next_action = Some(json!({
            "type": "redirect_to_url",
            "redirect_to_url": { "return_url": null, "url": url },
        }));
        let object = payment_intent.to_json();
        self.emit(
            EventType::PaymentIntentRequiresAction,
            object.clone(),
            origin,
        );
        object
    }

    /// The cardholder completed (`true`) or failed the 3-D Secure step of the
    /// PaymentIntent `id`, proven with its client secret: completing charges it; failing
    /// returns it to `requires_payment_method` with Stripe's authentication error.
    pub(crate) fn authenticate(
        &mut self,
        id: &str,
        client_secret: &str,
        completed: bool,
        origin: &Origin,
    ) -> Result<Value> {
        let payment_intent = self.payment_intent_mut(id, "intent")?;
        if payment_intent.client_secret != client_secret {
            let message = "The client_secret provided does not match the client_secret associated with the PaymentIntent.";
            return Err(Error::invalid("client_secret", None, message));
        }
        if payment_intent.status != Status::RequiresAction {
            let message = format!(
                "This PaymentIntent has a status of {} and needs no authentication.",
                payment_intent.status.as_str()
            );
            return Err(Error::unexpected_state(message, payment_intent.to_json()));
        }
        let method = payment_intent
            .payment_method
            .clone()
            .and_then(|pm| self.payment_methods.get(&pm).cloned());
        let Some(method) = method else {
            let message = "This PaymentIntent has no payment method to authenticate.".to_owned();
            return Err(Error::unexpected_state(message, Value::Null));
        };
        if completed {
            return Ok(self.succeed(id, &method, origin));
        }
        let details = Details::new(
            "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
        )
        .code("payment_intent_authentication_failure")
        .with("payment_method", method.to_json());
        let mut last_error = Error::Card(Box::new(details)).body()["error"].clone();
        last_error["type"] = json!("invalid_request_error");
        let payment_intent = self.payment_intent_mut(id, "intent")?;
        payment_intent.status = Status::RequiresPaymentMethod;
        payment_intent.payment_method = None;
        payment_intent.next_action = None;
        payment_intent.last_payment_error = Some(last_error);
        let object = payment_intent.to_json();
        self.emit(
            EventType::PaymentIntentPaymentFailed,
            object.clone(),
            origin,
        );
        Ok(object)
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
        payment_intent.next_action = None;
        let object = payment_intent.to_json();
        self.emit(
            EventType::PaymentIntentPaymentFailed,
            object.clone(),
            origin,
        );
        Error::Card(Box::new(details.with("payment_intent", object)))
    }
}
