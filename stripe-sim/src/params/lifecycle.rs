//! Parameters of confirming and canceling a PaymentIntent.

use super::Form;
use crate::Result;

/// `POST /v1/payment_intents/{id}/confirm`.
#[derive(Debug)]
pub(crate) struct ConfirmParams {
    pub(crate) payment_method: Option<String>,
    pub(crate) client_secret: Option<String>,
    pub(crate) receipt_email: Option<String>,
}

const CONFIRM_PARAMS: &[&str] = &[
    "payment_method",
    "client_secret",
    "receipt_email",
    "return_url",
    "use_stripe_sdk",
    "error_on_requires_action",
    "expected_payment_method_type",
    "key",
    "expand",
];

impl ConfirmParams {
    /// Parses the confirm form.
    pub(crate) fn parse(form: &Form) -> Result<Self> {
        form.reject_unknown(CONFIRM_PARAMS)?;
        Ok(Self {
            payment_method: form.string("payment_method"),
            client_secret: form.string("client_secret"),
            receipt_email: form.string("receipt_email"),
        })
    }
}

/// `POST /v1/payment_intents/{id}/cancel`: the optional reason.
pub(crate) fn cancellation_reason(form: &Form) -> Result<Option<String>> {
    form.reject_unknown(&["cancellation_reason", "expand"])?;
    let reasons = [
        "duplicate",
        "fraudulent",
        "requested_by_customer",
        "abandoned",
    ];
    form.choice("cancellation_reason", &reasons)
}
