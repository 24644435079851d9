//! Parameters of the list and search endpoints: limits and cursors.

use super::Form;
use crate::{Error, Result};

/// Stripe's default page size.
const DEFAULT_LIMIT: usize = 10;
/// Stripe's largest page size.
const MAX_LIMIT: i64 = 100;

/// `GET /v1/events`.
#[derive(Debug)]
pub(crate) struct ListEventsParams {
    pub(crate) limit: usize,
    pub(crate) starting_after: Option<String>,
    pub(crate) ending_before: Option<String>,
    /// Wanted types (`type=…` or `types[]=…`); `*` wildcards a suffix.
    pub(crate) types: Vec<String>,
}

impl ListEventsParams {
    /// Parses the query string of an events listing.
    pub(crate) fn parse(form: &Form) -> Result<Self> {
        let known = [
            "limit",
            "starting_after",
            "ending_before",
            "type",
            "types",
            "expand",
        ];
        form.reject_unknown(&known)?;
        let mut types = form.list("types");
        types.extend(form.string("type"));
        Ok(Self {
            limit: limit(form)?,
            starting_after: form.string("starting_after"),
            ending_before: form.string("ending_before"),
            types,
        })
    }

    /// Whether an event of type `event_type` passes the type filter.
    pub(crate) fn wants(&self, event_type: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|want| type_matches(want, event_type))
    }
}

fn type_matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    }
}

/// `GET /v1/payment_intents/search`.
#[derive(Debug)]
pub(crate) struct SearchParams {
    pub(crate) query: String,
    pub(crate) limit: usize,
    /// Offset into the results, carried in the opaque `page` cursor.
    pub(crate) offset: usize,
}

impl SearchParams {
    /// Parses the query string of a search.
    pub(crate) fn parse(form: &Form) -> Result<Self> {
        form.reject_unknown(&["query", "limit", "page", "expand"])?;
        let query = form
            .string("query")
            .ok_or_else(|| Error::missing_param("query"))?;
        let offset = match form.string("page") {
            None => 0,
            Some(page) => page_offset(&page)?,
        };
        Ok(Self {
            query,
            limit: limit(form)?,
            offset,
        })
    }
}

/// The `next_page` cursor for results starting at `offset`.
pub(crate) fn page_token(offset: usize) -> String {
    format!("page_{offset}")
}

fn page_offset(page: &str) -> Result<usize> {
    page.strip_prefix("page_")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::invalid("page", None, format!("Invalid page: {page}")))
}

fn limit(form: &Form) -> Result<usize> {
    match form.integer("limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(usize::try_from(n).unwrap_or(DEFAULT_LIMIT)),
        Some(_) => {
            let message = format!("This value must be between 1 and {MAX_LIMIT}.");
            Err(Error::invalid(
                "limit",
                Some("parameter_invalid_integer"),
                message,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_filters_accept_exact_names_and_wildcards() {
        let params = ListEventsParams::parse(&Form::parse(b"type=payment_intent.*")).unwrap();
        assert!(params.wants("payment_intent.succeeded"));
        assert!(!params.wants("refund.created"));
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert!(ListEventsParams::parse(&Form::parse(b"limit=101")).is_err());
        assert!(ListEventsParams::parse(&Form::parse(b"limit=0")).is_err());
    }
}
