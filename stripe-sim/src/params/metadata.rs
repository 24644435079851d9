//! Metadata as Stripe accepts it: up to 50 keys of at most 40 characters, values of at
//! most 500, no square brackets in keys; an empty value means "unset".

use std::collections::BTreeMap;

use super::Form;
use crate::{Error, Result};

const MAX_KEYS: usize = 50;
const MAX_KEY_CHARS: usize = 40;
const MAX_VALUE_CHARS: usize = 500;

/// Validated metadata, sorted by key.
pub(crate) type Metadata = BTreeMap<String, String>;

/// Reads `metadata[key]=value` pairs from `form`, enforcing Stripe's limits.
pub(crate) fn parse(form: &Form) -> Result<Metadata> {
    let mut metadata = Metadata::new();
    for (key, value) in form.children("metadata") {
        check_pair(key, value)?;
        if value.is_empty() {
            metadata.remove(key);
        } else {
            metadata.insert(key.to_owned(), value.to_owned());
        }
    }
    if metadata.len() > MAX_KEYS {
        let message = format!(
            "You can specify up to {MAX_KEYS} keys, with key names up to {MAX_KEY_CHARS} characters long and values up to {MAX_VALUE_CHARS} characters long."
        );
        return Err(Error::invalid("metadata", None, message));
    }
    Ok(metadata)
}

fn check_pair(key: &str, value: &str) -> Result<()> {
    let param = format!("metadata[{key}]");
    if key.is_empty() || key.contains(['[', ']']) {
        let message = "Metadata keys must be non-empty and may not contain square brackets.";
        return Err(Error::invalid(&param, None, message));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        let message = format!(
            "Metadata keys can have up to {MAX_KEY_CHARS} characters, but you passed in a key that is {} characters.",
            key.chars().count()
        );
        return Err(Error::invalid(&param, None, message));
    }
    let value_chars = value.chars().count();
    if value_chars > MAX_VALUE_CHARS {
        let message = format!(
            "Metadata values can have up to {MAX_VALUE_CHARS} characters, but you passed in a value that is {value_chars} characters."
        );
        return Err(Error::invalid(&param, None, message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_limits_are_enforced_with_the_offending_param() {
        let long_key = format!("metadata[{}]=v", "k".repeat(41));
        let err = parse(&Form::parse(long_key.as_bytes())).unwrap_err();
        assert!(
            err.body()["error"]["param"]
                .as_str()
                .unwrap()
                .starts_with("metadata[")
        );

        let long_value = format!("metadata[k]={}", "v".repeat(501));
        assert!(parse(&Form::parse(long_value.as_bytes())).is_err());

        let many: Vec<String> = (0..51).map(|i| format!("metadata[k{i}]=v")).collect();
        assert!(parse(&Form::parse(many.join("&").as_bytes())).is_err());
    }

    #[test]
    fn empty_values_unset_keys() {
        let metadata = parse(&Form::parse(b"metadata[a]=1&metadata[b]=")).unwrap();
        assert_eq!(metadata.len(), 1);
    }
}
