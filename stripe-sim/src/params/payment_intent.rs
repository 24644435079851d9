//! Parameters of the PaymentIntent endpoints, parsed from the form into typed values.

use super::{Form, Metadata, metadata};
use crate::{Error, Result};

/// Stripe's largest accepted amount (eight digits).
const MAX_AMOUNT: i64 = 99_999_999;

/// `POST /v1/payment_intents`.
#[derive(Debug)]
pub(crate) struct CreateParams {
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) metadata: Metadata,
    pub(crate) description: Option<String>,
    pub(crate) payment_method: Option<String>,
    pub(crate) confirm: bool,
    pub(crate) payment_method_types: Vec<String>,
    /// `automatic_payment_methods[enabled]` and `[allow_redirects]`, when sent.
    pub(crate) automatic_payment_methods: Option<(bool, Option<String>)>,
    pub(crate) capture_method: String,
    pub(crate) receipt_email: Option<String>,
    pub(crate) statement_descriptor_suffix: Option<String>,
}

const CREATE_PARAMS: &[&str] = &[
    "amount",
    "currency",
    "metadata",
    "description",
    "payment_method",
    "confirm",
    "payment_method_types",
    "automatic_payment_methods",
    "capture_method",
    "confirmation_method",
    "receipt_email",
    "statement_descriptor_suffix",
    "return_url",
    "use_stripe_sdk",
    "error_on_requires_action",
    "expand",
];

impl CreateParams {
    /// Parses and validates, failing as Stripe does before anything is created.
    pub(crate) fn parse(form: &Form) -> Result<Self> {
        form.reject_unknown(CREATE_PARAMS)?;
        // Only automatic confirmation is emulated; `manual` is refused rather than ignored.
        form.choice("confirmation_method", &["automatic"])?;
        let params = Self {
            amount: amount(form)?,
            currency: currency(form)?,
            metadata: metadata::parse(form)?,
            description: form.string("description"),
            payment_method: form.string("payment_method"),
            confirm: form.boolean("confirm")?.unwrap_or(false),
            payment_method_types: payment_method_types(form)?,
            automatic_payment_methods: automatic_payment_methods(form)?,
            capture_method: capture_method(form)?,
            receipt_email: form.string("receipt_email"),
            statement_descriptor_suffix: form.string("statement_descriptor_suffix"),
        };
        params.check_exclusive(form)?;
        Ok(params)
    }

    fn check_exclusive(&self, form: &Form) -> Result<()> {
        let explicit_types = form.children("payment_method_types").next().is_some();
        if explicit_types
            && self
                .automatic_payment_methods
                .as_ref()
                .is_some_and(|(on, _)| *on)
        {
            let message = "You may only specify one of these parameters: automatic_payment_methods, payment_method_types.";
            return Err(Error::invalid("automatic_payment_methods", None, message));
        }
        Ok(())
    }
}

fn amount(form: &Form) -> Result<i64> {
    let amount = form
        .integer("amount")?
        .ok_or_else(|| Error::missing_param("amount"))?;
    if amount < 1 {
        let message = "This value must be greater than or equal to 1.";
        return Err(Error::invalid(
            "amount",
            Some("parameter_invalid_integer"),
            message,
        ));
    }
    if amount > MAX_AMOUNT {
        let message = "Amount must be no more than 99999999 in the smallest currency unit.";
        return Err(Error::invalid("amount", Some("amount_too_large"), message));
    }
    Ok(amount)
}

fn currency(form: &Form) -> Result<String> {
    let raw = form
        .string("currency")
        .ok_or_else(|| Error::missing_param("currency"))?;
    // Stripe reads currencies case-insensitively and answers in lowercase.
    let currency = raw.to_ascii_lowercase();
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_lowercase()) {
        return Ok(currency);
    }
    Err(Error::invalid(
        "currency",
        None,
        format!("Invalid currency: {raw}."),
    ))
}

fn payment_method_types(form: &Form) -> Result<Vec<String>> {
    let types = form.list("payment_method_types");
    if let Some(other) = types.iter().find(|t| t.as_str() != "card") {
        let message = format!(
            "The payment method type \"{other}\" is not emulated by stripe-sim; only \"card\" is."
        );
        return Err(Error::invalid("payment_method_types", None, message));
    }
    Ok(if types.is_empty() {
        vec!["card".to_owned()]
    } else {
        types
    })
}

fn automatic_payment_methods(form: &Form) -> Result<Option<(bool, Option<String>)>> {
    if form.children("automatic_payment_methods").next().is_none() {
        return Ok(None);
    }
    let enabled = form
        .boolean("automatic_payment_methods[enabled]")?
        .ok_or_else(|| Error::missing_param("automatic_payment_methods[enabled]"))?;
    let redirects = form.choice(
        "automatic_payment_methods[allow_redirects]",
        &["always", "never"],
    )?;
    Ok(Some((enabled, redirects)))
}

fn capture_method(form: &Form) -> Result<String> {
    // `automatic_async` is Stripe's default; `automatic` behaves the same here.
    let chosen = form
        .string("capture_method")
        .unwrap_or_else(|| "automatic_async".to_owned());
    if chosen == "automatic" || chosen == "automatic_async" {
        return Ok(chosen);
    }
    let message = format!(
        "capture_method \"{chosen}\" is not emulated by stripe-sim; use automatic or automatic_async."
    );
    Err(Error::invalid("capture_method", None, message))
}
