//! The proof-of-work bot check: a sale that asks for one refuses arrivals without a
//! solved, fresh, own challenge, and the join page solves it in a real browser.

use chrono::Utc;
use flashgate_admission::pow;
use flashgate_admission::ticket_token::TicketSigner;
use flashgate_common::domain::SaleId;
use serde_json::{Value, json};

use crate::support::{ADMIN, Browser, Stack, assert_problem};

async fn challenge(stack: &Stack, sale: &str) -> Value {
    stack.get_json(&format!("/v1/sales/{sale}/challenge")).await
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
    browser.wait_for("#status[data-status=prequeued]", 10).await;
    assert_eq!(browser.text("#status").await, "Pre-queue");
    assert!(browser.url().await.contains("/queue/"));
    let wait = browser
        .wait_for_text("#wait", 10, |w| w.contains("opens in"))
        .await;
    // A countdown, minutes and seconds: the sale opens minutes from now.
    let countdown = wait
        .split("opens in ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default();
    let (minutes, seconds) = countdown.split_once(':').unwrap_or_default();
    assert!(
        minutes.parse::<u32>().is_ok_and(|m| m >= 1) && seconds.len() == 2,
        "{wait}"
    );
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

/// A captcha provider's siteverify endpoint, as Turnstile and hCaptcha answer it: an
/// answer starting `good-` is accepted once, anything else refused; `down` makes it fail.
struct Verifier {
    url: String,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Verifier {
    async fn start() -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/siteverify", listener.local_addr().unwrap());
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let (flag, log) = (down.clone(), asked.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    let n = socket.read(&mut buf).await.unwrap();
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            break body.to_owned();
                        }
                    }
                };
                let (status, verdict) = if flag.load(Ordering::SeqCst) {
                    ("500 Internal Server Error", String::from("{}"))
                } else {
                    let response = body
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("response="))
                        .unwrap_or_default()
                        .to_owned();
                    let secret_ok = body.split('&').any(|kv| kv == "secret=test-captcha-secret");
                    let mut seen = log.lock().unwrap();
                    let fresh = !seen.contains(&response);
                    seen.push(response.clone());
                    let ok = secret_ok && fresh && response.starts_with("good-");
                    ("200 OK", format!("{{\"success\":{ok}}}"))
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{verdict}",
                    verdict.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        Self { url, down, asked }
    }
}

async fn captcha_ticket(stack: &Stack, customer: &str, token: Option<&str>) -> reqwest::Response {
    let mut body = json!({ "customer_id": customer, "quantity": 1 });
    if let Some(token) = token {
        body["captcha_token"] = json!(token);
    }
    stack
        .http
        .post(stack.door("/v1/sales/human/tickets"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_asking_for_a_captcha_checks_each_answer_with_the_provider_once() {
    let verifier = Verifier::start().await;
    let url = verifier.url.clone();
    let stack = Stack::start_with(move |c| {
        c.admission.captcha.provider = flashgate_common::config::CaptchaProvider::Turnstile;
        c.admission.captcha.secret = Some(secrecy::SecretString::from("test-captcha-secret"));
        c.admission.captcha.site_key = Some("0x-test-site-key".into());
        c.admission.captcha.verify_url = Some(url);
    })
    .await;
    stack
        .create_sale_with("human", json!({ "stock": 10, "captcha": true }))
        .await;
    assert_problem(
        captcha_ticket(&stack, "alice", None).await,
        403,
        "captcha_required",
        "no answer",
    )
    .await;
    assert_problem(
        captcha_ticket(&stack, "alice", Some("bot-guess")).await,
        403,
        "captcha_invalid",
        "refused by the provider",
    )
    .await;
    assert_eq!(
        captcha_ticket(&stack, "alice", Some("good-1"))
            .await
            .status(),
        202
    );
    // The same shopper retrying: let through without asking the provider (which would
    // call the answer a duplicate); another shopper with it: refused.
    let asked = verifier.asked.lock().unwrap().len();
    assert_eq!(
        captcha_ticket(&stack, "alice", Some("good-1"))
            .await
            .status(),
        200
    );
    assert_eq!(verifier.asked.lock().unwrap().len(), asked);
    assert_problem(
        captcha_ticket(&stack, "mallory", Some("good-1")).await,
        403,
        "captcha_replayed",
        "another shopper",
    )
    .await;
    // The provider down: the shopper is told to retry, nothing is issued.
    verifier
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_problem(
        captcha_ticket(&stack, "bob", Some("good-2")).await,
        503,
        "captcha_unavailable",
        "provider down",
    )
    .await;
    verifier
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        captcha_ticket(&stack, "bob", Some("good-2")).await.status(),
        202
    );
    // The join page shows the provider's widget with the site key.
    let page = stack
        .http
        .get(stack.door("/sales/human/join"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(r#"class="cf-turnstile" data-sitekey="0x-test-site-key""#),
        "{page}"
    );
    stack.stop().await;

    // A door without a provider refuses a sale that asks for a captcha.
    let plain = Stack::start().await;
    let refused = plain
        .put_sale(
            "human",
            &json!({ "sku": "sku-human", "stock": 1, "price": 100, "currency": "eur",
                     "rate_per_second": 10, "burst": 10, "captcha": true }),
        )
        .await;
    assert_problem(refused, 422, "captcha_unavailable", "no provider").await;
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_behind_one_address_gets_in_when_the_sale_asks_for_work() {
    // A strict address limit, as the default is for anonymous arrivals.
    let stack = Stack::start_with(|c| {
        c.admission.per_address = flashgate_common::config::RateConfig {
            per_second: 2,
            burst: 5,
        };
    })
    .await;
    stack
        .create_sale_with("crowd", json!({ "stock": 100, "pow_difficulty": 8 }))
        .await;
    stack.create_sale("anonymous", 100).await;
    let mut admitted = 0;
    for i in 0..40 {
        let offered = challenge(&stack, "crowd").await;
        let work = solved(offered["challenge"].as_str().unwrap(), 8);
        let answer = ticket_with(&stack, "crowd", &format!("shopper-{i}"), Some(work)).await;
        admitted += usize::from(answer.status() == 202);
    }
    assert_eq!(admitted, 40, "every shopper who paid the work got in");
    let mut limited = 0;
    for i in 0..20 {
        let answer = ticket_with(&stack, "anonymous", &format!("anon-{i}"), None).await;
        limited += usize::from(answer.status() == 429);
    }
    assert!(
        limited >= 10,
        "without work, the address limit still holds: {limited} refused"
    );
    stack.stop().await;
}
