//! Following Redis Sentinel: which node is the primary now, asked at start and then every
//! `redis.sentinel_poll_ms`; when the answer changes, every connection moves to the new
//! primary. (A client must not keep writing to a demoted primary: after a failover it
//! rejoins as a replica and refuses writes, or, partitioned, accepts writes that are lost.)

use std::sync::Weak;
use std::time::Duration;

use arc_swap::ArcSwap;
use redis::ConnectionAddr;

use super::Primary;
use crate::config::RedisConfig;

/// The primary the first Sentinel to answer names, asked synchronously with the
/// connect and response timeouts (process start).
pub(super) fn primary_now(config: &RedisConfig) -> Option<ConnectionAddr> {
    let timeout = Duration::from_millis(config.connect_timeout_ms);
    config.sentinels.iter().find_map(|url| {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut connection = client.get_connection_with_timeout(timeout).ok()?;
        connection.set_read_timeout(Some(timeout)).ok()?;
        let (host, port): (String, u16) = ask(config).query(&mut connection).ok()?;
        Some(ConnectionAddr::Tcp(host, port))
    })
}

/// Asks the Sentinels every poll interval and swaps in connections to a new primary,
/// until the `Redis` handles are gone.
pub(super) fn follow(primary: Weak<ArcSwap<Primary>>, config: RedisConfig) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no async runtime: Sentinel failovers will not be followed");
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(config.sentinel_poll_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(current) = primary.upgrade() else {
                return;
            };
            let Some(addr) = primary_named(&config).await else {
                continue;
            };
            if current.load().addr() == &addr {
                continue;
            }
            let info = current
                .load()
                .client
                .get_connection_info()
                .clone()
                .set_addr(addr);
            match Primary::open(info, &config) {
                Ok(next) => {
                    tracing::warn!(primary = %next.addr(), "Redis primary moved; following it");
                    metrics::counter!("flashgate_redis_primary_changes_total").increment(1);
                    current.store(next.into());
                }
                Err(error) => tracing::warn!(%error, "cannot open the new Redis primary"),
            }
        }
    });
}

async fn primary_named(config: &RedisConfig) -> Option<ConnectionAddr> {
    let timeout = Duration::from_millis(config.response_timeout_ms);
    for url in &config.sentinels {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            continue;
        };
        let answer = tokio::time::timeout(timeout, async {
            let mut connection = client.get_multiplexed_async_connection().await?;
            ask(config)
                .query_async::<(String, u16)>(&mut connection)
                .await
        })
        .await;
        if let Ok(Ok((host, port))) = answer {
            return Some(ConnectionAddr::Tcp(host, port));
        }
    }
    None
}

fn ask(config: &RedisConfig) -> redis::Cmd {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("get-master-addr-by-name")
        .arg(&config.sentinel_master);
    cmd
}
