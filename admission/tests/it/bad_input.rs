//! Bad input at the door gets problem+json 4xx, never a 5xx.

use serde_json::{Value, json};

use flashgate_common::testkit::assert_problem;

use crate::support::{Door, crowd_from_one_address};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ticket_requests_get_problem_json_4xx() {
    let door = Door::start_with(crowd_from_one_address).await;
    assert!(
        door.sale("strict", json!({ "stock": 10 }))
            .await
            .status()
            .is_success()
    );
    let url = door.url("/v1/sales/strict/tickets");
    let post = |body: Value| door.http.post(&url).json(&body).send();
    let cases = [
        (
            json!({ "quantity": 1 }),
            422,
            "invalid_body",
            "missing customer_id",
        ),
        (
            json!({ "customer_id": "c" }),
            422,
            "invalid_body",
            "missing quantity",
        ),
        (
            json!({ "customer_id": "c", "quantity": 0 }),
            422,
            "invalid_quantity",
            "quantity 0",
        ),
        (
            json!({ "customer_id": "c", "quantity": -2 }),
            422,
            "invalid_quantity",
            "negative quantity",
        ),
        (
            json!({ "customer_id": "c", "quantity": 1_000_000_000u64 }),
            422,
            "invalid_quantity",
            "huge quantity",
        ),
        (
            json!({ "customer_id": "c", "quantity": 1e30 }),
            422,
            "invalid_body",
            "absurd quantity",
        ),
        (
            json!({ "customer_id": "c", "quantity": "1" }),
            422,
            "invalid_body",
            "quantity as text",
        ),
        (
            json!({ "customer_id": "a b", "quantity": 1 }),
            422,
            "invalid_body",
            "customer id with a space",
        ),
        (
            json!({ "customer_id": "c", "quantity": 1, "payment_method": "visa" }),
            422,
            "invalid_body",
            "not a pm_ id",
        ),
    ];
    for (body, status, code, case) in cases {
        assert_problem(post(body).await.unwrap(), status, code, case).await;
    }
    let malformed = door
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"customer_id\":")
        .send();
    assert_problem(
        malformed.await.unwrap(),
        400,
        "malformed_json",
        "malformed JSON",
    )
    .await;
    let text = door
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send();
    assert_problem(
        text.await.unwrap(),
        415,
        "unsupported_media_type",
        "wrong content type",
    )
    .await;
    let huge = json!({ "customer_id": "x".repeat(10_000), "quantity": 1 });
    assert_problem(
        post(huge).await.unwrap(),
        413,
        "body_too_large",
        "oversized body",
    )
    .await;
    let unknown = door
        .http
        .post(door.url("/v1/sales/no-such-sale/tickets"))
        .json(&json!({ "customer_id": "c", "quantity": 1 }));
    assert_problem(
        unknown.send().await.unwrap(),
        404,
        "sale_not_found",
        "unknown sale",
    )
    .await;
    let malformed_sale = door
        .http
        .post(door.url("/v1/sales/NOT%20A%20SALE/tickets"))
        .json(&json!({ "customer_id": "c", "quantity": 1 }));
    assert_problem(
        malformed_sale.send().await.unwrap(),
        404,
        "sale_not_found",
        "malformed sale id",
    )
    .await;
    let bad_token = door.http.get(door.url("/v1/tickets/not-a-token")).send();
    assert_problem(
        bad_token.await.unwrap(),
        404,
        "ticket_not_found",
        "malformed ticket token",
    )
    .await;
    let wrong_method = door.http.delete(&url).send();
    assert_problem(
        wrong_method.await.unwrap(),
        405,
        "method_not_allowed",
        "DELETE on tickets",
    )
    .await;
    door.stop().await;
}
