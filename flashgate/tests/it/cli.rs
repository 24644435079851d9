//! The operator commands, run as the real binary against the test's services.

use secrecy::ExposeSecret;
use serde_json::Value;

use crate::support::{ADMIN, Stack, poll_until, wait_until};

async fn flashgate(stack: &Stack, args: &[&str]) -> (bool, String) {
    let c = &stack.config;
    let (ok, stdout, _) = run(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
            .args(args)
            .env("FLASHGATE_DATABASE__URL", c.database.url.expose_secret())
            .env("FLASHGATE_REDIS__PREFIX", &c.redis.prefix)
            .env("FLASHGATE_AMQP__PREFIX", &c.amqp.prefix),
    )
    .await;
    (ok, stdout)
}

/// `flashgate admin …` as an operator's laptop runs it: the door's address and the
/// admin token, and a database it cannot reach.
async fn admin(stack: &Stack, token: &str, args: &[&str]) -> (bool, String) {
    let (ok, stdout, stderr) = run(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
            .arg("admin")
            .args(args)
            .env("FLASHGATE_ADMIN_URL", stack.door(""))
            .env("FLASHGATE_ADMIN_TOKEN", token)
            .env(
                "FLASHGATE_DATABASE__URL",
                "postgres://nobody@127.0.0.1:1/nothing",
            )
            .env("FLASHGATE_REDIS__URL", "redis://127.0.0.1:1"),
    )
    .await;
    (ok, stdout + &stderr)
}

/// Runs the command: whether it succeeded, its stdout and its stderr.
async fn run(command: &mut tokio::process::Command) -> (bool, String, String) {
    let output = command
        .env("FLASHGATE_TELEMETRY__LOG_FILTER", "error")
        .env("USER", "cli-tester")
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_run_a_sale_from_the_command_line_and_every_door_follows() {
    let stack = Stack::start().await;
    stack.create_sale("cli-seed", 1).await;
    let (ok, out) = admin(
        &stack,
        ADMIN,
        &[
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
    assert!(out.starts_with("SALE "), "a table: {out}");
    assert!(
        out.lines().nth(1).unwrap().starts_with("cli-drop "),
        "{out}"
    );
    let (ok, out) = admin(
        &stack,
        ADMIN,
        &[
            "--json", "rate", "cli-drop", "--rate", "50", "--burst", "20",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["burst"], 20);
    assert!(admin(&stack, ADMIN, &["pause", "cli-drop"]).await.0);
    let refused = poll_until(5, "the door sees the pause", || async {
        let response = stack.take_ticket("cli-drop", "visitor", None).await;
        (response.status() == 409).then_some(())
    });
    refused.await;
    assert!(admin(&stack, ADMIN, &["resume", "cli-drop"]).await.0);
    poll_until(5, "the door sees the resume", || async {
        (stack
            .take_ticket("cli-drop", "visitor", None)
            .await
            .status()
            == 202)
            .then_some(())
    })
    .await;
    let (ok, out) = admin(&stack, ADMIN, &["waitlist", "cli-drop", "off"]).await;
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("waitlist "))
        .expect(&out);
    assert!(line.ends_with(" off"), "{out}");

    let (ok, out) = admin(&stack, ADMIN, &["--json", "stats", "cli-drop"]).await;
    assert!(ok, "{out}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["stock"]["stock"], 3);
    assert_eq!(stats["admission"]["rate_per_second"], 50);
    assert_eq!(stats["admission"]["waitlist"], false);
    let (ok, out) = admin(
        &stack,
        ADMIN,
        &["stats", "cli-drop", "--watch", "0.2", "--count", "2"],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(out.matches("Ctrl-C to stop").count(), 2, "{out}");
    assert_eq!(out.matches("3 units: ").count(), 2, "{out}");

    let (ok, out) = admin(&stack, ADMIN, &["sales", "list"]).await;
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("cli-drop "))
        .expect(&out);
    assert!(row.contains("50/20") && row.contains("2500 EUR"), "{row}");
    let (ok, out) = admin(&stack, ADMIN, &["audit", "cli-drop"]).await;
    assert!(ok, "{out}");
    assert_eq!(out.lines().count(), 6, "a header and five changes: {out}");
    assert!(out.contains("waitlist on → off"), "{out}");
    assert!(
        out.contains("burst 5 → 20, rate_per_second 5 → 50"),
        "{out}"
    );
    let actors: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT actor FROM admission_audit WHERE sale_id = 'cli-drop'")
            .fetch_all(&stack.pool)
            .await
            .unwrap();
    assert_eq!(actors, ["api:cli:cli-tester"]);

    let (ok, out) = admin(
        &stack,
        ADMIN,
        &[
            "--json",
            "controller",
            "cli-drop",
            "--min",
            "10",
            "--max",
            "90",
            "--step",
            "5",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let steered: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(steered["controller"]["max_rate"], 90, "{out}");
    assert_eq!(
        steered["controller"]["decrease_percent"], 70,
        "defaults: {out}"
    );
    let (ok, out) = admin(&stack, ADMIN, &["controller", "cli-drop", "--min", "10"]).await;
    assert!(
        !ok && out.contains("--max"),
        "bounds are all required: {out}"
    );
    let (ok, out) = admin(
        &stack,
        ADMIN,
        &["--json", "controller", "cli-drop", "--off"],
    )
    .await;
    assert!(ok, "{out}");
    assert!(serde_json::from_str::<Value>(&out).unwrap()["controller"].is_null());

    let (ok, out) = admin(&stack, ADMIN, &["rate", "no-such-sale", "--rate", "5"]).await;
    assert!(!ok, "an unknown sale is an error");
    assert!(out.contains("404 sale_not_found"), "{out}");
    let (ok, out) = admin(&stack, "a-guess", &["sales", "list"]).await;
    assert!(!ok, "a wrong token is an error");
    assert!(out.contains("refused the token (401)"), "{out}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, out, err) = run(
            tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
                .args(["completions", shell]),
        )
        .await;
        assert!(err.is_empty(), "{err}");
        assert!(ok, "{out}");
        assert!(
            out.contains("waitlist") && out.contains("sales"),
            "{shell}: {out}"
        );
    }
}

/// Every role runs without transparent huge pages (see `main.rs`): the kernel says so of
/// the running process, a Stripe emulator here (the role that needs no service).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_runs_without_transparent_huge_pages() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut role = tokio::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .arg("stripe-sim")
        .env("FLASHGATE_STRIPE_SIM__LISTEN", addr.to_string())
        .env("FLASHGATE_TELEMETRY__LOG_FILTER", "error")
        .env_remove("MIMALLOC_ALLOW_THP")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until(30, "the emulator listens", || async {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", role.id().unwrap())).unwrap();
    let thp = status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(str::trim);
    assert_eq!(thp, Some("0"), "{status}");
    role.kill().await.unwrap();
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
