//! Who is asking for a ticket. With `admission.identity.mode = "none"` the body's
//! `customer_id` is believed (development, trusted clients). With `"jwt"` the shop's login
//! vouches for the shopper: `Authorization: Bearer <token>`, signed with the HS256 secret
//! or a key of the login's JWKS (a file, or a URL fetched again every
//! `jwks_refresh_secs`), with `exp`, `iss` and `aud` checked; the customer is its `sub`.
//! A body's `customer_id` that names someone else is refused, so one login holds one
//! place however many names a script invents.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, StatusCode, header};
use flashgate_common::config::{IdentityConfig, IdentityMode};
use flashgate_common::domain::CustomerId;
use flashgate_common::http::Problem;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// How the door tells who a shopper is.
pub enum Identity {
    /// The body's `customer_id`.
    Declared,
    /// The `sub` of a token the shop's login signed.
    Jwt(Box<Verifier>),
}

/// Checks the login's tokens.
pub struct Verifier {
    hs256: Option<DecodingKey>,
    /// The login's public keys, replaced whole when the JWKS URL is fetched again.
    keys: ArcSwap<Vec<PublicKey>>,
    issuer: String,
    audience: String,
    leeway: u64,
}

/// One key of the login's JWKS.
struct PublicKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The claims the door reads (the signature, `exp`, `iss` and `aud` are checked by
/// `jsonwebtoken`).
#[derive(Deserialize)]
struct Claims {
    sub: String,
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "invalid_token", detail)
}

impl Identity {
    /// From the configuration; reads the JWKS file and fetches the JWKS URL once.
    pub async fn new(config: &IdentityConfig) -> flashgate_common::Result<Self> {
        if config.mode == IdentityMode::None {
            return Ok(Self::Declared);
        }
        let invalid = |what: String| flashgate_common::Error::Config(what);
        let hs256 = config
            .hs256_secret
            .as_ref()
            .map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes()))
            .transpose()
            .map_err(|e| invalid(format!("admission.identity.hs256_secret: {e}")))?;
        let mut keys = Vec::new();
        if let Some(path) = &config.jwks_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                invalid(format!(
                    "admission.identity.jwks_file {}: {e}",
                    path.display()
                ))
            })?;
            keys = parse_jwks(&text).map_err(|e| {
                invalid(format!(
                    "admission.identity.jwks_file {}: {e}",
                    path.display()
                ))
            })?;
        }
        if let Some(url) = &config.jwks_url {
            // The door can take no shopper without the keys: a login that does not answer
            // at start is an error to fix, not a state to run in.
            keys.extend(
                fetch_jwks(url)
                    .await
                    .map_err(|e| invalid(format!("admission.identity.jwks_url {url}: {e}")))?,
            );
        }
        Ok(Self::Jwt(Box::new(Verifier {
            hs256,
            keys: ArcSwap::from_pointee(keys),
            issuer: config.issuer.clone().unwrap_or_default(),
            audience: config.audience.clone().unwrap_or_default(),
            leeway: config.leeway_secs,
        })))
    }

    /// Whether the customer is the signed-in shopper (not the body's word).
    pub fn takes_login(&self) -> bool {
        matches!(self, Self::Jwt(_))
    }

    /// The signed-in shopper, if the door takes identity from the shop's login and the
    /// request carries a valid token.
    pub fn signed_in(&self, headers: &HeaderMap) -> Option<CustomerId> {
        match self {
            Self::Declared => None,
            Self::Jwt(_) => self.customer(headers, None).ok(),
        }
    }

    /// The customer asking: the token's `sub`, or the body's `customer_id` when the door
    /// believes the body. A body naming someone other than the token is refused.
    pub fn customer(
        &self,
        headers: &HeaderMap,
        declared: Option<CustomerId>,
    ) -> Result<CustomerId, Problem> {
        match self {
            Self::Declared => declared
                .ok_or_else(|| Problem::unprocessable("invalid_body", "customer_id is required")),
            Self::Jwt(verifier) => {
                let token = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .ok_or_else(|| {
                        unauthorized(
                            "sign in: `Authorization: Bearer <token from the shop's login>`",
                        )
                    })?;
                let customer = verifier.verify(token)?;
                match declared {
                    Some(other) if other != customer => Err(Problem::new(
                        StatusCode::FORBIDDEN,
                        "customer_mismatch",
                        "customer_id names someone other than the signed-in shopper",
                    )),
                    _ => Ok(customer),
                }
            }
        }
    }

    /// Fetches the JWKS URL again every `jwks_refresh_secs` until `shutdown`; a failed
    /// fetch keeps the keys it had.
    pub async fn refresh(self: Arc<Self>, config: IdentityConfig, shutdown: CancellationToken) {
        let (Self::Jwt(verifier), Some(url)) = (&*self, config.jwks_url.as_deref()) else {
            return;
        };
        let every = Duration::from_secs(config.jwks_refresh_secs);
        while shutdown
            .run_until_cancelled(tokio::time::sleep(every))
            .await
            .is_some()
        {
            match fetch_jwks(url).await {
                Ok(mut keys) => {
                    if let Some(path) = &config.jwks_file {
                        // The file's keys stay beside the URL's.
                        if let Ok(text) = std::fs::read_to_string(path)
                            && let Ok(file_keys) = parse_jwks(&text)
                        {
                            keys.extend(file_keys);
                        }
                    }
                    verifier.keys.store(Arc::new(keys));
                }
                Err(e) => {
                    tracing::warn!(%url, error = %e, "JWKS not fetched; keeping the keys held")
                }
            }
        }
    }
}

impl Verifier {
    fn verify(&self, token: &str) -> Result<CustomerId, Problem> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthorized("the token is not a JWT"))?;
        let keys = self.keys.load();
        let key = if header.alg == Algorithm::HS256 {
            self.hs256.as_ref()
        } else {
            keys.iter()
                .filter(|k| k.algorithm == header.alg)
                .find(|k| header.kid.is_none() || k.kid == header.kid)
                .map(|k| &k.key)
        }
        .ok_or_else(|| unauthorized("no key of the shop's login signs tokens like this one"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| unauthorized(&format!("the token was refused: {e}")))?
            .claims;
        CustomerId::parse(claims.sub)
            .map_err(|e| unauthorized(&format!("the token's sub is not a customer id: {e}")))
    }
}

/// The usable keys of a JWKS document (keys without a supported `alg` are skipped).
fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys: Vec<PublicKey> = set
        .keys
        .iter()
        .filter_map(|jwk| {
            let algorithm = Algorithm::try_from(jwk.common.key_algorithm?).ok()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(PublicKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            })
        })
        .collect();
    if keys.is_empty() {
        return Err("no key with a supported `alg`".into());
    }
    Ok(keys)
}

async fn fetch_jwks(url: &str) -> Result<Vec<PublicKey>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    parse_jwks(&response.text().await.map_err(|e| e.to_string())?)
}
