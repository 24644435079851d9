//! The optional per-sale proof-of-work check: `GET /v1/sales/{sale}/challenge` hands out
//! a short-lived challenge, signed by the door and bound to the requester (the signed-in
//! shopper, or else the client address); the ticket request carries it with a solution
//! ([`flashgate_common::pow`]). Checking costs one HMAC and one SHA-256, in memory, and
//! one Redis round trip so a solution serves one customer only. The operator sets the
//! difficulty live (`pow_difficulty`, leading zero bits; 0 is off).
//!
//! Format: `v1.{sale}.{expires}.{bits}.{nonce}.{bound}.{mac}`: unix seconds, the
//! difficulty, 12 random bytes and 12 bytes of SHA-256 over the requester (base64url),
//! and the MAC of the rest under the door's ticket key.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::Utc;
use flashgate_common::domain::{CustomerId, SaleId};
use flashgate_common::http::{ApiPath, Problem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Result;
use crate::limits::ClientAddress;
use crate::state::AppState;
use crate::ticket_token::TicketSigner;

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_SECS: i64 = 120;
const DOMAIN: &[u8] = b"flashgate-pow-v1|";

/// A challenge to solve.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Challenge {
    /// The challenge: send it back with the solution.
    pub challenge: String,
    /// Leading zero bits SHA-256(challenge ":" solution) must have.
    pub difficulty: u32,
    /// Hash function.
    pub algorithm: &'static str,
    /// Unix seconds after which the challenge is refused.
    pub expires_at: i64,
}

/// A solved challenge, in the ticket request.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProofOfWork {
    /// The challenge as handed out.
    #[schema(max_length = 300)]
    pub challenge: String,
    /// The solution: a decimal counter (at most 20 digits).
    #[schema(pattern = "^[0-9]{1,20}$")]
    pub solution: String,
}

/// Who a challenge is bound to: the signed-in shopper, or else the client address.
pub(crate) fn requester(signed_in: Option<&CustomerId>, address: Option<ClientAddress>) -> String {
    match (signed_in, address) {
        (Some(customer), _) => format!("customer:{customer}"),
        (None, Some(address)) => format!("address:{}", address.0),
        (None, None) => String::new(),
    }
}

fn bound(requester: &str) -> String {
    B64.encode(&Sha256::digest(requester.as_bytes())[..12])
}

/// A challenge for `sale` at `bits`, bound to `requester` (`address:{ip}` or
/// `customer:{id}`), refused after `expires_at`, with a fresh nonce.
pub fn sign(
    signer: &TicketSigner,
    sale: &SaleId,
    bits: u32,
    requester: &str,
    expires_at: i64,
) -> String {
    let nonce: [u8; 12] = rand::random();
    let body = format!(
        "v1.{sale}.{expires_at}.{bits}.{}.{}",
        B64.encode(nonce),
        bound(requester)
    );
    format!("{body}.{}", B64.encode(signer.mac(DOMAIN, &body)))
}

fn issue(state: &AppState, sale: &SaleId, bits: u32, requester: &str) -> Challenge {
    let expires_at = Utc::now().timestamp() + CHALLENGE_TTL_SECS;
    Challenge {
        challenge: sign(&state.signer, sale, bits, requester, expires_at),
        difficulty: bits,
        algorithm: "sha256",
        expires_at,
    }
}

/// Why a proof of work was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// None sent while the sale asks for one.
    Missing,
    /// Not a challenge of this door, this sale and this requester, or not solved.
    Invalid(&'static str),
    /// Past its expiry.
    Expired,
    /// Solved at a difficulty below the sale's current one.
    TooEasy,
    /// Already used by another customer.
    Replayed,
}

impl Refused {
    /// The answer: `403` problem+json.
    pub fn problem(self) -> Problem {
        let (code, detail) = match self {
            Self::Missing => (
                "proof_of_work_required",
                "this sale asks for a solved challenge: GET /v1/sales/{sale}/challenge",
            ),
            Self::Invalid(why) => ("proof_of_work_invalid", why),
            Self::Expired => (
                "proof_of_work_expired",
                "the challenge expired; fetch a new one",
            ),
            Self::TooEasy => (
                "proof_of_work_invalid",
                "the sale's difficulty was raised; fetch a new challenge",
            ),
            Self::Replayed => (
                "proof_of_work_replayed",
                "this solved challenge was already used by another shopper",
            ),
        };
        Problem::new(StatusCode::FORBIDDEN, code, detail)
    }
}

/// Checks a proof of work in memory: signature, sale, requester, expiry, difficulty and
/// the work itself. The one-use check is [`use_once`].
pub fn check(
    signer: &TicketSigner,
    sale: &SaleId,
    required_bits: u32,
    requester: &str,
    proof: Option<&ProofOfWork>,
    now: i64,
) -> std::result::Result<(), Refused> {
    let proof = proof.ok_or(Refused::Missing)?;
    let (body, mac) = proof
        .challenge
        .rsplit_once('.')
        .ok_or(Refused::Invalid("not a challenge"))?;
    let mac = B64
        .decode(mac)
        .map_err(|_| Refused::Invalid("not a challenge"))?;
    if !signer.verify_mac(DOMAIN, body, &mac) {
        return Err(Refused::Invalid("not a challenge from this door"));
    }
    let parts: Vec<&str> = body.split('.').collect();
    let [_, for_sale, expires, bits, _, bound_to] = parts.as_slice() else {
        return Err(Refused::Invalid("not a challenge"));
    };
    if *for_sale != sale.as_str() {
        return Err(Refused::Invalid("the challenge is for another sale"));
    }
    if *bound_to != bound(requester) {
        return Err(Refused::Invalid("the challenge was handed to someone else"));
    }
    let expires: i64 = expires
        .parse()
        .map_err(|_| Refused::Invalid("not a challenge"))?;
    if expires < now {
        return Err(Refused::Expired);
    }
    let bits: u32 = bits
        .parse()
        .map_err(|_| Refused::Invalid("not a challenge"))?;
    if bits < required_bits {
        return Err(Refused::TooEasy);
    }
    if !flashgate_common::pow::meets(&proof.challenge, &proof.solution, bits) {
        return Err(Refused::Invalid(
            "the solution does not solve the challenge",
        ));
    }
    Ok(())
}

/// Records the use of a solved challenge by `customer` (by its nonce): `Err(Replayed)`
/// if another customer used it first.
pub(crate) async fn use_once(
    state: &AppState,
    sale: &SaleId,
    proof: &ProofOfWork,
    customer: &CustomerId,
) -> Result<std::result::Result<(), Refused>> {
    let nonce = proof.challenge.split('.').nth(4).unwrap_or_default();
    let ttl = CHALLENGE_TTL_SECS as u64 + 5;
    let mine = state.redis.claim_answer(sale, nonce, customer, ttl).await?;
    Ok(if mine { Ok(()) } else { Err(Refused::Replayed) })
}

/// A challenge for the sale's proof-of-work check, bound to the requester.
#[utoipa::path(get, path = "/v1/sales/{sale_id}/challenge", tag = "shoppers",
    params(("sale_id" = String, Path, description = "The sale"),
           ("Authorization" = Option<String>, Header, description = "`Bearer <token>` from the shop's login: the challenge is bound to the shopper (else to the client address)")),
    responses(
        (status = 200, description = "A challenge (difficulty 0: the sale asks for none)", body = Challenge),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this address", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "A dependency is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn challenge(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    headers: HeaderMap,
    address: Option<axum::Extension<ClientAddress>>,
) -> Result<Response> {
    let sale = crate::sales_api::known_sale(&state, sale_id).await?;
    let sale_id = sale.id();
    let bits = sale.settings().pow_difficulty();
    let signed_in = state.identity.signed_in(&headers);
    let requester = requester(signed_in.as_ref(), address.map(|a| a.0));
    let challenge = issue(&state, &sale_id, bits, &requester);
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(challenge)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_hides_the_requester() {
        assert_eq!(bound("address:10.0.0.1"), bound("address:10.0.0.1"));
        assert_ne!(bound("address:10.0.0.1"), bound("address:10.0.0.2"));
        assert!(!bound("address:10.0.0.1").contains("10.0.0.1"));
        assert_eq!(bound("x").len(), 16);
    }
}
