//! `GET /v1/payment_intents/search`: newest first, paged with an opaque cursor.

use serde_json::{Value, json};

use super::State;
use crate::Result;
use crate::params::{SearchParams, page_token};
use crate::search::Query;

impl State {
    /// Runs a search and renders Stripe's `search_result` page.
    pub(crate) fn search_payment_intents(&self, params: &SearchParams) -> Result<Value> {
        let query = Query::parse(&params.query)?;
        let hits: Vec<Value> = self
            .payment_intents
            .iter()
            .rev()
            .filter(|payment_intent| query.matches(payment_intent))
            .map(|payment_intent| payment_intent.to_json())
            .collect();
        let page: Vec<Value> = hits
            .iter()
            .skip(params.offset)
            .take(params.limit)
            .cloned()
            .collect();
        let end = params.offset + page.len();
        let has_more = hits.len() > end;
        Ok(json!({
            "object": "search_result",
            "data": page,
            "has_more": has_more,
            "next_page": has_more.then(|| page_token(end)),
            "url": "/v1/payment_intents/search",
        }))
    }
}
