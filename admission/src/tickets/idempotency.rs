//! `Idempotency-Key` on ticket requests: the first successful answer is stored with a
//! fingerprint of the request and replayed verbatim for the same key; the same key with a
//! different request is refused. Refusals are not stored, so a client may retry them.

use axum::http::{HeaderMap, StatusCode};
use flashgate_common::domain::SaleId;
use flashgate_common::http::Problem;
use flashgate_common::live::Redis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest accepted key, as Stripe's.
const MAX_KEY_LEN: usize = 255;

/// An answer to replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Stored {
    /// Digest of the request that produced it.
    pub fingerprint: String,
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: serde_json::Value,
}

/// The request's key, if it sent one; 400 if it is not printable ASCII of 1..=255 chars.
pub(super) fn key_from(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// A digest of what makes two requests "the same".
pub(super) fn fingerprint(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0u8]);
    }
    hex::encode(hash.finalize())
}

/// The stored answer for `key`, refusing a different request under the same key.
pub(super) async fn lookup(
    redis: &Redis,
    sale: &SaleId,
    key: &str,
    fingerprint: &str,
) -> crate::Result<Option<Stored>> {
    let raw: Option<String> = redis::cmd("GET")
        .arg(redis.keys().idempotency(sale, key))
        .query_async(&mut redis.conn())
        .await?;
    let Some(stored) = raw.and_then(|r| serde_json::from_str::<Stored>(&r).ok()) else {
        return Ok(None);
    };
    if stored.fingerprint != fingerprint {
        return Err(Problem::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was first used with a different request",
        )
        .into());
    }
    Ok(Some(stored))
}

/// Stores the first answer for `key` (a concurrent first answer wins).
pub(super) async fn store(
    redis: &Redis,
    sale: &SaleId,
    key: &str,
    stored: &Stored,
) -> crate::Result<()> {
    let value = serde_json::to_string(stored).map_err(flashgate_common::Error::from)?;
    let _: Option<String> = redis::cmd("SET")
        .arg(redis.keys().idempotency(sale, key))
        .arg(value)
        .arg("NX")
        .arg("EX")
        .arg(redis.ticket_ttl_secs().min(24 * 3600))
        .query_async(&mut redis.conn())
        .await?;
    Ok(())
}

impl Stored {
    /// The stored status, as an HTTP status.
    pub(super) fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK)
    }
}
