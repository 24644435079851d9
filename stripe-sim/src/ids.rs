//! Identifiers shaped like Stripe's, and the clock every timestamp comes from.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngExt;
use rand::distr::Alphanumeric;

/// Length of the random part of object ids (`pi_` + 24, as Stripe's are).
const ID_LEN: usize = 24;

/// `n` random ASCII letters and digits.
pub(crate) fn random_alnum(n: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A new object id such as `pi_3MtwBwLkdIwHu7ix28a3tqPa`.
pub(crate) fn object_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_alnum(ID_LEN))
}

/// A new request id, as Stripe puts in the `Request-Id` header.
pub(crate) fn request_id() -> String {
    format!("req_{}", random_alnum(14))
}

/// The client secret Stripe hands out with a PaymentIntent.
pub(crate) fn client_secret(payment_intent_id: &str) -> String {
    format!("{payment_intent_id}_secret_{}", random_alnum(25))
}

/// Seconds since the Unix epoch, from the system clock.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_carry_the_prefix_and_24_alphanumerics() {
        let id = object_id("pi");
        let (prefix, rest) = id.split_once('_').unwrap();
        assert_eq!(prefix, "pi");
        assert_eq!(rest.len(), 24);
        assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn client_secrets_start_with_the_payment_intent_id() {
        assert!(client_secret("pi_abc").starts_with("pi_abc_secret_"));
    }
}
