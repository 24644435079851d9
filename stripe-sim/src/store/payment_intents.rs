//! PaymentIntent operations: create, retrieve, confirm and cancel, with Stripe's state
//! rules (a PaymentIntent is charged successfully at most once).

use serde_json::Value;

use super::State;
use crate::model::{EventType, Origin, PaymentIntent, Status};
use crate::params::{ConfirmParams, CreateParams};
use crate::{Error, Result};

/// Statuses from which Stripe lets a PaymentIntent be canceled.
const CANCELABLE: [Status; 4] = [
    Status::RequiresPaymentMethod,
    Status::RequiresConfirmation,
    Status::RequiresAction,
    Status::RequiresCapture,
];

/// Statuses from which Stripe lets a PaymentIntent be confirmed.
const CONFIRMABLE: [Status; 3] = [
    Status::RequiresPaymentMethod,
    Status::RequiresConfirmation,
    Status::RequiresAction,
];

impl State {
    /// `POST /v1/payment_intents`, confirming at once when asked.
    pub(crate) fn create_payment_intent(
        &mut self,
        params: CreateParams,
        origin: &Origin,
    ) -> Result<Value> {
        let method = match &params.payment_method {
            Some(given) => Some(self.resolve_payment_method(given)?),
            None if params.confirm => return Err(missing_method_error(None)),
            None => None,
        };
        let confirm = params.confirm;
        let payment_intent = PaymentIntent::new(params, method.as_ref().map(|m| m.id.clone()));
        let (id, object) = (payment_intent.id.clone(), payment_intent.to_json());
        self.insert_payment_intent(payment_intent);
        self.emit(EventType::PaymentIntentCreated, object.clone(), origin);
        match method {
            Some(method) if confirm => self.charge(&id, &method, origin),
            _ => Ok(object),
        }
    }

    /// `GET /v1/payment_intents/{id}`; with a publishable key the client secret must match.
    pub(crate) fn retrieve_payment_intent(
        &self,
        id: &str,
        client_secret: Option<&str>,
    ) -> Result<Value> {
        let payment_intent = self
            .payment_intent(id)
            .ok_or_else(|| Error::no_such("payment_intent", id, "intent"))?;
        if let Some(secret) = client_secret {
            check_client_secret(payment_intent, Some(secret))?;
        }
        Ok(payment_intent.to_json())
    }

    /// `POST /v1/payment_intents/{id}/confirm`; `publishable` callers must prove the client secret.
    pub(crate) fn confirm_payment_intent(
        &mut self,
        id: &str,
        params: ConfirmParams,
        publishable: bool,
        origin: &Origin,
    ) -> Result<Value> {
        let payment_intent = self.payment_intent_mut(id, "intent")?;
        if publishable {
            check_client_secret(payment_intent, params.client_secret.as_deref())?;
        }
        check_confirmable(payment_intent)?;
        let Some(given) = params
            .payment_method
            .or_else(|| payment_intent.payment_method.clone())
        else {
            return Err(missing_method_error(Some(payment_intent.to_json())));
        };
        let method = self.resolve_payment_method(&given)?;
        if let Some(email) = params.receipt_email {
            self.payment_intent_mut(id, "intent")?.receipt_email = Some(email);
        }
        self.charge(id, &method, origin)
    }

    /// `POST /v1/payment_intents/{id}/cancel`.
    pub(crate) fn cancel_payment_intent(
        &mut self,
        id: &str,
        reason: Option<String>,
        origin: &Origin,
    ) -> Result<Value> {
        let payment_intent = self.payment_intent_mut(id, "intent")?;
        if !CANCELABLE.contains(&payment_intent.status) {
            let message = format!(
                "You cannot cancel this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.",
                payment_intent.status.as_str()
            );
            return Err(Error::unexpected_state(message, payment_intent.to_json()));
        }
        payment_intent.status = Status::Canceled;
        payment_intent.next_action = None;
        payment_intent.canceled_at = Some(crate::ids::now());
        payment_intent.cancellation_reason = reason;
        let object = payment_intent.to_json();
        self.emit(EventType::PaymentIntentCanceled, object.clone(), origin);
        Ok(object)
    }
}

fn check_confirmable(payment_intent: &PaymentIntent) -> Result<()> {
    let message = match payment_intent.status {
        status if CONFIRMABLE.contains(&status) => return Ok(()),
        Status::Succeeded => "You cannot confirm this PaymentIntent because it has already succeeded after being previously confirmed.".to_owned(),
        status => format!(
            "You cannot confirm this PaymentIntent because it has a status of {}. Only a PaymentIntent with one of the following statuses may be confirmed: requires_confirmation, requires_payment_method, requires_action.",
            status.as_str()
        ),
    };
    Err(Error::unexpected_state(message, payment_intent.to_json()))
}

/// Stripe.js proves it may act on a PaymentIntent with its client secret.
fn check_client_secret(payment_intent: &PaymentIntent, given: Option<&str>) -> Result<()> {
    match given {
        None => Err(Error::missing_param("client_secret")),
        Some(secret) if secret == payment_intent.client_secret => Ok(()),
        Some(_) => {
            let message = "The client_secret provided does not match the client_secret associated with the PaymentIntent.";
            Err(Error::invalid(
                "client_secret",
                Some("payment_intent_invalid_parameter"),
                message,
            ))
        }
    }
}

fn missing_method_error(payment_intent: Option<Value>) -> Error {
    let message = "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent, pass a payment method via the `payment_method` parameter.";
    match payment_intent {
        Some(object) => Error::unexpected_state(message.to_owned(), object),
        None => Error::invalid(
            "payment_method",
            Some("payment_intent_unexpected_state"),
            message,
        ),
    }
}
