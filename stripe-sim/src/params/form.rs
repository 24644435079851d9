//! Stripe's form encoding, as async-stripe writes it with serde_qs: flat `key=value`
//! pairs whose keys nest with brackets (`metadata[order_id]=42`,
//! `payment_method_types[0]=card`, `automatic_payment_methods[enabled]=true`).

use crate::{Error, Result};

/// A parsed form body or query string.
#[derive(Debug, Default)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Decodes `application/x-www-form-urlencoded` bytes; malformed escapes stay literal.
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        let pairs = form_urlencoded::parse(bytes).map(|(k, v)| (k.into_owned(), v.into_owned()));
        Self {
            pairs: pairs.collect(),
        }
    }

    /// The last value sent under exactly `key` (Stripe lets the last one win).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `(inner, value)` pairs sent as `name[inner]=value`.
    pub(crate) fn children<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.pairs.iter().filter_map(move |(key, value)| {
            let inner = key
                .strip_prefix(name)?
                .strip_prefix('[')?
                .strip_suffix(']')?;
            Some((inner, value.as_str()))
        })
    }

    /// The values of an array sent as `name[0]=a&name[1]=b` (or `name[]=a`), in index order.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        let mut items: Vec<(usize, usize, &str)> = self
            .children(name)
            .enumerate()
            .map(|(seq, (inner, value))| (inner.parse().unwrap_or(usize::MAX), seq, value))
            .collect();
        items.sort_unstable();
        items
            .into_iter()
            .map(|(_, _, value)| value.to_owned())
            .collect()
    }

    /// Fails with Stripe's `parameter_unknown` on a top-level name not in `known`.
    pub(crate) fn reject_unknown(&self, known: &[&str]) -> Result<()> {
        let unknown = self
            .pairs
            .iter()
            .map(|(key, _)| root(key))
            .find(|name| !known.contains(name));
        match unknown {
            None => Ok(()),
            Some(name) => Err(Error::invalid(
                name,
                Some("parameter_unknown"),
                format!("Received unknown parameter: {name}"),
            )),
        }
    }

    /// A non-empty string parameter (Stripe reads an empty value as "unset").
    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.get(key).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// An integer parameter.
    pub(crate) fn integer(&self, key: &str) -> Result<Option<i64>> {
        let Some(raw) = self.get(key).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        raw.parse().map(Some).map_err(|_| {
            Error::invalid(
                key,
                Some("parameter_invalid_integer"),
                format!("Invalid integer: {raw}"),
            )
        })
    }

    /// A boolean parameter (`true` / `false`).
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(raw) => Err(Error::invalid(key, None, format!("Invalid boolean: {raw}"))),
        }
    }

    /// One of `allowed`, or Stripe's "Invalid … must be one of" error.
    pub(crate) fn choice(&self, key: &str, allowed: &[&str]) -> Result<Option<String>> {
        let Some(value) = self.string(key) else {
            return Ok(None);
        };
        if allowed.contains(&value.as_str()) {
            return Ok(Some(value));
        }
        let message = format!("Invalid {key}: must be one of {}", allowed.join(", "));
        Err(Error::invalid(key, None, message))
    }
}

/// The top-level parameter name of a (possibly nested) key.
fn root(key: &str) -> &str {
    key.split_once('[').map_or(key, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_keys_and_indexed_arrays_decode_as_serde_qs_writes_them() {
        let form = Form::parse(
            b"amount=1000&metadata[order_id]=a+b%26c&payment_method_types[1]=link&payment_method_types[0]=card",
        );
        assert_eq!(form.integer("amount").unwrap(), Some(1000));
        assert_eq!(
            form.children("metadata").collect::<Vec<_>>(),
            vec![("order_id", "a b&c")]
        );
        assert_eq!(form.list("payment_method_types"), vec!["card", "link"]);
    }

    #[test]
    fn unknown_top_level_names_are_rejected_with_their_name() {
        let form = Form::parse(b"amount=1&shipping[name]=x");
        let err = form.reject_unknown(&["amount"]).unwrap_err();
        assert_eq!(err.body()["error"]["param"], "shipping");
    }

    #[test]
    fn bad_integers_and_booleans_are_invalid_requests() {
        let form = Form::parse(b"amount=12.5&confirm=yes");
        assert!(form.integer("amount").is_err());
        assert!(form.boolean("confirm").is_err());
    }
}
