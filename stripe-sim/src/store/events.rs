//! Events: Stripe's list and retrieve, resending, and the delivery record.

use serde_json::{Value, json};

use super::State;
use crate::model::{DeliveryAttempt, Event};
use crate::params::ListEventsParams;
use crate::{Error, Result};

impl State {
    /// `GET /v1/events`: newest first, with Stripe's cursors and type filter.
    pub(crate) fn list_events(&self, params: &ListEventsParams) -> Result<Value> {
        let (page, has_more) = match &params.ending_before {
            Some(cursor) => {
                self.events_newer_than(self.event_position(cursor, "ending_before")?, params)
            }
            None => {
                let end = match &params.starting_after {
                    Some(cursor) => self.event_position(cursor, "starting_after")?,
                    None => self.events.len(),
                };
                self.events_older_than(end, params)
            }
        };
        let data: Vec<Value> = page
            .iter()
            .map(|e| e.to_json(&self.config.api_version))
            .collect();
        Ok(json!({ "object": "list", "data": data, "has_more": has_more, "url": "/v1/events" }))
    }

    /// The page of wanted events just before position `end`, newest first.
    fn events_older_than(&self, end: usize, params: &ListEventsParams) -> (Vec<&Event>, bool) {
        let older = self.events.get(..end).unwrap_or_default().iter().rev();
        let mut wanted = older.filter(|event| params.wants(event.event_type.as_str()));
        let page: Vec<&Event> = wanted.by_ref().take(params.limit).collect();
        (page, wanted.next().is_some())
    }

    /// The page of wanted events just after position `start`, newest first.
    fn events_newer_than(&self, start: usize, params: &ListEventsParams) -> (Vec<&Event>, bool) {
        let newer = self.events.get(start + 1..).unwrap_or_default().iter();
        let mut page: Vec<&Event> = newer
            .filter(|event| params.wants(event.event_type.as_str()))
            .collect();
        let has_more = page.len() > params.limit;
        page.truncate(params.limit);
        page.reverse();
        (page, has_more)
    }

    /// `GET /v1/events/{id}`.
    pub(crate) fn retrieve_event(&self, id: &str) -> Result<Value> {
        self.event(id)
            .map(|event| event.to_json(&self.config.api_version))
            .ok_or_else(|| Error::no_such("event", id, "id"))
    }

    /// Every event, oldest first, as Stripe renders them.
    pub(crate) fn events_json(&self) -> Vec<Value> {
        self.events
            .iter()
            .map(|e| e.to_json(&self.config.api_version))
            .collect()
    }

    /// The delivery attempts recorded for event `id`, oldest first.
    pub(crate) fn delivery_attempts(&self, id: &str) -> Vec<Value> {
        let attempts = self
            .event(id)
            .map(|e| e.attempts.as_slice())
            .unwrap_or_default();
        attempts
            .iter()
            .filter_map(|a| serde_json::to_value(a).ok())
            .collect()
    }

    /// Queues one more delivery of event `id` to every current endpoint.
    pub(crate) fn resend_event(&mut self, id: &str) -> bool {
        let urls: Vec<String> = self
            .config
            .webhook_endpoints
            .iter()
            .map(|e| e.url.clone())
            .collect();
        let Some(event) = self
            .event_index
            .get(id)
            .and_then(|&i| self.events.get_mut(i))
        else {
            return false;
        };
        for url in urls {
            if !event.undelivered.contains(&url) {
                event.undelivered.push(url);
            }
        }
        let body = event.body.clone();
        self.queue_deliveries(id, &body);
        true
    }

    /// Records one delivery attempt; `gave_up` marks the last one allowed.
    pub(crate) fn record_attempt(
        &mut self,
        event_id: &str,
        attempt: DeliveryAttempt,
        gave_up: bool,
    ) {
        self.counters.deliveries_attempted += 1;
        if attempt.succeeded {
            self.counters.deliveries_succeeded += 1;
        } else if gave_up {
            self.counters.deliveries_abandoned += 1;
        }
        let Some(event) = self
            .event_index
            .get(event_id)
            .and_then(|&i| self.events.get_mut(i))
        else {
            return;
        };
        if attempt.succeeded {
            event.undelivered.retain(|url| *url != attempt.url);
        }
        event.attempts.push(attempt);
    }

    /// Whether every endpoint has acknowledged event `id`; `None` if it is unknown.
    pub(crate) fn is_delivered(&self, id: &str) -> Option<bool> {
        self.event(id).map(|event| event.undelivered.is_empty())
    }

    /// Deliveries still owed: endpoints that have not answered 2xx, summed over events.
    pub(crate) fn pending_deliveries(&self) -> usize {
        self.events
            .iter()
            .map(|event| event.undelivered.len())
            .sum()
    }

    fn event(&self, id: &str) -> Option<&Event> {
        self.event_index
            .get(id)
            .and_then(|&index| self.events.get(index))
    }

    fn event_position(&self, id: &str, param: &str) -> Result<usize> {
        self.event_index.get(id).copied().ok_or_else(|| {
            Error::invalid(
                param,
                Some("resource_missing"),
                format!("No such event: '{id}'"),
            )
        })
    }
}
