//! Ticket tokens: what the shopper holds and polls with. Verified with a key, without a
//! database or Redis read, so forged or expired tokens cost nothing.
//!
//! Format: `{sale}.{ticket}.{expires}.{mac}` where `ticket` is the UUID in base64url,
//! `expires` unix seconds, and `mac` the first 16 bytes of HMAC-SHA256 over the rest
//! (base64url). Sale ids never contain `.`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use flashgate_common::domain::SaleId;

const MAC_BYTES: usize = 16;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClaims {
    /// The sale.
    pub sale: SaleId,
    /// The ticket.
    pub ticket: Uuid,
    /// Unix seconds after which the token is refused.
    pub expires_at: i64,
}

/// Why a token was refused; clients see one answer for all of them (404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not the shape of a token.
    #[error("malformed ticket token")]
    Malformed,
    /// The MAC does not match: forged or altered.
    #[error("ticket token signature mismatch")]
    BadSignature,
    /// Past its expiry.
    #[error("ticket token expired")]
    Expired,
}

/// Signs and verifies ticket tokens with one secret.
#[derive(Clone)]
pub struct TicketSigner {
    mac: Hmac<Sha256>,
}

impl TicketSigner {
    /// A signer keyed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            mac: Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"),
        }
    }

    /// A signer with a random key (tokens die with the process).
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        Self::new(&key)
    }

    fn tag(&self, body: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(b"flashgate-ticket-v1|");
        mac.update(body.as_bytes());
        mac
    }

    /// The token for `claims`.
    pub fn sign(&self, claims: &TicketClaims) -> String {
        let body = format!(
            "{}.{}.{}",
            claims.sale,
            B64.encode(claims.ticket.as_bytes()),
            claims.expires_at
        );
        let tag = self.tag(&body).finalize().into_bytes();
        format!("{body}.{}", B64.encode(&tag[..MAC_BYTES]))
    }

    /// A MAC of `body` for another purpose than tickets (`domain` keeps them apart).
    pub fn mac(&self, domain: &[u8], body: &str) -> [u8; MAC_BYTES] {
        let mut mac = self.mac.clone();
        mac.update(domain);
        mac.update(body.as_bytes());
        let mut out = [0; MAC_BYTES];
        out.copy_from_slice(&mac.finalize().into_bytes()[..MAC_BYTES]);
        out
    }

    /// Whether `tag` is [`TicketSigner::mac`] of `body` (in constant time).
    pub fn verify_mac(&self, domain: &[u8], body: &str, tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        mac.update(domain);
        mac.update(body.as_bytes());
        tag.len() == MAC_BYTES && mac.verify_truncated_left(tag).is_ok()
    }

    /// Checks `token` at unix time `now` and returns its claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<TicketClaims, TokenError> {
        let (body, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Malformed)?;
        if tag.len() != MAC_BYTES {
            return Err(TokenError::Malformed);
        }
        self.tag(body)
            .verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let claims = parse_body(body)?;
        if claims.expires_at < now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn parse_body(body: &str) -> Result<TicketClaims, TokenError> {
    let mut parts = body.split('.');
    let (Some(sale), Some(ticket), Some(expires), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let ticket = B64.decode(ticket).map_err(|_| TokenError::Malformed)?;
    Ok(TicketClaims {
        sale: SaleId::parse(sale).map_err(|_| TokenError::Malformed)?,
        ticket: Uuid::from_slice(&ticket).map_err(|_| TokenError::Malformed)?,
        expires_at: expires.parse().map_err(|_| TokenError::Malformed)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TicketClaims {
        TicketClaims {
            sale: SaleId::parse("drop").unwrap(),
            ticket: Uuid::new_v4(),
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let signer = TicketSigner::new(b"k");
        let claims = claims();
        let token = signer.sign(&claims);
        assert_eq!(signer.verify(&token, 1_000).unwrap(), claims);
    }

    #[test]
    fn altered_truncated_expired_and_foreign_tokens_are_refused() {
        let signer = TicketSigner::new(b"k");
        let token = signer.sign(&claims());
        let other_sale = token.replacen("drop.", "drop2.", 1);
        assert_eq!(signer.verify(&other_sale, 0), Err(TokenError::BadSignature));
        let truncated = &token[..token.len() - 3];
        assert!(signer.verify(truncated, 0).is_err());
        assert_eq!(signer.verify(&token, 3_000), Err(TokenError::Expired));
        let foreign = TicketSigner::new(b"other").sign(&claims());
        assert_eq!(signer.verify(&foreign, 0), Err(TokenError::BadSignature));
        assert_eq!(signer.verify("garbage", 0), Err(TokenError::Malformed));
    }
}
