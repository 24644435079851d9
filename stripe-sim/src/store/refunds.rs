//! Refunds: only of succeeded PaymentIntents, never beyond what was received.

use serde_json::Value;

use super::State;
use crate::model::{EventType, Origin, Refund, Status};
use crate::params::{RefundParams, RefundTarget};
use crate::{Error, Result};

impl State {
    /// `POST /v1/refunds`.
    pub(crate) fn create_refund(&mut self, params: RefundParams, origin: &Origin) -> Result<Value> {
        let id = self.refund_target(&params.target)?;
        let payment_intent = self.payment_intent_mut(&id, "payment_intent")?;
        if payment_intent.status != Status::Succeeded {
            let message =
                format!("This PaymentIntent ({id}) does not have a successful charge to refund.");
            return Err(Error::unexpected_state(message, payment_intent.to_json()));
        }
        let remaining = payment_intent.amount_received - payment_intent.amount_refunded;
        let amount = params.amount.unwrap_or(remaining);
        let charge = payment_intent.latest_charge.clone().unwrap_or_default();
        if remaining == 0 || amount > remaining {
            return Err(over_refund(&charge, amount, remaining));
        }
        payment_intent.amount_refunded += amount;
        let currency = payment_intent.currency.clone();
        let refund = Refund::new(
            amount,
            currency,
            id,
            Some(charge),
            params.reason,
            params.metadata,
        );
        let object = refund.to_json();
        self.refund_index
            .insert(refund.id.clone(), self.refunds.len());
        self.refunds.push(refund);
        self.emit(EventType::RefundCreated, object.clone(), origin);
        Ok(object)
    }

    /// `GET /v1/refunds/{id}`.
    pub(crate) fn retrieve_refund(&self, id: &str) -> Result<Value> {
        self.refund_index
            .get(id)
            .and_then(|&index| self.refunds.get(index))
            .map(Refund::to_json)
            .ok_or_else(|| Error::no_such("refund", id, "refund"))
    }

    /// The PaymentIntent a refund is taken from; an unknown one is a 400, as Stripe answers.
    fn refund_target(&self, target: &RefundTarget) -> Result<String> {
        let found = match target {
            RefundTarget::PaymentIntent(id) => self.payment_intent(id).map(|pi| pi.id.clone()),
            RefundTarget::Charge(charge) => self
                .payment_intents
                .iter()
                .find(|pi| {
                    pi.latest_charge.as_deref() == Some(charge) && pi.status == Status::Succeeded
                })
                .map(|pi| pi.id.clone()),
        };
        found.ok_or_else(|| match target {
            RefundTarget::PaymentIntent(id) => Error::invalid(
                "payment_intent",
                Some("resource_missing"),
                format!("No such payment_intent: '{id}'"),
            ),
            RefundTarget::Charge(id) => Error::invalid(
                "charge",
                Some("resource_missing"),
                format!("No such charge: '{id}'"),
            ),
        })
    }
}

fn over_refund(charge: &str, amount: i64, remaining: i64) -> Error {
    let message = if remaining == 0 {
        format!("Charge {charge} has already been refunded.")
    } else {
        format!(
            "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})."
        )
    };
    Error::invalid("amount", Some("charge_already_refunded"), message)
}
