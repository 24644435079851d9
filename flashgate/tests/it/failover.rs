//! A broker node or the Redis primary going away for good, as in a cluster: the processes
//! move to another node (the AMQP node list) or to the promoted replica (Sentinel) by
//! themselves.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use flashgate_common::live::Redis;
use flashgate_common::testkit::{FaultProxy, ProxyMode};
use redis::AsyncCommands;

use crate::support::{Stack, poll_until, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_move_to_another_broker_node_when_theirs_goes_away() {
    // Two "nodes": two proxies in front of the one broker; the first dies for good.
    let first = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let second = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let node = |proxy: &FaultProxy| format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let (a, b) = (node(&first), node(&second));
    let stack = Stack::start_with(|c| c.amqp.urls = vec![a.into(), b.into()]).await;
    stack.create_sale("node", 10).await;
    let tickets = |range: std::ops::Range<i64>| -> Vec<_> {
        range
            .map(|seq| (seq, format!("node-{seq}"), Some("pm_card_visa")))
            .collect()
    };
    stack.publish_tickets("node", &tickets(1..4)).await;
    wait_until(30, "the first tickets are decided", || async {
        stack.decided("node").await == 3
    })
    .await;

    first.set(ProxyMode::Refuse);
    stack.publish_tickets("node", &tickets(4..7)).await;
    wait_until(
        60,
        "the tickets published after the node died are decided",
        || async { stack.decided("node").await == 6 },
    )
    .await;
    wait_until(60, "their payments go through", || async {
        stack.terms("node").await == (10, 0, 6)
    })
    .await;
    stack.assert_invariants("node", Some(6)).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_door_whose_broker_hangs_turns_unready_until_it_answers_again() {
    // A partition, not a refusal: the connection stays open and nothing comes back, so
    // only asking the broker something tells the door it cannot publish. A balancer then
    // sends shoppers to the other doors (the chaos suite cuts a door from its brokers so).
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let stack = Stack::start_with(|c| c.amqp.url = url.into()).await;
    stack.create_sale("hang", 10).await;
    let door = stack.addrs.admission;
    assert!(stack.is_ready(door).await, "the door starts ready");

    proxy.set(ProxyMode::Hang);
    wait_until(30, "the door reports its broker hung", || async {
        !stack.is_ready(door).await
    })
    .await;
    proxy.set(ProxyMode::Pass);
    wait_until(60, "the door is ready again", || stack.is_ready(door)).await;
    stack
        .token("hang", "after-the-hang", Some("pm_card_visa"))
        .await;
    wait_until(60, "the ticket taken after the hang is decided", || async {
        stack.decided("hang").await == 1
    })
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_asked_for_while_the_broker_hangs_is_answered_not_held_forever() {
    // The door opens its publishing channels on its first ticket, over a pooled connection
    // that still looks alive; the broker then answers nothing. The shopper must get a 503
    // within the broker's confirm timeout (and the door must not hold the channels' lock
    // forever, which would hang every ticket after this one too).
    let proxy = FaultProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let stack = Stack::start_with(|c| {
        c.amqp.url = url.into();
        c.amqp.confirm_timeout_ms = 2000;
    })
    .await;
    stack.create_sale("mute", 10).await;
    proxy.set(ProxyMode::Hang);
    for shopper in ["first", "second"] {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            stack.take_ticket("mute", shopper, None),
        )
        .await
        .unwrap_or_else(|_| panic!("the door held {shopper}'s ticket request for 20 s"));
        assert_eq!(
            answer.status(),
            503,
            "{shopper}: the broker does not answer"
        );
    }
    proxy.set(ProxyMode::Pass);
    let ticket: serde_json::Value = poll_until(60, "the door issues tickets again", || async {
        let answer = stack.take_ticket("mute", "third", None).await;
        (answer.status() == 202).then_some(answer.json().await.unwrap())
    })
    .await;
    stack
        .await_ticket(ticket["ticket"].as_str().unwrap(), |t| {
            t["status"] == "payment_pending"
        })
        .await;
    stack.stop().await;
}

/// A `redis-server` (or Sentinel) of the test's own, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn redis_server(dir: &Path, name: &str, lines: &[String]) -> Server {
    let conf = dir.join(format!("{name}.conf"));
    let mut text = format!(
        "bind 127.0.0.1\nsave \"\"\nappendonly no\ndir {}\n",
        dir.display()
    );
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&conf, text).unwrap();
    let mut command = Command::new("redis-server");
    command.arg(&conf);
    if name == "sentinel" {
        command.arg("--sentinel");
    }
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    Server(command.stdin(Stdio::null()).stdout(log).spawn().unwrap())
}

async fn role(port: u16) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("role:"))
        .map(|r| r.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_handle_follows_a_sentinel_failover() {
    let dir = std::env::temp_dir().join(format!("fg-sentinel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (primary_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
    let _primary = redis_server(&dir, "primary", &[format!("port {primary_port}")]);
    let _replica = redis_server(
        &dir,
        "replica",
        &[
            format!("port {replica_port}"),
            format!("replicaof 127.0.0.1 {primary_port}"),
        ],
    );
    wait_until(30, "the replica is in sync", || async {
        role(replica_port).await.as_deref() == Some("slave")
    })
    .await;
    let _sentinel = redis_server(
        &dir,
        "sentinel",
        &[
            format!("port {sentinel_port}"),
            format!("sentinel monitor fgtest 127.0.0.1 {primary_port} 1"),
            "sentinel down-after-milliseconds fgtest 1000".into(),
            "sentinel failover-timeout fgtest 5000".into(),
        ],
    );
    let sentinel_url = format!("redis://127.0.0.1:{sentinel_port}/");
    let sentinel = redis::Client::open(sentinel_url.as_str()).unwrap();
    let mut config = flashgate_common::config::Config::default().redis;
    config.url = "redis://127.0.0.1:1/0".into(); // never used: the Sentinel answers
    config.sentinels = vec![sentinel_url.clone()];
    config.sentinel_master = "fgtest".into();
    let redis = poll_until(30, "the Sentinel names the primary", || async {
        let mut c = sentinel.get_multiplexed_async_connection().await.ok()?;
        let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg("replicas")
            .arg("fgtest")
            .query_async(&mut c)
            .await
            .ok()?;
        (!replicas.is_empty()).then(|| Redis::connect(&config).unwrap())
    })
    .await;
    let _: () = redis.conn().set("fg:before", "1").await.unwrap();

    // Refused (NOGOODSLAVE) until the Sentinel has seen the replica answer.
    let c = sentinel.get_multiplexed_async_connection().await.unwrap();
    wait_until(30, "the Sentinel starts a failover", || async {
        let started: redis::RedisResult<()> = redis::cmd("SENTINEL")
            .arg("failover")
            .arg("fgtest")
            .query_async(&mut c.clone())
            .await;
        started.is_ok()
    })
    .await;
    wait_until(30, "the replica is promoted", || async {
        role(replica_port).await.as_deref() == Some("master")
    })
    .await;
    wait_until(
        30,
        "writes through the handle land on the new primary",
        || async {
            let written: redis::RedisResult<()> = redis.conn().set("fg:after", "1").await;
            let on_new = redis::Client::open(format!("redis://127.0.0.1:{replica_port}/"))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap()
                .get::<_, Option<String>>("fg:after")
                .await
                .unwrap();
            written.is_ok() && on_new.is_some()
        },
    )
    .await;
    let client = redis.client();
    assert_eq!(
        client.get_connection_info().addr().to_string(),
        format!("127.0.0.1:{replica_port}"),
        "dedicated connections (pub/sub) go to the new primary too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
