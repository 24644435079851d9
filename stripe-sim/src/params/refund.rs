//! Parameters of `POST /v1/refunds`.

use super::{Form, Metadata, metadata};
use crate::{Error, Result};

/// What a refund is taken from.
#[derive(Debug)]
pub(crate) enum RefundTarget {
    /// `payment_intent=pi_…`.
    PaymentIntent(String),
    /// `charge=ch_…` (the PaymentIntent's latest charge).
    Charge(String),
}

/// `POST /v1/refunds`.
#[derive(Debug)]
pub(crate) struct RefundParams {
    pub(crate) target: RefundTarget,
    /// `None` refunds what remains refundable.
    pub(crate) amount: Option<i64>,
    pub(crate) reason: Option<String>,
    pub(crate) metadata: Metadata,
}

const PARAMS: &[&str] = &[
    "payment_intent",
    "charge",
    "amount",
    "reason",
    "metadata",
    "expand",
];

impl RefundParams {
    /// Parses and validates the refund form.
    pub(crate) fn parse(form: &Form) -> Result<Self> {
        form.reject_unknown(PARAMS)?;
        let reasons = ["duplicate", "fraudulent", "requested_by_customer"];
        Ok(Self {
            target: target(form)?,
            amount: amount(form)?,
            reason: form.choice("reason", &reasons)?,
            metadata: metadata::parse(form)?,
        })
    }
}

fn target(form: &Form) -> Result<RefundTarget> {
    match (form.string("payment_intent"), form.string("charge")) {
        (Some(pi), None) => Ok(RefundTarget::PaymentIntent(pi)),
        (None, Some(charge)) => Ok(RefundTarget::Charge(charge)),
        (Some(_), Some(_)) => {
            let message = "You may only specify one of these parameters: charge, payment_intent.";
            Err(Error::invalid("payment_intent", None, message))
        }
        (None, None) => {
            let message = "One of the following params should be provided for this request: payment_intent or charge.";
            Err(Error::invalid(
                "payment_intent",
                Some("parameter_missing"),
                message,
            ))
        }
    }
}

fn amount(form: &Form) -> Result<Option<i64>> {
    match form.integer("amount")? {
        Some(amount) if amount < 1 => {
            let message = "Invalid positive integer";
            Err(Error::invalid(
                "amount",
                Some("parameter_invalid_integer"),
                message,
            ))
        }
        other => Ok(other),
    }
}
