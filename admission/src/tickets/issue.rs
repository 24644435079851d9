//! `POST /v1/sales/{sale_id}/tickets`: 202 with a ticket once the broker confirmed it,
//! 200 with the ticket this customer already holds, or a problem saying why not.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use flashgate_common::amqp::messages::IssuedTicket;
use flashgate_common::domain::{CustomerId, PaymentMethodId, Quantity, SaleId, TicketStatus};
use flashgate_common::http::{ApiJson, ApiPath, Problem};
use flashgate_common::trail;
use serde::Deserialize;
use uuid::Uuid;

use super::claim::{self, Claim, Held};
use super::idempotency::{self, Stored};
use super::pacing::{Pending, Turned};
use super::prequeue::PrequeueArrival;
use super::{TicketBody, gate, poll, prequeue, recover};
use crate::pow::{self, ProofOfWork};
use crate::sales::{Outcome, SaleHandle};
use crate::state::AppState;
use crate::ticket_token::TicketClaims;
use crate::{ClientAddress, Result};

/// The request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct TicketRequest {
    /// The shopper (one ticket per customer and sale). Required unless the door takes
    /// identity from the shop's login (`admission.identity.mode = "jwt"`): then it may
    /// only name the signed-in shopper.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._:@+-]{1,128}$")]
    customer_id: Option<CustomerId>,
    /// Units wanted.
    #[schema(minimum = 1, maximum = 100)]
    quantity: i64,
    /// A saved payment method (`pm_…`): the payment is confirmed without the shopper.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^pm_[A-Za-z0-9_]{1,120}$")]
    payment_method: Option<PaymentMethodId>,
    /// A solved challenge from `GET /v1/sales/{sale_id}/challenge`, when the sale asks
    /// for proof of work.
    #[serde(default)]
    proof_of_work: Option<ProofOfWork>,
    /// The answer token of the captcha widget, when the sale asks for a captcha.
    #[serde(default)]
    #[schema(max_length = 2048)]
    captcha_token: Option<String>,
}

/// A ticket handed out: new (`created`) or the one the customer held.
#[derive(Debug, Clone)]
pub struct Issued {
    token: String,
    seq: i64,
    status: TicketStatus,
    created: bool,
    waitlisted: bool,
}

/// What one coalesced issue produced.
pub(crate) type IssueResult = std::result::Result<Issued, Problem>;

struct Arrival {
    sale_id: SaleId,
    customer: CustomerId,
    quantity: Quantity,
    payment_method: Option<PaymentMethodId>,
    request_id: Option<String>,
}

fn unknown_sale() -> Problem {
    Problem::not_found("sale_not_found", "no sale with this id")
}

/// Asks for a place in the sale's queue. The answer comes at once: a ticket the broker
/// confirmed, the ticket this customer already holds, or why not.
#[utoipa::path(post, path = "/v1/sales/{sale_id}/tickets", tag = "shoppers",
    params(
        ("sale_id" = String, Path, description = "The sale"),
        ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer to a retry with the same key and body (1–255 printable ASCII)"),
        ("Authorization" = Option<String>, Header, description = "`Bearer <token>` from the shop's login, when the door takes identity from it (`admission.identity.mode = \"jwt\"`)"),
    ),
    request_body = TicketRequest,
    responses(
        (status = 202, description = "A new ticket, confirmed by the broker; poll `Location`", body = super::TicketBody,
            headers(("Location" = String, description = "The ticket's poll URL"))),
        (status = 200, description = "The ticket this customer already holds", body = super::TicketBody,
            headers(("Location" = String, description = "The ticket's poll URL"))),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No valid token from the shop's login (`invalid_token`; identity mode `jwt`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "customer_id names someone other than the signed-in shopper (`customer_mismatch`), or the sale asks for proof of work and it is missing, wrong, expired or used by another shopper (`proof_of_work_required`, `proof_of_work_invalid`, `proof_of_work_expired`, `proof_of_work_replayed`), or it asks for a captcha and the answer is missing, refused or used by another shopper (`captcha_required`, `captcha_invalid`, `captcha_replayed`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such sale (`sale_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not open yet or paused (`sale_not_open`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 410, description = "Sold out, or every unit already claimed by the queue (`sold_out`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid customer or quantity, a quantity over the sale's most per customer (`quantity_over_limit`), or an Idempotency-Key used before with another body", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "Over the sale's (`rate_limited`), the customer's (`too_many_requests`) or the address's rate, or the door is behind on its claims and gives a time to come back in the order of arrival (`door_paced`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Queue saturated, broker or Redis unavailable, door busy, captcha provider unavailable (`captcha_unavailable`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn issue(
    State(state): State<AppState>,
    ApiPath(sale_id): ApiPath<String>,
    headers: HeaderMap,
    address: Option<axum::Extension<ClientAddress>>,
    ApiJson(mut body): ApiJson<TicketRequest>,
) -> Result<Response> {
    let sale_id = SaleId::parse(sale_id).map_err(|_| unknown_sale())?;
    let quantity = Quantity::parse(body.quantity, state.config.admission.max_quantity)
        .map_err(|e| Problem::unprocessable("invalid_quantity", e.to_string()))?;
    let idempotency_key = idempotency::key_from(&headers)?;
    let sale = state.sales.get(&sale_id).await?.ok_or_else(unknown_sale)?;
    let most = sale
        .settings()
        .most_per_customer(state.config.admission.max_quantity);
    if quantity.get() > most {
        return Err(Problem::unprocessable(
            "quantity_over_limit",
            format!("this sale sells at most {most} per customer"),
        )
        .into());
    }
    let customer = state.identity.customer(&headers, body.customer_id.take())?;
    let address = address.map(|a| a.0);
    check_bots(&state, &sale, &customer, address, &body).await?;
    let payment_method = body.payment_method.as_ref().map_or("", |p| p.as_str());
    let fingerprint =
        idempotency::fingerprint(&[customer.as_str(), &quantity.to_string(), payment_method]);
    if let Some(key) = &idempotency_key
        && let Some(stored) = idempotency::lookup(&state.redis, &sale_id, key, &fingerprint).await?
    {
        return Ok(replay(&stored));
    }
    let arrival = Arrival {
        sale_id,
        customer,
        quantity,
        payment_method: body.payment_method,
        request_id: headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let (status, body) = admit(&state, &sale, arrival).await?;
    if let Some(key) = &idempotency_key {
        let stored = Stored {
            fingerprint,
            status: status.as_u16(),
            body: serde_json::to_value(&body).unwrap_or_default(),
        };
        idempotency::store(&state.redis, &sale.id(), key, &stored).await?;
    }
    Ok(respond(status, &body))
}

/// The sale's bot checks, those it asks for: proof of work (the solution in memory, then
/// its one use in Redis) and a captcha (verified by the provider). A refusal is counted.
async fn check_bots(
    state: &AppState,
    sale: &SaleHandle,
    customer: &CustomerId,
    address: Option<ClientAddress>,
    body: &TicketRequest,
) -> Result<()> {
    let settings = sale.settings();
    let (bits, captcha) = (settings.pow_difficulty(), settings.captcha);
    if bits > 0 {
        let signed_in = state.identity.takes_login().then_some(customer);
        let requester = pow::requester(signed_in, address);
        let proof = body.proof_of_work.as_ref();
        let now = Utc::now().timestamp();
        let checked = match pow::check(&state.signer, &settings.id, bits, &requester, proof, now) {
            Ok(()) => match proof {
                Some(proof) => pow::use_once(state, &settings.id, proof, customer).await?,
                None => Ok(()),
            },
            Err(refused) => Err(refused),
        };
        checked.map_err(|refused| {
            sale.counters.record(Outcome::BotCheck);
            refused.problem()
        })?;
    }
    if captcha {
        let address = address.map(|a| a.0.to_string());
        let token = body.captcha_token.as_deref();
        let checked =
            crate::captcha::check(state, &settings.id, customer, token, address.as_deref()).await;
        if checked.is_err() {
            sale.counters.record(Outcome::BotCheck);
        }
        checked?;
    }
    Ok(())
}

fn respond(status: StatusCode, body: &TicketBody) -> Response {
    let location = format!("/v1/tickets/{}", body.ticket);
    (status, [(header::LOCATION, location)], Json(body)).into_response()
}

fn replay(stored: &Stored) -> Response {
    let location = stored
        .body
        .get("ticket")
        .and_then(|t| t.as_str())
        .map(|t| format!("/v1/tickets/{t}"));
    let mut response = (stored.status_code(), Json(&stored.body)).into_response();
    if let Some(location) = location.and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(
        "idempotent-replayed",
        header::HeaderValue::from_static("true"),
    );
    response
}

async fn admit(
    state: &AppState,
    sale: &Arc<SaleHandle>,
    arrival: Arrival,
) -> Result<(StatusCode, TicketBody)> {
    let settings = sale.settings();
    let mut floor = settings.fairness.prequeued;
    if !settings.paused && settings.prequeue_open(Utc::now()) {
        if let Err(wait) = gate::check_customer(state, sale, &arrival.customer) {
            sale.counters.record(wait.outcome);
            return Err(wait.problem.into());
        }
        let _pending = enter(state, sale)?;
        let joined = prequeue::join(
            state,
            sale,
            PrequeueArrival {
                sale_id: &arrival.sale_id,
                customer: &arrival.customer,
                quantity: arrival.quantity,
                payment_method: arrival.payment_method.as_ref(),
                request_id: arrival.request_id.as_deref(),
            },
        )
        .await?;
        match joined {
            Ok(answer) => return Ok(answer),
            // Drawn since this door last read the sale: a ticket after the drawn ones.
            Err(prequeued) => floor = floor.max(prequeued),
        }
    }
    let checked = match gate::check(state, sale, &arrival.customer) {
        // Refused for a reason no held ticket changes, or by a sealed sale to a customer
        // not on its roll: answered from memory alone.
        Err(refusal)
            if !refusal.defers_to_held_ticket()
                || sale.surely_holds_nothing(&arrival.customer, trust(state)) =>
        {
            sale.counters.record(refusal.outcome);
            return Err(refusal.problem.into());
        }
        checked => checked,
    };
    // Everything past here waits on Redis or the broker: bounded, and shed at once past it.
    let _pending = enter(state, sale)?;
    let waitlisted = match checked {
        Ok(waitlisted) => waitlisted,
        Err(refusal) => {
            sale.counters.record(refusal.outcome);
            let holds_one = refusal.defers_to_held_ticket()
                && recover::held(state, sale, &arrival.customer)
                    .await?
                    .is_some();
            if !holds_one {
                return Err(refusal.problem.into());
            }
            false
        }
    };
    let key = format!("{}\u{1f}{}", arrival.sale_id, arrival.customer);
    let work = issue_once(state.clone(), sale.clone(), arrival, waitlisted, floor);
    let (result, leader) = state
        .inflight
        .run(key, work, Err(Problem::internal()))
        .await;
    let issued = result?;
    let status = if issued.created && leader {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let budget = state.config.admission.poll_budget_per_second;
    Ok((status, body(sale, &issued, budget)))
}

/// Takes a place among the arrivals waiting on Redis or the broker; past
/// `admission.pace_above_pending` of them the arrival is told when to come back, past
/// `admission.max_pending_arrivals` it is shed.
fn enter<'a>(state: &'a AppState, sale: &SaleHandle) -> Result<Pending<'a>> {
    state.pacer.enter().map_err(|turned| {
        let problem = match turned {
            Turned::Paced(wait) => {
                sale.counters.record(Outcome::Paced);
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "door_paced",
                    "the door is taking arrivals as fast as it can; come back at the time given",
                )
                .retry_after(crate::limits::retry_after_secs(wait))
            }
            Turned::Full => door_busy(sale),
        };
        problem.into()
    })
}

/// How long the doors trust a sealed sale's roll of holders.
fn trust(state: &AppState) -> std::time::Duration {
    crate::sales::roll::trust(std::time::Duration::from_millis(
        state.config.admission.live_refresh_ms,
    ))
}

fn door_busy(sale: &SaleHandle) -> Problem {
    sale.counters.record(Outcome::DoorBusy);
    Problem::unavailable(
        "door_busy",
        "the door is serving as many arrivals as it can; retry",
        1,
    )
}

fn body(sale: &SaleHandle, issued: &Issued, budget: u32) -> TicketBody {
    let queued = issued.status == TicketStatus::Queued;
    let position = queued.then(|| sale.position(issued.seq));
    let spread = sale.poll_spread_ms(budget);
    let poll_after_ms = match (position, issued.status.is_final()) {
        (Some(position), _) => sale.poll_after_ms(position, spread),
        (None, true) => 0,
        (None, false) => spread.max(1000),
    };
    TicketBody {
        ticket: issued.token.clone(),
        status: issued.status,
        position,
        order_id: None,
        payment: None,
        poll_after_ms,
        estimated_wait_ms: position.and_then(|p| sale.estimated_wait_ms(p)),
        waitlisted: issued.waitlisted,
        opens_at: None,
        hold_expires_at: None,
    }
}

async fn issue_once(
    state: AppState,
    sale: Arc<SaleHandle>,
    arrival: Arrival,
    waitlisted: bool,
    drawn: i64,
) -> IssueResult {
    let ticket = claim::ticket_id(&arrival.sale_id, &arrival.customer);
    let expires_at = Utc::now().timestamp() + state.config.admission.ticket_ttl_secs as i64;
    let token = state.signer.sign(&TicketClaims {
        sale: arrival.sale_id.clone(),
        ticket,
        expires_at,
    });
    // Numbers continue after what was decided (if Redis lost its counter) and after the
    // tickets the pre-queue's draw numbered.
    let floor = sale.live().terms.decided.max(drawn);
    let claimed = claim::claim(
        &state.redis,
        &arrival.sale_id,
        &arrival.customer,
        &token,
        floor,
    )
    .await
    .map_err(redis_unavailable)?;
    match claimed {
        // A claim no publish of which was confirmed (failed, in flight elsewhere, or lost
        // with a crash): publishing the same ticket again is safe and settles it.
        Some(Claim::New(held)) | Some(Claim::Existing(held @ Held { pending: true, .. })) => {
            publish(&state, &sale, &arrival, ticket, held, waitlisted).await
        }
        Some(Claim::Existing(held)) => existing(&state, &arrival.sale_id, ticket, held).await,
        None => Err(Problem::internal()),
    }
}

async fn publish(
    state: &AppState,
    sale: &SaleHandle,
    arrival: &Arrival,
    ticket: Uuid,
    held: Held,
    waitlisted: bool,
) -> IssueResult {
    let confirmed = state
        .batcher
        .publish(arrival.ticket(ticket, held.seq))
        .await;
    let Ok(confirmed) = confirmed else {
        sale.counters.record(Outcome::BrokerUnavailable);
        return Err(Problem::unavailable(
            "broker_unavailable",
            "the ticket could not be queued; retry",
            2,
        ));
    };
    // The shared count with this ticket in it: exact, where adding one to the door's own
    // count would count twice a ticket a refresh had already read.
    if let Some(published) = confirmed.published {
        sale.merge_live(None, published);
    }
    sale.counters.record(Outcome::Admitted);
    trail::issued(
        ticket,
        &arrival.sale_id,
        held.seq,
        arrival.request_id.as_deref(),
    );
    Ok(Issued {
        token: held.token,
        seq: held.seq,
        status: TicketStatus::Queued,
        created: true,
        waitlisted,
    })
}

impl Arrival {
    /// This arrival's ticket, as the reservation workers get it.
    fn ticket(&self, ticket: Uuid, seq: i64) -> IssuedTicket {
        IssuedTicket {
            ticket_id: ticket,
            sale_id: self.sale_id.clone(),
            customer_id: self.customer.clone(),
            seq,
            quantity: self.quantity,
            payment_method: self.payment_method.clone(),
            issued_at: Utc::now(),
            request_id: self.request_id.clone(),
        }
    }
}

/// The confirmed ticket a customer already holds, with its current status.
async fn existing(state: &AppState, sale: &SaleId, ticket: Uuid, held: Held) -> IssueResult {
    let (view, _) = state
        .redis
        .read_ticket(sale, ticket)
        .await
        .map_err(|e| crate::Error::from(e).into_problem())?;
    let status = match view {
        Some(view) => view.status,
        // Redis lost it (restart, failover): the database knows the decided ones.
        None => poll::from_database(state, sale, ticket)
            .await
            .map_err(|e| e.into_problem())?
            .map_or(TicketStatus::Queued, |v| v.status),
    };
    Ok(Issued {
        token: held.token,
        seq: held.seq,
        status,
        created: false,
        waitlisted: false,
    })
}

fn redis_unavailable(error: redis::RedisError) -> Problem {
    tracing::warn!(error = %error, "redis unavailable at the door");
    Problem::unavailable("redis_unavailable", "live state is unavailable; retry", 1)
}
