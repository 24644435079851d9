//! The PaymentIntent record and its Stripe JSON rendering.

use serde_json::{Map, Value, json};

use crate::ids;
use crate::params::{CreateParams, Metadata};

/// A PaymentIntent's lifecycle state, as Stripe names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

impl Status {
    /// Every status, for per-status counts.
    pub(crate) const ALL: [Status; 7] = [
        Status::RequiresPaymentMethod,
        Status::RequiresConfirmation,
        Status::RequiresAction,
        Status::Processing,
        Status::RequiresCapture,
        Status::Canceled,
        Status::Succeeded,
    ];

    /// Stripe's name for the status.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::RequiresPaymentMethod => "requires_payment_method",
            Status::RequiresConfirmation => "requires_confirmation",
            Status::RequiresAction => "requires_action",
            Status::Processing => "processing",
            Status::RequiresCapture => "requires_capture",
            Status::Canceled => "canceled",
            Status::Succeeded => "succeeded",
        }
    }
}

/// Fields Stripe always renders that the emulator never sets.
const ALWAYS_NULL: &[&str] = &[
    "application",
    "application_fee_amount",
    "customer",
    "excluded_payment_method_types",
    "on_behalf_of",
    "payment_method_configuration_details",
    "processing",
    "review",
    "setup_future_usage",
    "shipping",
    "source",
    "statement_descriptor",
    "transfer_data",
    "transfer_group",
];

/// A PaymentIntent and the emulator's bookkeeping about it.
#[derive(Clone, Debug)]
pub(crate) struct PaymentIntent {
    pub(crate) id: String,
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) metadata: Metadata,
    pub(crate) description: Option<String>,
    pub(crate) status: Status,
    pub(crate) created: i64,
    pub(crate) client_secret: String,
    pub(crate) payment_method: Option<String>,
    pub(crate) payment_method_types: Vec<String>,
    pub(crate) automatic_payment_methods: Option<(bool, Option<String>)>,
    pub(crate) capture_method: String,
    pub(crate) latest_charge: Option<String>,
    pub(crate) last_payment_error: Option<Value>,
    pub(crate) amount_received: i64,
    pub(crate) canceled_at: Option<i64>,
    pub(crate) cancellation_reason: Option<String>,
    pub(crate) receipt_email: Option<String>,
    pub(crate) statement_descriptor_suffix: Option<String>,
    /// Charges that succeeded on this PaymentIntent; must never exceed 1.
    pub(crate) successful_charges: u32,
    /// Sum of its refunds.
    pub(crate) amount_refunded: i64,
    /// While `requires_action`: the 3-D Secure step (a page the cardholder completes).
    pub(crate) next_action: Option<Value>,
}

impl PaymentIntent {
    /// A new PaymentIntent from validated parameters; `payment_method` is the resolved `pm_…`.
    pub(crate) fn new(params: CreateParams, payment_method: Option<String>) -> Self {
        let id = ids::object_id("pi");
        let status = match payment_method {
            Some(_) => Status::RequiresConfirmation,
            None => Status::RequiresPaymentMethod,
        };
        Self {
            client_secret: ids::client_secret(&id),
            id,
            amount: params.amount,
            currency: params.currency,
            metadata: params.metadata,
            description: params.description,
            status,
            created: ids::now(),
            payment_method,
            payment_method_types: params.payment_method_types,
            automatic_payment_methods: params.automatic_payment_methods,
            capture_method: params.capture_method,
            latest_charge: None,
            last_payment_error: None,
            amount_received: 0,
            canceled_at: None,
            cancellation_reason: None,
            receipt_email: params.receipt_email,
            statement_descriptor_suffix: params.statement_descriptor_suffix,
            successful_charges: 0,
            amount_refunded: 0,
            next_action: None,
        }
    }

    /// The object as Stripe renders it (`stripe_shared::PaymentIntent`).
    pub(crate) fn to_json(&self) -> Value {
        let mut object = self.set_fields();
        for field in ALWAYS_NULL {
            object.insert((*field).to_owned(), Value::Null);
        }
        Value::Object(object)
    }

    fn set_fields(&self) -> Map<String, Value> {
        let automatic = self.automatic_payment_methods.as_ref().map(|(enabled, redirects)| {
            json!({ "enabled": enabled, "allow_redirects": redirects.as_deref().unwrap_or("always") })
        });
        let card_options = json!({
            "installments": null, "mandate_options": null, "network": null, "request_three_d_secure": "automatic"
        });
        let fields = json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_capturable": 0,
            "amount_details": { "tip": {} },
            "amount_received": self.amount_received,
            "automatic_payment_methods": automatic,
            "canceled_at": self.canceled_at,
            "cancellation_reason": self.cancellation_reason,
            "capture_method": self.capture_method,
            "client_secret": self.client_secret,
            "confirmation_method": "automatic",
            "created": self.created,
            "currency": self.currency,
            "description": self.description,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": false,
            "metadata": self.metadata,
            "next_action": self.next_action,
            "payment_method": self.payment_method,
            "payment_method_options": { "card": card_options },
            "payment_method_types": self.payment_method_types,
            "receipt_email": self.receipt_email,
            "statement_descriptor_suffix": self.statement_descriptor_suffix,
            "status": self.status.as_str(),
        });
        match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}
