//! The baseline's Stripe calls, as the common guides write them: one synchronous
//! PaymentIntent create-and-confirm per checkout, inside the request, with an idempotency
//! key derived from the order, against a configurable base URL (the project's emulator
//! in the load tests).

use std::time::Duration;

use serde::Deserialize;

/// A Stripe client: base URL and secret key.
#[derive(Clone)]
pub(crate) struct Stripe {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// How a create-and-confirm ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Charge {
    /// Stripe created the PaymentIntent; its id and status (`succeeded`, `processing`,
    /// `requires_action`: fulfilment waits for the webhook either way).
    Created { id: String, status: String },
    /// The card was declined (`402`); Stripe's code.
    Declined(String),
    /// No usable answer (timeout, connection, 5xx, 429, anything else).
    Unavailable(String),
}

#[derive(Deserialize)]
struct Intent {
    id: String,
    status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
}

impl Stripe {
    /// A client for `base` (no trailing slash needed) with `key`.
    pub(crate) fn new(base: &str, key: &str, timeout: Duration) -> reqwest::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    /// Creates and confirms the order's PaymentIntent (key `baseline-order-{order}`).
    pub(crate) async fn charge(
        &self,
        order: i64,
        amount: i64,
        currency: &str,
        payment_method: &str,
    ) -> Charge {
        let order_id = order.to_string();
        let form = [
            ("amount", amount.to_string()),
            ("currency", currency.to_owned()),
            ("payment_method", payment_method.to_owned()),
            ("confirm", "true".to_owned()),
            ("metadata[baseline_order]", order_id),
        ];
        let sent = self
            .http
            .post(format!("{}/v1/payment_intents", self.base))
            .bearer_auth(&self.key)
            .header("Idempotency-Key", format!("baseline-order-{order}"))
            .form(&form)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => return Charge::Unavailable(e.to_string()),
        };
        let status = response.status();
        if status.is_success() {
            return match response.json::<Intent>().await {
                Ok(intent) => Charge::Created {
                    id: intent.id,
                    status: intent.status,
                },
                Err(e) => Charge::Unavailable(e.to_string()),
            };
        }
        if status.as_u16() == 402 {
            let code = response
                .json::<ErrorBody>()
                .await
                .ok()
                .and_then(|b| b.error.code)
                .unwrap_or_else(|| "card_declined".into());
            return Charge::Declined(code);
        }
        Charge::Unavailable(format!("Stripe answered {status}"))
    }
}
