//! Stripe's webhook signature: `t={unix},v1={hex HMAC-SHA256(secret, "{t}.{body}")}`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The `Stripe-Signature` header value for `body` signed at `timestamp`.
pub(crate) fn header(secret: &str, timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes keys of any length, so this never fails; an empty digest would only
    // make the receiver reject the delivery, never crash the emulator.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_stripes_documented_scheme() {
        // Computed independently: printf '1492774577.{}' | openssl dgst -sha256 -hmac secret
        let expected =
            "t=1492774577,v1=2ddb0fdc1ad242a0eece9d964270ad86442b7381d25d1f99cd41a46999919e32";
        assert_eq!(header("secret", 1_492_774_577, "{}"), expected);
    }
}
