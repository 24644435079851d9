//! The in-process cache: bounded, short-lived, sharded so concurrent readers rarely meet
//! on a lock. Entries expire after a TTL; when a shard is full the oldest entry goes.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

/// A bounded TTL map.
pub(crate) struct L1<V: Clone> {
    shards: Vec<Mutex<HashMap<String, (Instant, V)>>>,
    per_shard: usize,
    ttl: Duration,
    hasher: RandomState,
}

impl<V: Clone> L1<V> {
    /// At most `capacity` entries living `ttl` each.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            ttl,
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, (Instant, V)>> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// The live value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Stores `value` under `key`, evicting expired entries or the oldest one if full.
    pub(crate) fn insert(&self, key: String, value: V) {
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if shard.len() >= self.per_shard
                && let Some(oldest) = shard
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                shard.remove(&oldest);
            }
        }
        shard.insert(key, (Instant::now(), value));
    }

    /// Drops `key`.
    pub(crate) fn remove(&self, key: &str) {
        self.shard(key)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Entries held (expired ones included until evicted).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let cache = L1::new(32, Duration::from_secs(60));
        for i in 0..1000 {
            cache.insert(format!("k{i}"), i);
        }
        assert!(cache.len() <= 32 + SHARDS);
        cache.insert("x".into(), 1);
        assert_eq!(cache.get("x"), Some(1));
        let short = L1::new(8, Duration::ZERO);
        short.insert("y".into(), 2);
        assert_eq!(short.get("y"), None);
    }
}
