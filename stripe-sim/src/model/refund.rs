//! The Refund record and its Stripe JSON rendering.

use serde_json::{Value, json};

use crate::ids;
use crate::params::Metadata;

/// A refund of (part of) a succeeded PaymentIntent's charge; always `succeeded` here.
#[derive(Clone, Debug)]
pub(crate) struct Refund {
    pub(crate) id: String,
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) payment_intent: String,
    pub(crate) charge: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) metadata: Metadata,
    pub(crate) created: i64,
    balance_transaction: String,
}

impl Refund {
    /// A new succeeded refund.
    pub(crate) fn new(
        amount: i64,
        currency: String,
        payment_intent: String,
        charge: Option<String>,
        reason: Option<String>,
        metadata: Metadata,
    ) -> Self {
        Self {
            id: ids::object_id("re"),
            amount,
            currency,
            payment_intent,
            charge,
            reason,
            metadata,
            created: ids::now(),
            balance_transaction: ids::object_id("txn"),
        }
    }

    /// The object as Stripe renders it (`stripe_shared::Refund`).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "balance_transaction": self.balance_transaction,
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "destination_details": null,
            "metadata": self.metadata,
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": "succeeded",
            "transfer_reversal": null,
        })
    }
}
