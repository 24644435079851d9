//! The operator commands, run as the real binary against the test's services.

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::support::{Stack, poll_until};

async fn flashgate(stack: &Stack, args: &[&str]) -> (bool, String) {
    let c = &stack.config;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(args)
        .env("FLASHGATE_DATABASE__URL", c.database.url.expose_secret())
        .env("FLASHGATE_REDIS__PREFIX", &c.redis.prefix)
        .env("FLASHGATE_AMQP__PREFIX", &c.amqp.prefix)
        .env("FLASHGATE_TELEMETRY__LOG_FILTER", "error")
        .env("USER", "cli-tester")
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_run_a_sale_from_the_command_line_and_every_door_follows() {
    let stack = Stack::start().await;
    stack.create_sale("cli-seed", 1).await;
    let (ok, out) = flashgate(
        &stack,
        &[
            "admin",
            "sale",
            "cli-drop",
            "--sku",
            "sku-cli-seed",
            "--stock",
            "3",
            "--price",
            "2500",
            "--rate",
            "5",
            "--burst",
            "5",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.starts_with("created"), "{out}");
    let (ok, out) = flashgate(
        &stack,
        &["admin", "rate", "cli-drop", "--rate", "50", "--burst", "20"],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["burst"], 20);
    assert!(flashgate(&stack, &["admin", "pause", "cli-drop"]).await.0);
    let refused = poll_until(5, "the door sees the pause", || async {
        let response = stack.take_ticket("cli-drop", "visitor", None).await;
        (response.status() == 409).then_some(())
    });
    refused.await;
    assert!(flashgate(&stack, &["admin", "resume", "cli-drop"]).await.0);
    poll_until(5, "the door sees the resume", || async {
        (stack
            .take_ticket("cli-drop", "visitor", None)
            .await
            .status()
            == 202)
            .then_some(())
    })
    .await;
    let (ok, out) = flashgate(&stack, &["admin", "stats", "cli-drop"]).await;
    assert!(ok, "{out}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["stock"]["stock"], 3);
    assert_eq!(stats["admission"]["rate_per_second"], 50);
    let actors: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT actor FROM admission_audit WHERE sale_id = 'cli-drop'")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(actors, ["cli:cli-tester"]);
    let (ok, _) = flashgate(&stack, &["admin", "rate", "no-such-sale", "--rate", "5"]).await;
    assert!(!ok, "an unknown sale is an error");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_after_redis_lost_its_data_reports_no_broken_invariant() {
    // Found by the chaos suite: the door's published counter starts again from nothing
    // when Redis loses its data, and `verify` took it as the number of tickets issued.
    let stack = Stack::start().await;
    stack.create_sale("forgot", 5).await;
    for customer in ["f1", "f2", "f3"] {
        let token = stack.token("forgot", customer, Some("pm_card_visa")).await;
        assert_eq!(stack.await_final(&token).await["status"], "paid");
    }
    crate::lost::lose_redis_data(&stack).await;
    let (ok, out) = flashgate(&stack, &["verify", "forgot"]).await;
    assert!(ok, "verify reported a broken invariant: {out}");
    let verdict: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verdict["sold"], 3);
    stack.stop().await;
}
