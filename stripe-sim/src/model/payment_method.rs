//! Stripe's documented test payment methods (`pm_card_visa`, `pm_card_chargeDeclined`, …)
//! and the PaymentMethod objects they turn into when used.

use serde_json::{Value, json};

/// What charging a test card does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The charge succeeds.
    Succeed,
    /// The bank asks the cardholder to authenticate (3-D Secure) before the charge:
    /// the PaymentIntent waits in `requires_action`; completing the step charges it.
    Authenticate,
    /// The charge is declined with Stripe's `code`, `decline_code` and message.
    Decline {
        code: &'static str,
        decline_code: &'static str,
        message: &'static str,
    },
}

/// A test token and the card behind it.
#[derive(Debug)]
pub(crate) struct TestCard {
    pub(crate) token: &'static str,
    pub(crate) brand: &'static str,
    pub(crate) last4: &'static str,
    pub(crate) funding: &'static str,
    pub(crate) outcome: Outcome,
}

const fn ok(
    token: &'static str,
    brand: &'static str,
    last4: &'static str,
    funding: &'static str,
) -> TestCard {
    TestCard {
        token,
        brand,
        last4,
        funding,
        outcome: Outcome::Succeed,
    }
}

const fn declined(
    token: &'static str,
    last4: &'static str,
    code: &'static str,
    decline_code: &'static str,
    message: &'static str,
) -> TestCard {
    let outcome = Outcome::Decline {
        code,
        decline_code,
        message,
    };
    TestCard {
        token,
        brand: "visa",
        last4,
        funding: "credit",
        outcome,
    }
}

const fn authenticated(token: &'static str, last4: &'static str) -> TestCard {
    TestCard {
        token,
        brand: "visa",
        last4,
        funding: "credit",
        outcome: Outcome::Authenticate,
    }
}

const DECLINED: &str = "Your card was declined.";

/// The tokens of <https://docs.stripe.com/testing#cards> that the emulator knows.
const TEST_CARDS: &[TestCard] = &[
    ok("pm_card_visa", "visa", "4242", "credit"),
    ok("pm_card_visa_debit", "visa", "5556", "debit"),
    ok("pm_card_mastercard", "mastercard", "4444", "credit"),
    ok("pm_card_mastercard_debit", "mastercard", "8210", "debit"),
    ok("pm_card_amex", "amex", "8431", "credit"),
    ok("pm_card_discover", "discover", "1117", "credit"),
    ok("pm_card_jcb", "jcb", "0505", "credit"),
    ok("pm_card_unionpay", "unionpay", "0005", "credit"),
    authenticated("pm_card_authenticationRequired", "3184"),
    authenticated("pm_card_threeDSecure2Required", "3220"),
    declined(
        "pm_card_chargeDeclined",
        "0002",
        "card_declined",
        "generic_decline",
        DECLINED,
    ),
    declined(
        "pm_card_visa_chargeDeclined",
        "0002",
        "card_declined",
        "generic_decline",
        DECLINED,
    ),
    declined(
        "pm_card_chargeDeclinedInsufficientFunds",
        "9995",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    declined(
        "pm_card_chargeDeclinedLostCard",
        "9987",
        "card_declined",
        "lost_card",
        DECLINED,
    ),
    declined(
        "pm_card_chargeDeclinedStolenCard",
        "9979",
        "card_declined",
        "stolen_card",
        DECLINED,
    ),
    declined(
        "pm_card_chargeDeclinedFraudulent",
        "0019",
        "card_declined",
        "fraudulent",
        DECLINED,
    ),
    declined(
        "pm_card_chargeDeclinedExpiredCard",
        "0069",
        "expired_card",
        "expired_card",
        "Your card has expired.",
    ),
    declined(
        "pm_card_chargeDeclinedIncorrectCvc",
        "0127",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    declined(
        "pm_card_chargeDeclinedProcessingError",
        "0119",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
];

/// The test card behind a token such as `pm_card_visa`.
pub(crate) fn test_card(token: &str) -> Option<&'static TestCard> {
    TEST_CARDS.iter().find(|card| card.token == token)
}

/// A PaymentMethod created from a test token (`pm_…`), reusable on later confirms.
#[derive(Debug, Clone)]
pub(crate) struct PaymentMethod {
    pub(crate) id: String,
    pub(crate) card: &'static TestCard,
    pub(crate) created: i64,
}

impl PaymentMethod {
    /// The object as Stripe renders it (`stripe_shared::PaymentMethod`).
    pub(crate) fn to_json(&self) -> Value {
        let address = json!({
            "city": null, "country": null, "line1": null, "line2": null, "postal_code": null, "state": null
        });
        json!({
            "id": self.id,
            "object": "payment_method",
            "allow_redisplay": "unspecified",
            "billing_details": { "address": address, "email": null, "name": null, "phone": null, "tax_id": null },
            "card": self.card_json(),
            "created": self.created,
            "customer": null,
            "livemode": false,
            "metadata": {},
            "type": "card",
        })
    }

    fn card_json(&self) -> Value {
        let card = self.card;
        json!({
            "brand": card.brand,
            "checks": { "address_line1_check": null, "address_postal_code_check": null, "cvc_check": "pass" },
            "country": "US",
            "display_brand": card.brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": format!("sim{}{}", card.brand, card.last4),
            "funding": card.funding,
            "generated_from": null,
            "last4": card.last4,
            "networks": { "available": [card.brand], "preferred": null },
            "regulated_status": "unregulated",
            "three_d_secure_usage": { "supported": true },
            "wallet": null,
        })
    }
}
