//! One ticket, one trail: the log lines every role writes about a ticket carry its id,
//! from the door through the reservation and the payment to the webhook
//! (`flashgate_common::trail`), and the door's request id travels inside the ticket.

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Stack, poll_until};

/// The trail lines of every test in this binary, as the JSON log format writes them.
fn captured() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("flashgate::trail=info")
            .with_writer(move || Capture(sink.clone()))
            .try_init()
            .expect("no other test installs a subscriber");
        log
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What `grep <ticket id>` would find, in the order it was written.
fn lines_about(log: &Mutex<Vec<u8>>, ticket: Uuid) -> Vec<Value> {
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let id = ticket.to_string();
    text.lines()
        .filter(|line| line.contains(&id))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_id_finds_every_line_about_it_from_the_door_to_the_webhook() {
    let log = captured();
    let stack = Stack::start().await;
    stack.create_sale("trail", 2).await;
    let request_id = format!("trail-{}", Uuid::now_v7());
    let response = stack
        .http
        .post(stack.door("/v1/sales/trail/tickets"))
        .header("x-request-id", &request_id)
        .json(&json!({ "customer_id": "tracy", "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let token = response.json::<Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let (pending, _) = stack
        .await_ticket(&token, |t| t["status"] == "payment_pending")
        .await;
    stack.pay_in_browser(&pending["payment"]).await;
    assert_eq!(stack.await_final(&token).await["status"], "paid");
    let ticket: Uuid = sqlx::query_scalar(
        "SELECT id FROM tickets WHERE sale_id = 'trail' AND customer_id = 'tracy'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    let order: Uuid = sqlx::query_scalar("SELECT id FROM orders WHERE ticket_id = $1")
        .bind(ticket)
        .fetch_one(&stack.pool)
        .await
        .unwrap();

    let lines = poll_until(10, "the webhook's line about the ticket", || async {
        let lines = lines_about(&log, ticket);
        lines
            .iter()
            .any(|l| l["step"] == "stripe event" && l["status"] == "paid")
            .then_some(lines)
    })
    .await;
    let step = |l: &Value| {
        l["step"]
            .as_str()
            .or(l["message"].as_str())
            .unwrap()
            .to_owned()
    };
    let steps: Vec<String> = lines.iter().map(step).collect();
    assert_eq!(
        steps[..3],
        ["ticket issued", "ticket decided", "payment started"],
        "{lines:#?}"
    );
    assert_eq!(steps.last().unwrap(), "stripe event", "{lines:#?}");
    for line in &lines[..2] {
        assert_eq!(line["request_id"], request_id.as_str(), "{line}");
        assert_eq!(line["sale"], "trail", "{line}");
    }
    assert_eq!(lines[1]["status"], "reserved");
    for line in &lines[1..] {
        assert_eq!(line["order"], order.to_string(), "{line}");
    }
    let intent = pending["payment"]["payment_intent"].as_str().unwrap();
    assert_eq!(lines[2]["payment_intent"], intent);
    assert_eq!(lines.last().unwrap()["payment_intent"], intent);
    stack.stop().await;
}
