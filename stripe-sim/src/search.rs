//! A subset of Stripe's search query language for PaymentIntents: clauses
//! `field:value` joined by `AND` or `OR` (not mixed), optionally negated with `-`.
//! Fields: `metadata['key']` (single or double quotes), `status`, `currency`, `amount`.

use crate::model::PaymentIntent;
use crate::{Error, Result};

/// A parsed search query.
#[derive(Debug, PartialEq)]
pub(crate) struct Query {
    clauses: Vec<Clause>,
    any: bool,
}

#[derive(Debug, PartialEq)]
struct Clause {
    field: Field,
    value: String,
    negated: bool,
}

#[derive(Debug, PartialEq)]
enum Field {
    Metadata(String),
    Status,
    Currency,
    Amount,
}

impl Query {
    /// Parses `query`, or answers Stripe's 400 naming the `query` parameter.
    pub(crate) fn parse(query: &str) -> Result<Self> {
        let mut rest = query.trim();
        let (mut clauses, mut joiner) = (Vec::new(), None);
        loop {
            let (clause, after) = clause(rest).ok_or_else(|| invalid(query))?;
            clauses.push(clause);
            rest = after.trim_start();
            if rest.is_empty() {
                break;
            }
            let (word, after) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| invalid(query))?;
            if !matches!(word, "AND" | "OR") || joiner.is_some_and(|j| j != word) {
                return Err(invalid(query));
            }
            joiner = Some(word);
            rest = after.trim_start();
        }
        Ok(Self {
            clauses,
            any: joiner == Some("OR"),
        })
    }

    /// Whether `payment_intent` satisfies the query.
    pub(crate) fn matches(&self, payment_intent: &PaymentIntent) -> bool {
        let hit = |clause: &Clause| clause.matches(payment_intent) != clause.negated;
        if self.any {
            self.clauses.iter().any(hit)
        } else {
            self.clauses.iter().all(hit)
        }
    }
}

impl Clause {
    fn matches(&self, pi: &PaymentIntent) -> bool {
        match &self.field {
            Field::Metadata(key) => pi.metadata.get(key).is_some_and(|v| *v == self.value),
            Field::Status => pi.status.as_str() == self.value,
            Field::Currency => pi.currency.eq_ignore_ascii_case(&self.value),
            Field::Amount => pi.amount.to_string() == self.value,
        }
    }
}

fn invalid(query: &str) -> Error {
    let message = format!(
        "Invalid search query: {query}. stripe-sim supports field:value clauses on metadata['key'], status, currency and amount, joined by AND or OR."
    );
    Error::invalid("query", None, message)
}

fn clause(input: &str) -> Option<(Clause, &str)> {
    let (negated, input) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let (field, rest) = field(input)?;
    let (value, rest) = value(rest.strip_prefix(':')?)?;
    Some((
        Clause {
            field,
            value,
            negated,
        },
        rest,
    ))
}

fn field(input: &str) -> Option<(Field, &str)> {
    if let Some(rest) = input.strip_prefix("metadata[") {
        let (key, rest) = quoted(rest)?;
        return Some((Field::Metadata(key), rest.strip_prefix(']')?));
    }
    let end = input
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(input.len());
    let field = match &input[..end] {
        "status" => Field::Status,
        "currency" => Field::Currency,
        "amount" => Field::Amount,
        _ => return None,
    };
    Some((field, &input[end..]))
}

fn value(input: &str) -> Option<(String, &str)> {
    if input.starts_with(['\'', '"']) {
        return quoted(input);
    }
    let end = input.find(char::is_whitespace).unwrap_or(input.len());
    (end > 0).then(|| (input[..end].to_owned(), &input[end..]))
}

/// A `'…'` or `"…"` string with backslash escapes, and what follows it.
fn quoted(input: &str) -> Option<(String, &str)> {
    let quote = input.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let mut text = String::new();
    let mut chars = input.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            c if c == quote => return Some((text, &input[at + c.len_utf8()..])),
            c => text.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_clauses_accept_both_quote_styles() {
        let single = Query::parse("metadata['order_id']:'42'").unwrap();
        let double = Query::parse(r#"metadata["order_id"]:"42""#).unwrap();
        assert_eq!(single, double);
    }

    #[test]
    fn clauses_join_with_and_or_but_not_both() {
        assert!(
            Query::parse("status:'succeeded' AND currency:'usd'")
                .unwrap()
                .clauses
                .len()
                == 2
        );
        assert!(
            Query::parse("status:'succeeded' OR amount:100")
                .unwrap()
                .any
        );
        assert!(Query::parse("status:'a' AND status:'b' OR status:'c'").is_err());
    }

    #[test]
    fn malformed_queries_are_invalid_requests() {
        for query in [
            "",
            "metadata['x':'y'",
            "nonsense",
            "status:'open",
            "status:'a' NOT status:'b'",
        ] {
            assert!(Query::parse(query).is_err(), "{query}");
        }
    }
}
