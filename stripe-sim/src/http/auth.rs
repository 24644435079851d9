//! API keys: Stripe's Bearer authentication, test mode only. Secret keys (`sk_test_…`)
//! may call everything; publishable keys (`pk_test_…`, as Stripe.js sends them, also
//! accepted as a `key` parameter) only what a shopper's browser may.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::Error;
use crate::error::Details;

/// The key a request was authenticated with.
#[derive(Clone, Debug)]
pub(crate) struct ApiKey {
    /// The key itself; idempotency keys are scoped to it.
    pub(crate) raw: String,
    /// A `pk_test_` key: only browser-side calls with the client secret.
    pub(crate) publishable: bool,
}

/// Authenticates from the `Authorization` header, else from a `key` parameter.
pub(crate) fn authenticate(headers: &HeaderMap, key_param: Option<&str>) -> Result<ApiKey, Error> {
    let raw = match headers.get(AUTHORIZATION) {
        Some(value) => bearer(value.to_str().unwrap_or_default())?,
        None => key_param.ok_or_else(no_key)?.to_owned(),
    };
    let kind = |prefix: &str| {
        raw.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty())
    };
    match (kind("sk_test_"), kind("pk_test_")) {
        (true, _) => Ok(ApiKey {
            raw,
            publishable: false,
        }),
        (_, true) => Ok(ApiKey {
            raw,
            publishable: true,
        }),
        _ => Err(unauthorized(
            format!("Invalid API Key provided: {}", redact(&raw)),
            None,
        )),
    }
}

/// Stripe's refusal of a publishable key on a secret-key endpoint.
pub(crate) fn secret_key_required() -> Error {
    let message = "This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.";
    unauthorized(message.to_owned(), Some("secret_key_required"))
}

fn bearer(value: &str) -> Result<String, Error> {
    let (scheme, key) = value.trim().split_once(' ').ok_or_else(no_key)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        let message =
            "Invalid authorization header. Use Bearer auth: 'Authorization: Bearer sk_test_…'.";
        return Err(unauthorized(message.to_owned(), None));
    }
    Ok(key.trim().to_owned())
}

fn no_key() -> Error {
    let message = "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.";
    unauthorized(message.to_owned(), None)
}

fn unauthorized(message: String, code: Option<&'static str>) -> Error {
    let mut details = Details::new(message);
    details.code = code;
    Error::Authentication(Box::new(details))
}

/// Shows a key the way Stripe's messages do: the start and the last four characters.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn test_mode_secret_and_publishable_keys_are_told_apart() {
        assert!(
            !authenticate(&headers("Bearer sk_test_abc"), None)
                .unwrap()
                .publishable
        );
        assert!(
            authenticate(&headers("Bearer pk_test_abc"), None)
                .unwrap()
                .publishable
        );
        assert!(
            authenticate(&HeaderMap::new(), Some("pk_test_abc"))
                .unwrap()
                .publishable
        );
    }

    #[test]
    fn live_missing_and_malformed_keys_are_refused() {
        assert!(authenticate(&headers("Bearer sk_live_abc"), None).is_err());
        assert!(authenticate(&headers("Bearer sk_test_"), None).is_err());
        assert!(authenticate(&headers("Basic xyz"), None).is_err());
        assert!(authenticate(&HeaderMap::new(), None).is_err());
    }

    #[test]
    fn messages_show_only_the_ends_of_a_key() {
        assert_eq!(redact("sk_live_1234567890"), "sk_live_******7890");
    }
}
