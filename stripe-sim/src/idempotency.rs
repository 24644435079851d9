//! Stripe's idempotency rules, as documented: a key is scoped to the API key that sent
//! it; the first request's result is saved once the endpoint started executing and is
//! replayed for the same parameters until the TTL passes; other parameters get a 400,
//! and a key whose first request is still executing gets a 409.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// An idempotency key within the API key that sent it.
pub(crate) type Scope = (String, String);

/// A saved answer, replayed verbatim.
#[derive(Clone, Debug)]
pub(crate) struct Saved {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    /// `Request-Id` of the request that produced it (sent back as `Original-Request`).
    pub(crate) request_id: String,
}

/// What to do with a request carrying an idempotency key.
#[derive(Debug)]
pub(crate) enum Begin {
    /// First use: execute; the token claims the key until completed or abandoned.
    Proceed(u64),
    /// Seen with the same parameters: answer with the saved result.
    Replay(Saved),
    /// Seen with other parameters.
    Mismatch,
    /// The first request with this key is still executing.
    InUse,
}

#[derive(Debug)]
enum EntryState {
    InFlight(u64),
    Done(Saved),
}

#[derive(Debug)]
struct Entry {
    fingerprint: Vec<u8>,
    since: Instant,
    state: EntryState,
}

/// Saved results and keys in flight, expiring after the TTL.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyStore {
    entries: HashMap<Scope, Entry>,
    /// Completion order, so expiry costs O(1) per saved result.
    expiry: VecDeque<(Instant, Scope)>,
    next_token: u64,
}

/// Identifies "the same parameters", as Stripe compares them: method, path and the
/// decoded parameters regardless of their order in the body (clients such as async-stripe
/// encode maps in an order that differs from one process to the next).
pub(crate) fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    params.sort();
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    for (key, value) in params {
        hasher.update(b"\n");
        hasher.update(key.as_bytes());
        hasher.update(b"=");
        hasher.update(value.as_bytes());
    }
    hasher.finalize().to_vec()
}

impl IdempotencyStore {
    /// Claims, replays or refuses `scope` for a request with `fingerprint`.
    pub(crate) fn begin(&mut self, scope: Scope, fingerprint: Vec<u8>, ttl: Duration) -> Begin {
        self.purge(ttl);
        if let Some(entry) = self.entries.get(&scope) {
            return match &entry.state {
                _ if entry.fingerprint != fingerprint => Begin::Mismatch,
                EntryState::InFlight(_) => Begin::InUse,
                EntryState::Done(saved) => Begin::Replay(saved.clone()),
            };
        }
        self.next_token += 1;
        let state = EntryState::InFlight(self.next_token);
        self.entries.insert(
            scope,
            Entry {
                fingerprint,
                since: Instant::now(),
                state,
            },
        );
        Begin::Proceed(self.next_token)
    }

    /// Saves the result of the claimed request.
    pub(crate) fn complete(&mut self, scope: &Scope, token: u64, saved: Saved) {
        let now = Instant::now();
        if let Some(entry) = self.claimed(scope, token) {
            entry.since = now;
            entry.state = EntryState::Done(saved);
            self.expiry.push_back((now, scope.clone()));
        }
    }

    /// Releases the claim without saving, so a retry executes afresh.
    pub(crate) fn abandon(&mut self, scope: &Scope, token: u64) {
        if self.claimed(scope, token).is_some() {
            self.entries.remove(scope);
        }
    }

    fn claimed(&mut self, scope: &Scope, token: u64) -> Option<&mut Entry> {
        self.entries
            .get_mut(scope)
            .filter(|entry| matches!(entry.state, EntryState::InFlight(t) if t == token))
    }

    fn purge(&mut self, ttl: Duration) {
        let now = Instant::now();
        while let Some((since, _)) = self.expiry.front() {
            if now.duration_since(*since) < ttl {
                break;
            }
            let Some((since, scope)) = self.expiry.pop_front() else {
                break;
            };
            let expired = self.entries.get(&scope).is_some_and(|entry| {
                entry.since == since && matches!(entry.state, EntryState::Done(_))
            });
            if expired {
                self.entries.remove(&scope);
            }
        }
    }
}

#[cfg(test)]
mod fingerprint_tests {
    use super::fingerprint;

    #[test]
    fn the_same_parameters_in_another_order_are_the_same_request() {
        let a = fingerprint("POST", "/v1/x", b"metadata[a]=1&metadata[b]=2&amount=5");
        let b = fingerprint("POST", "/v1/x", b"amount=5&metadata[b]=2&metadata[a]=1");
        let c = fingerprint("POST", "/v1/x", b"amount=6&metadata[b]=2&metadata[a]=1");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn scope() -> Scope {
        ("sk_test_a".into(), "key-1".into())
    }

    fn saved() -> Saved {
        Saved {
            status: 200,
            body: Bytes::from_static(b"{}"),
            request_id: "req_1".into(),
        }
    }

    #[test]
    fn a_completed_key_replays_and_refuses_other_parameters() {
        let mut store = IdempotencyStore::default();
        let Begin::Proceed(token) = store.begin(scope(), vec![1], DAY) else {
            panic!()
        };
        assert!(matches!(store.begin(scope(), vec![1], DAY), Begin::InUse));
        store.complete(&scope(), token, saved());
        assert!(matches!(
            store.begin(scope(), vec![1], DAY),
            Begin::Replay(_)
        ));
        assert!(matches!(
            store.begin(scope(), vec![2], DAY),
            Begin::Mismatch
        ));
    }

    #[test]
    fn an_abandoned_key_executes_again() {
        let mut store = IdempotencyStore::default();
        let Begin::Proceed(token) = store.begin(scope(), vec![1], DAY) else {
            panic!()
        };
        store.abandon(&scope(), token);
        assert!(matches!(
            store.begin(scope(), vec![1], DAY),
            Begin::Proceed(_)
        ));
    }

    #[test]
    fn results_expire_after_the_ttl() {
        let mut store = IdempotencyStore::default();
        let Begin::Proceed(token) = store.begin(scope(), vec![1], Duration::ZERO) else {
            panic!()
        };
        store.complete(&scope(), token, saved());
        assert!(matches!(
            store.begin(scope(), vec![1], Duration::ZERO),
            Begin::Proceed(_)
        ));
    }

    #[test]
    fn keys_are_scoped_to_the_api_key() {
        let mut store = IdempotencyStore::default();
        let Begin::Proceed(_) = store.begin(scope(), vec![1], DAY) else {
            panic!()
        };
        let other = ("sk_test_b".to_owned(), "key-1".to_owned());
        assert!(matches!(
            store.begin(other, vec![2], DAY),
            Begin::Proceed(_)
        ));
    }
}
