//! The captcha alternative to proof of work: a sale with `captcha` on asks each arrival
//! for the answer token of the door's provider's widget (Cloudflare Turnstile, hCaptcha),
//! verified server-side at the provider's siteverify endpoint (configurable, so a
//! self-hosted or test verifier can stand in). A verified answer serves one customer:
//! the same customer retrying with it is let through from Redis without asking the
//! provider again (which would call it a duplicate), another customer is refused.

use std::time::Duration;

use axum::http::StatusCode;
use flashgate_common::config::{CaptchaConfig, CaptchaProvider};
use flashgate_common::domain::{CustomerId, SaleId};
use flashgate_common::http::Problem;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::Result;
use crate::state::AppState;

/// How long a verified answer stays bound to its customer (providers accept an answer
/// for 300 s).
const ANSWER_TTL_SECS: u64 = 600;

/// Longest answer token taken (Turnstile documents at most 2,048 characters).
pub const MAX_TOKEN_BYTES: usize = 2048;

/// The provider, as configured.
pub struct Captcha {
    http: reqwest::Client,
    verify_url: String,
    secret: SecretString,
    /// The public site key, for the join page's widget.
    pub site_key: String,
    /// Which provider (the widget to load).
    pub provider: CaptchaProvider,
}

#[derive(Deserialize)]
struct Verdict {
    success: bool,
}

impl Captcha {
    /// The configured provider, if any.
    pub fn new(config: &CaptchaConfig) -> flashgate_common::Result<Option<Self>> {
        let (Some(url), Some(secret), Some(site_key)) = (
            config
                .verify_url
                .as_deref()
                .or(config.provider.default_verify_url()),
            config.secret.clone(),
            config.site_key.clone(),
        ) else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| flashgate_common::Error::Config(format!("captcha client: {e}")))?;
        Ok(Some(Self {
            http,
            verify_url: url.to_owned(),
            secret,
            site_key,
            provider: config.provider,
        }))
    }

    /// Asks the provider whether `token` is a good answer from `address`.
    async fn verify(
        &self,
        token: &str,
        address: Option<&str>,
    ) -> std::result::Result<bool, Problem> {
        let mut form = vec![("secret", self.secret.expose_secret()), ("response", token)];
        if let Some(address) = address {
            form.push(("remoteip", address));
        }
        let unavailable = |e: reqwest::Error| {
            tracing::warn!(error = %e, "captcha provider unavailable");
            Problem::unavailable(
                "captcha_unavailable",
                "the captcha could not be checked; retry",
                2,
            )
        };
        let answer = self
            .http
            .post(&self.verify_url)
            .form(&form)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unavailable)?;
        Ok(answer.json::<Verdict>().await.map_err(unavailable)?.success)
    }
}

fn refused(code: &'static str, detail: &'static str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, code, detail)
}

/// Checks a sale's captcha for `customer`: `403 captcha_required`, `captcha_invalid`
/// or `captcha_replayed`, or `503 captcha_unavailable` when the provider cannot say.
pub(crate) async fn check(
    state: &AppState,
    sale: &SaleId,
    customer: &CustomerId,
    token: Option<&str>,
    address: Option<&str>,
) -> Result<()> {
    let Some(captcha) = &state.captcha else {
        return Err(Problem::unavailable(
            "captcha_unavailable",
            "this door has no captcha provider configured",
            30,
        )
        .into());
    };
    let token = token
        .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_BYTES)
        .ok_or_else(|| refused("captcha_required", "this sale asks for a solved captcha"))?;
    let answer = format!("c{}", hex::encode(&Sha256::digest(token)[..12]));
    let replayed = || {
        refused(
            "captcha_replayed",
            "this captcha answer was already used by another shopper",
        )
    };
    // A retry by the shopper who used it already: the provider would call it a duplicate.
    match state.redis.answer_user(sale, &answer).await? {
        Some(by) if by == customer.as_str() => return Ok(()),
        Some(_) => return Err(replayed().into()),
        None => {}
    }
    if !captcha.verify(token, address).await? {
        return Err(refused("captcha_invalid", "the captcha answer was not accepted").into());
    }
    if !state
        .redis
        .claim_answer(sale, &answer, customer, ANSWER_TTL_SECS)
        .await?
    {
        return Err(replayed().into());
    }
    Ok(())
}
