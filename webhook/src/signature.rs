//! `Stripe-Signature` verification, exactly as Stripe specifies it: HMAC-SHA256 with the
//! endpoint secret over `"{t}.{raw body}"`, hex in one or more `v1=` entries, compared in
//! constant time, with the timestamp within a tolerance (both ways: a signature from the
//! future is as suspect as a stale one). Several secrets are tried, for rotation. Schemes
//! other than `v1` (such as `v0`) are ignored, never accepted.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("missing Stripe-Signature header")]
    Missing,
    /// No timestamp, or no `v1` signature.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// No `v1` signature matches any secret.
    #[error("no signature matches")]
    Mismatch,
    /// The timestamp is outside the tolerance.
    #[error("signature timestamp outside the tolerance")]
    OutsideTolerance,
}

/// Verifies signatures against the endpoint's secrets.
pub struct Verifier {
    keys: Vec<Hmac<Sha256>>,
    tolerance_secs: i64,
}

impl Verifier {
    /// A verifier for `secrets` with a tolerance in seconds.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>, tolerance_secs: u64) -> Self {
        Self {
            keys: secrets
                .into_iter()
                .map(|s| Hmac::new_from_slice(s.as_bytes()).expect("HMAC takes keys of any length"))
                .collect(),
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
        }
    }

    /// Checks `header` for `body` at unix time `now`; returns the signed timestamp.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<i64, SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let (timestamp, signatures) = parse(header)?;
        let matches = self.keys.iter().any(|key| {
            let mut mac = key.clone();
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            signatures
                .iter()
                .any(|sig| mac.clone().verify_slice(sig).is_ok())
        });
        if !matches {
            return Err(SignatureError::Mismatch);
        }
        if (now - timestamp).abs() > self.tolerance_secs {
            return Err(SignatureError::OutsideTolerance);
        }
        Ok(timestamp)
    }
}

fn parse(header: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for pair in header.split(',') {
        let Some((key, value)) = pair.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?)
            }
            "t" => return Err(SignatureError::Malformed),
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    match (timestamp, signatures.is_empty()) {
        (Some(t), false) => Ok((t, signatures)),
        _ => Err(SignatureError::Malformed),
    }
}

/// A header for `body` signed with `secret` at `timestamp` (for tests and the demo).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1"}"#;

    #[test]
    fn a_signature_made_with_any_configured_secret_verifies() {
        let verifier = Verifier::new(["whsec_old", "whsec_new"], 300);
        assert_eq!(
            verifier.verify(Some(&sign("whsec_new", 1000, BODY)), BODY, 1000),
            Ok(1000)
        );
        assert_eq!(
            verifier.verify(Some(&sign("whsec_old", 1000, BODY)), BODY, 1100),
            Ok(1000)
        );
    }

    #[test]
    fn one_matching_v1_among_several_is_enough() {
        let verifier = Verifier::new(["whsec_a"], 300);
        let good = sign("whsec_a", 1000, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t=1000,v1={},v1={v1}", "00".repeat(32));
        assert!(verifier.verify(Some(&header), BODY, 1000).is_ok());
    }

    #[test]
    fn attacks_are_refused() {
        let verifier = Verifier::new(["whsec_a"], 300);
        let good = sign("whsec_a", 1000, BODY);
        assert_eq!(
            verifier.verify(None, BODY, 1000),
            Err(SignatureError::Missing)
        );
        let v0_only = good.replace("v1=", "v0=");
        assert_eq!(
            verifier.verify(Some(&v0_only), BODY, 1000),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verifier.verify(Some(&good), br#"{"id":"evt_2"}"#, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verifier.verify(Some(&good), BODY, 1301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verifier.verify(Some(&good), BODY, 699),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verifier.verify(Some("t=1000"), BODY, 1000),
            Err(SignatureError::Malformed)
        );
    }
}
