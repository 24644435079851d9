//! Passes: a shopper holding a unit gets a short-lived token signed with Ed25519, which
//! the shop's own checkout verifies offline with the public keys the door publishes at
//! `/.well-known/jwks.json` (no secret shared with the shop, no call back to the door).
//!
//! A pass says: this customer holds this order's unit in this sale, until `exp`. It is
//! handed out only while the ticket is `reserved` or `payment_pending`, read from
//! PostgreSQL (the ledger, not a cache), so a pass never outlives a hold by more than its
//! own short lifetime.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use flashgate_common::config::PassConfig;
use flashgate_common::http::{ApiPath, Problem};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Result;
use crate::state::AppState;
use crate::tickets::verify_token;

/// The door's pass key and the public keys it publishes.
pub struct PassSigner {
    key: EncodingKey,
    kid: String,
    jwks: Value,
    ttl_secs: u64,
    issuer: String,
    audience: Option<String>,
}

/// The claims of a pass.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PassClaims {
    /// The door (`admission.pass.issuer`).
    iss: String,
    /// The shop's checkout (`admission.pass.audience`), if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
    /// The customer.
    sub: String,
    /// The sale.
    sale: String,
    /// The ticket.
    ticket: Uuid,
    /// The order holding the unit.
    order: Uuid,
    /// Units held.
    quantity: i32,
    /// Issued at (Unix seconds).
    iat: i64,
    /// Expires at (Unix seconds): the pass's lifetime, never past the hold.
    exp: i64,
    /// Unique per pass.
    jti: Uuid,
}

/// A pass and when it expires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PassBody {
    /// The pass: a JWT (EdDSA), verifiable with `/.well-known/jwks.json`.
    pass: String,
    /// Unix seconds after which the pass is refused.
    expires_at: i64,
}

/// A key that is not an Ed25519 PKCS#8 key.
fn bad_key(what: impl std::fmt::Display) -> flashgate_common::Error {
    flashgate_common::Error::Config(format!("admission.pass.signing_key: {what}"))
}

/// PKCS#8 DER from PEM armour or bare base64.
fn der(text: &str) -> flashgate_common::Result<Vec<u8>> {
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).map_err(bad_key)
}

/// The public JWK of a key, with its RFC 7638 thumbprint as `kid`.
fn public_jwk(key: &SigningKey) -> (String, Value) {
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    // RFC 7638: the required members in lexicographic order, no whitespace.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    let jwk =
        json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" });
    (kid, jwk)
}

impl PassSigner {
    /// From the configuration; `None` when passes are off (no signing key).
    pub fn new(config: &PassConfig) -> flashgate_common::Result<Option<Self>> {
        let Some(secret) = &config.signing_key else {
            return Ok(None);
        };
        let der = der(secret.expose_secret())?;
        let signing = SigningKey::from_pkcs8_der(&der).map_err(bad_key)?;
        let (kid, current) = public_jwk(&signing);
        let mut keys = vec![current];
        for retired in &config.retired_keys {
            let jwk: Value = serde_json::from_str(retired).map_err(|e| {
                flashgate_common::Error::Config(format!("admission.pass.retired_keys: {e}"))
            })?;
            keys.push(jwk);
        }
        Ok(Some(Self {
            key: EncodingKey::from_ed_der(&der),
            kid,
            jwks: json!({ "keys": keys }),
            ttl_secs: config.ttl_secs,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }))
    }

    fn sign(&self, claims: &PassClaims) -> Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| {
            tracing::error!(error = %e, "a pass could not be signed");
            Problem::unavailable("pass_unavailable", "no pass could be signed; retry", 1).into()
        })
    }
}

fn passes_off() -> Problem {
    Problem::not_found("passes_off", "this door hands out no passes")
}

/// The public keys passes are signed with (the current one first).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "shoppers",
    responses(
        (status = 200, description = "A JWK set of Ed25519 public keys", body = Object),
        (status = 404, description = "Passes are off (`passes_off`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn jwks(State(state): State<AppState>) -> Result<Json<Value>> {
    let signer = state.pass.as_ref().ok_or_else(passes_off)?;
    Ok(Json(signer.jwks.clone()))
}

/// A pass for a ticket holding a unit, for the shop's checkout to verify offline.
#[utoipa::path(get, path = "/v1/tickets/{ticket}/pass", tag = "shoppers",
    params(("ticket" = String, Path, description = "The ticket token from the 202")),
    responses(
        (status = 200, description = "A pass, valid until `expires_at`", body = PassBody),
        (status = 404, description = "Unknown, forged or expired ticket (`ticket_not_found`), or passes are off (`passes_off`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "The ticket holds no unit (`no_unit_held`): not yet reserved, or final", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The ledger is unavailable; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn pass(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<PassBody>> {
    let claims = verify_token(&state, &token)?;
    let signer = state.pass.as_ref().ok_or_else(passes_off)?;
    // The ledger's word: an order whose hold is live (the expiry sweep may lag `hold_expires_at`).
    let held = sqlx::query!(
        r#"SELECT id, customer_id, quantity, hold_expires_at FROM orders
           WHERE ticket_id = $1 AND sale_id = $2
             AND status IN ('reserved', 'payment_pending') AND hold_expires_at > now()"#,
        claims.ticket,
        claims.sale.as_str(),
    )
    .fetch_optional(&state.pool)
    .await?;
    let Some(held) = held else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "no_unit_held",
            "the ticket holds no unit: not yet reserved, or already final",
        )
        .into());
    };
    let now = Utc::now().timestamp();
    // Never past the hold: a pass for a unit the shopper no longer holds admits nobody.
    let expires_at =
        (now + i64::try_from(signer.ttl_secs).unwrap_or(300)).min(held.hold_expires_at.timestamp());
    let pass = signer.sign(&PassClaims {
        iss: signer.issuer.clone(),
        aud: signer.audience.clone(),
        sub: held.customer_id,
        sale: claims.sale.to_string(),
        ticket: claims.ticket,
        order: held.id,
        quantity: held.quantity,
        iat: now,
        exp: expires_at,
        jti: Uuid::new_v4(),
    })?;
    Ok(Json(PassBody { pass, expires_at }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 A.1's Ed25519 key as PKCS#8 (the RFC 8410 prefix, then the seed `d`).
    fn rfc8037_key() -> String {
        let seed = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .expect("the RFC's d");
        let mut der = hex::decode("302e020100300506032b657004220420").expect("prefix");
        der.extend(seed);
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der)
        )
    }

    #[test]
    fn the_published_key_is_the_signing_keys_public_half_named_by_its_rfc_7638_thumbprint() {
        let config = PassConfig {
            signing_key: Some(rfc8037_key().into()),
            ..PassConfig::default()
        };
        let signer = PassSigner::new(&config)
            .expect("a PEM key")
            .expect("passes on");
        // RFC 8037 A.2 (the public key) and A.3 (its thumbprint).
        assert_eq!(
            signer.jwks["keys"][0]["x"],
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        assert_eq!(signer.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn passes_are_off_without_a_key_and_a_key_that_is_not_ed25519_is_refused_at_start() {
        assert!(matches!(PassSigner::new(&PassConfig::default()), Ok(None)));
        for bad in ["not base64 at all!", "MC4CAQAwBQYDK2VwBCIEIGx3"] {
            let config = PassConfig {
                signing_key: Some(bad.into()),
                ..PassConfig::default()
            };
            assert!(
                matches!(
                    PassSigner::new(&config),
                    Err(flashgate_common::Error::Config(_))
                ),
                "{bad}"
            );
        }
    }
}
