//! One simulated shopper: takes a ticket (waiting out 429/503 as told), polls at the
//! interval the server suggests, confirms the payment in the "browser" when asked, and
//! reports where the ticket ended.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

/// How a shopper pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Payer {
    /// Card charged by the worker (`pm_card_visa`).
    ServerCard,
    /// A card that is declined (`pm_card_chargeDeclined`).
    Declined,
    /// Confirms with the client secret, as Stripe.js would.
    Browser,
}

/// Where a shopper ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Final ticket status, or the door's answer (`sold_out_at_door`, `not_open`, `gave_up`).
    pub status: String,
    /// Time to the door's 202.
    pub to_ticket: Option<Duration>,
    /// Time to the final status.
    pub to_final: Duration,
    /// 429/503 answers waited out.
    pub throttled: u32,
    /// The ticket waited on the wait-list at some point.
    pub waitlisted: bool,
}

#[derive(Debug, Deserialize)]
struct Ticket {
    ticket: String,
    status: String,
    #[serde(default)]
    poll_after_ms: u64,
    payment: Option<Payment>,
}

#[derive(Debug, Deserialize)]
struct Payment {
    payment_intent: String,
    client_secret: String,
}

/// The endpoints a shopper talks to.
#[derive(Debug, Clone)]
pub(super) struct Shop {
    /// Front door base URL.
    pub door: String,
    /// Stripe API base URL (for the browser confirmation).
    pub stripe: String,
    /// Publishable key.
    pub publishable_key: String,
    /// The sale.
    pub sale: String,
    /// The connections all shoppers share, one request at a time each: a crowd of
    /// 100,000 takes turns on them instead of opening 100,000 connections at once.
    pub lanes: std::sync::Arc<super::lanes::Lanes>,
}

/// Runs one shopper to the end, or until `deadline`.
pub(super) async fn shop(shop: Shop, customer: String, payer: Payer, deadline: Instant) -> Outcome {
    let started = Instant::now();
    let mut throttled = 0;
    let end = |status: &str, to_ticket, throttled, waitlisted| Outcome {
        status: status.to_owned(),
        to_ticket,
        to_final: started.elapsed(),
        throttled,
        waitlisted,
    };
    let ticket = loop {
        if Instant::now() > deadline {
            return end("gave_up", None, throttled, false);
        }
        match take_ticket(&shop, &customer, payer).await {
            Ok(Door::Ticket(ticket)) => break ticket,
            Ok(Door::Wait(wait)) => {
                throttled += 1;
                tokio::time::sleep(wait).await;
            }
            Ok(Door::Refused(status)) => return end(&status, None, throttled, false),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let to_ticket = Some(started.elapsed());
    let (status, waitlisted) = follow(&shop, ticket, payer, deadline).await;
    end(&status, to_ticket, throttled, waitlisted)
}

enum Door {
    Ticket(Ticket),
    Wait(Duration),
    Refused(String),
}

async fn take_ticket(shop: &Shop, customer: &str, payer: Payer) -> reqwest::Result<Door> {
    let http = shop.lanes.take().await;
    let mut body = json!({ "customer_id": customer, "quantity": 1 });
    match payer {
        Payer::ServerCard => body["payment_method"] = json!("pm_card_visa"),
        Payer::Declined => body["payment_method"] = json!("pm_card_chargeDeclined"),
        Payer::Browser => {}
    }
    let response = http
        .post(format!("{}/v1/sales/{}/tickets", shop.door, shop.sale))
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    Ok(match status {
        StatusCode::ACCEPTED | StatusCode::OK => Door::Ticket(response.json().await?),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            // Spread the retries over the window the server asked for.
            Door::Wait(Duration::from_millis(rand::random_range(
                retry_after * 500..=retry_after * 1500,
            )))
        }
        StatusCode::GONE => Door::Refused("sold_out_at_door".into()),
        StatusCode::CONFLICT => Door::Refused("not_open".into()),
        other => Door::Refused(format!("http_{}", other.as_u16())),
    })
}

/// Follows a ticket to its final status; also says whether it was ever wait-listed.
async fn follow(
    shop: &Shop,
    mut ticket: Ticket,
    payer: Payer,
    deadline: Instant,
) -> (String, bool) {
    let mut confirmed = false;
    let mut waitlisted = false;
    loop {
        waitlisted |= ticket.status == "waitlisted";
        if is_final(&ticket.status) {
            return (ticket.status, waitlisted);
        }
        if Instant::now() > deadline {
            return (format!("stuck_{}", ticket.status), waitlisted);
        }
        if let (Payer::Browser, false, Some(payment)) = (payer, confirmed, &ticket.payment) {
            confirmed = confirm_in_browser(shop, payment).await.is_ok();
        }
        tokio::time::sleep(Duration::from_millis(ticket.poll_after_ms.clamp(100, 2000))).await;
        let url = format!("{}/v1/tickets/{}", shop.door, ticket.ticket);
        let http = shop.lanes.take().await;
        if let Ok(next) = http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            && let Ok(next) = next.json::<Ticket>().await
        {
            ticket = next;
        }
        drop(http);
    }
}

fn is_final(status: &str) -> bool {
    matches!(
        status,
        "paid" | "failed" | "expired" | "sold_out" | "refunded"
    )
}

/// What the waiting room's payment form does through Stripe.js (the emulator's stand-in
/// sends this same request): confirm the PaymentIntent with the publishable key and its
/// client secret as form parameters.
async fn confirm_in_browser(shop: &Shop, payment: &Payment) -> reqwest::Result<()> {
    let http = shop.lanes.take().await;
    let form = format!(
        "key={}&client_secret={}&payment_method=pm_card_visa",
        shop.publishable_key, payment.client_secret
    );
    http.post(format!(
        "{}v1/payment_intents/{}/confirm",
        shop.stripe, payment.payment_intent
    ))
    .header("content-type", "application/x-www-form-urlencoded")
    .body(form)
    .send()
    .await?
    .error_for_status()?;
    Ok(())
}
