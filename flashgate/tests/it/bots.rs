//! The proof-of-work bot check: a sale that asks for one refuses arrivals without a
//! solved, fresh, own challenge, and the join page solves it in a real browser.

use chrono::Utc;
use flashgate_admission::pow;
use flashgate_admission::ticket_token::TicketSigner;
use flashgate_common::domain::SaleId;
use serde_json::{Value, json};

use crate::support::{ADMIN, Browser, Stack, assert_problem};

async fn challenge(stack: &Stack, sale: &str) -> Value {
    stack
        .http
        .get(stack.door(&format!("/v1/sales/{sale}/challenge")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn ticket_with(
    stack: &Stack,
    sale: &str,
    customer: &str,
    work: Option<Value>,
) -> reqwest::Response {
    let mut body = json!({ "customer_id": customer, "quantity": 1 });
    if let Some(work) = work {
        body["proof_of_work"] = work;
    }
    stack
        .http
        .post(stack.door(&format!("/v1/sales/{sale}/tickets")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn solved(challenge: &str, bits: u32) -> Value {
    json!({ "challenge": challenge, "solution": flashgate_common::pow::solve(challenge, bits) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_asking_for_work_refuses_missing_wrong_foreign_replayed_and_expired_solutions() {
    let stack = Stack::start().await;
    stack
        .create_sale_with("guarded", json!({ "stock": 10, "pow_difficulty": 10 }))
        .await;
    stack.create_sale("open", 10).await;

    let missing = ticket_with(&stack, "guarded", "alice", None).await;
    assert_problem(missing, 403, "proof_of_work_required", "no solution").await;
    let offered = challenge(&stack, "guarded").await;
    assert_eq!(offered["difficulty"], 10);
    assert_eq!(offered["algorithm"], "sha256");
    let text = offered["challenge"].as_str().unwrap();

    // A wrong solution, and a challenge altered to ask for less.
    let mut wrong = solved(text, 10);
    let first: u64 = wrong["solution"].as_str().unwrap().parse().unwrap();
    wrong["solution"] = json!(
        (first + 1..)
            .find(|n| !flashgate_common::pow::meets(text, &n.to_string(), 10))
            .unwrap()
            .to_string()
    );
    let refused = ticket_with(&stack, "guarded", "alice", Some(wrong)).await;
    assert_problem(refused, 403, "proof_of_work_invalid", "wrong solution").await;
    let easier = text.replacen(".10.", ".1.", 1);
    let refused = ticket_with(&stack, "guarded", "alice", Some(solved(&easier, 1))).await;
    assert_problem(refused, 403, "proof_of_work_invalid", "altered challenge").await;

    // Solved: admitted; the same customer retrying with it gets the same ticket, another
    // customer reusing it is refused.
    let admitted = ticket_with(&stack, "guarded", "alice", Some(solved(text, 10))).await;
    assert_eq!(admitted.status(), 202);
    let retry = ticket_with(&stack, "guarded", "alice", Some(solved(text, 10))).await;
    assert_eq!(retry.status(), 200);
    let replay = ticket_with(&stack, "guarded", "mallory", Some(solved(text, 10))).await;
    assert_problem(replay, 403, "proof_of_work_replayed", "another customer").await;

    // Bound to its sale and its requester; refused once expired.
    let signer = TicketSigner::new(b"test-ticket-secret");
    let sale = SaleId::parse("guarded").unwrap();
    let now = Utc::now().timestamp();
    let foreign_sale = pow::sign(
        &signer,
        &SaleId::parse("open").unwrap(),
        10,
        "address:127.0.0.1",
        now + 60,
    );
    let refused = ticket_with(&stack, "guarded", "bob", Some(solved(&foreign_sale, 10))).await;
    assert_problem(refused, 403, "proof_of_work_invalid", "another sale's").await;
    let elsewhere = pow::sign(&signer, &sale, 10, "address:203.0.113.7", now + 60);
    let refused = ticket_with(&stack, "guarded", "bob", Some(solved(&elsewhere, 10))).await;
    assert_problem(refused, 403, "proof_of_work_invalid", "another requester's").await;
    let expired = pow::sign(&signer, &sale, 10, "address:127.0.0.1", now - 1);
    let refused = ticket_with(&stack, "guarded", "bob", Some(solved(&expired, 10))).await;
    assert_problem(refused, 403, "proof_of_work_expired", "expired").await;
    let own = pow::sign(&signer, &sale, 10, "address:127.0.0.1", now + 60);
    assert_eq!(
        ticket_with(&stack, "guarded", "bob", Some(solved(&own, 10)))
            .await
            .status(),
        202
    );

    // The operator raises the difficulty live: challenges solved at the old one are
    // refused, new ones ask for more. A sale without the check takes none.
    let text = challenge(&stack, "guarded").await["challenge"]
        .as_str()
        .unwrap()
        .to_owned();
    let raised = stack
        .http
        .patch(stack.door("/admin/v1/sales/guarded/admission"))
        .bearer_auth(ADMIN)
        .json(&json!({ "pow_difficulty": 12 }))
        .send()
        .await
        .unwrap();
    assert_eq!(raised.status(), 200);
    assert_eq!(raised.json::<Value>().await.unwrap()["pow_difficulty"], 12);
    let stale = ticket_with(&stack, "guarded", "carol", Some(solved(&text, 10))).await;
    assert_problem(
        stale,
        403,
        "proof_of_work_invalid",
        "below the raised difficulty",
    )
    .await;
    let fresh = challenge(&stack, "guarded").await;
    assert_eq!(fresh["difficulty"], 12);
    let work = solved(fresh["challenge"].as_str().unwrap(), 12);
    assert_eq!(
        ticket_with(&stack, "guarded", "carol", Some(work))
            .await
            .status(),
        202
    );
    assert_eq!(challenge(&stack, "open").await["difficulty"], 0);
    assert_eq!(
        ticket_with(&stack, "open", "dave", None).await.status(),
        202
    );
    let too_hard = stack
        .http
        .patch(stack.door("/admin/v1/sales/guarded/admission"))
        .bearer_auth(ADMIN)
        .json(&json!({ "pow_difficulty": 40 }))
        .send()
        .await
        .unwrap();
    assert_problem(
        too_hard,
        422,
        "invalid_admission",
        "difficulty out of range",
    )
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_page_solves_the_challenge_in_the_browser_and_waits_in_the_pre_queue() {
    let stack = Stack::start().await;
    let opens = Utc::now() + chrono::Duration::seconds(600);
    stack
        .create_sale_with(
            "browser",
            json!({ "stock": 5, "pow_difficulty": 12, "starts_at": opens.to_rfc3339() }),
        )
        .await;
    let browser = Browser::start().await;
    browser
        .goto(&stack.door("/sales/browser/join?customer=chromium-1&auto=true"))
        .await;
    let headline = browser
        .wait_for_text("#headline", 60, |h| h.contains("pre-queue"))
        .await;
    assert!(headline.contains("drawn at random"), "{headline}");
    assert_eq!(browser.text("#status").await, "prequeued");
    assert!(browser.url().await.contains("/queue/"));
    let wait = browser
        .wait_for_text("#wait", 10, |w| w.contains("opens in"))
        .await;
    assert!(wait.contains("min"), "{wait}");
    let used: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM prequeue WHERE sale_id = 'browser' AND customer_id = 'chromium-1'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(used, 1, "the browser's solved challenge got the shopper in");
    browser.quit().await;
    stack.stop().await;
}
