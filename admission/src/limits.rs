//! Keyed limiters in front of the sale's own: per client address (the `X-Forwarded-For`
//! entry is believed only when the peer is a configured proxy) and per customer. Both
//! are pruned periodically so memory stays bounded whatever the arrivals.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use flashgate_common::config::{AdmissionConfig, IdentityMode, RateConfig};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

/// The client's address as the door judges it (the peer, or what trusted proxies say),
/// put in the request's extensions by the address limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// How often idle limiter entries are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

fn keyed<K: Clone + std::hash::Hash + Eq>(rate: RateConfig) -> Option<DefaultKeyedRateLimiter<K>> {
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
    Some(RateLimiter::dashmap(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

fn wait<K: Clone + std::hash::Hash + Eq>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Result<(), Duration> {
    match limiter {
        Some(limiter) => limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        None => Ok(()),
    }
}

/// The keyed limiters and the proxy list.
pub struct Limits {
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// For requests whose shoppers prove something (a sale asking for proof of work).
    per_address_proven: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_customer: Option<DefaultKeyedRateLimiter<String>>,
    trusted_proxies: Vec<IpAddr>,
}

impl Limits {
    /// Limiters as configured; a rate of 0 turns one off. With shoppers identified by
    /// the shop's login, the address limit is identity's (a crowd behind one address is
    /// many customers, each limited on its own), and so it is for the sales that ask
    /// each arrival for proof of work (each paid for its request).
    pub fn new(config: &AdmissionConfig) -> Self {
        let per_address = match config.identity.mode {
            IdentityMode::Jwt => config.identity.per_address,
            IdentityMode::None => config.per_address,
        };
        Self {
            per_address: keyed(per_address),
            per_address_proven: keyed(config.identity.per_address),
            per_customer: keyed(config.per_customer),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case
    /// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for entry in forwarded.iter().rev() {
            match entry.parse::<IpAddr>() {
                Ok(ip) if self.trusted_proxies.contains(&ip) => continue,
                Ok(ip) => return ip,
                Err(_) => break,
            }
        }
        peer
    }

    /// Takes one request for `address`, or says how long to wait; `proven`: for a sale
    /// that asks for proof of work.
    pub fn check_address(&self, address: IpAddr, proven: bool) -> Result<(), Duration> {
        if proven {
            return wait(&self.per_address_proven, &address);
        }
        wait(&self.per_address, &address)
    }

    /// Takes one request for a customer of a sale, or says how long to wait.
    pub fn check_customer(&self, sale: &str, customer: &str) -> Result<(), Duration> {
        wait(&self.per_customer, &format!("{sale}\u{1f}{customer}"))
    }

    /// Drops idle entries until `shutdown`.
    pub async fn prune(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            for l in [&self.per_address, &self.per_address_proven]
                .into_iter()
                .flatten()
            {
                l.retain_recent();
                l.shrink_to_fit();
            }
            if let Some(l) = &self.per_customer {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }
}

/// `Retry-After` seconds for a limiter wait: rounded up, at least one.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(trusted: &[&str]) -> Limits {
        let config = AdmissionConfig {
            trusted_proxies: trusted.iter().map(|s| s.parse().unwrap()).collect(),
            ..AdmissionConfig::default()
        };
        Limits::new(&config)
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let limits = limits(&["10.0.0.1"]);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(limits.client_address(peer, &xff("198.51.100.1")), peer);
    }

    #[test]
    fn the_rightmost_untrusted_forwarded_entry_is_the_client() {
        let limits = limits(&["10.0.0.1", "10.0.0.2"]);
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let client = limits.client_address(peer, &xff("6.6.6.6, 198.51.100.9, 10.0.0.2"));
        assert_eq!(client, "198.51.100.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
