//! Bad input gets a problem+json 4xx with a stable code, never a 5xx: listing
//! parameters, skus, and admin writes (token and body).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use flashgate_common::testkit::assert_problem;

use crate::support::{ADMIN, App, create_product, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_listing_parameters_and_skus_get_problem_json_4xx() {
    let (env, config) = setup(|_| {}).await;
    create_product(&env.pool, "real-1", "Real sneaker", "shoes").await;
    let app = App::start(&config).await;
    let bad_sku_cursor = URL_SAFE_NO_PAD.encode("not a sku");
    let cases = [
        (
            "/v1/products?limit=-1".to_owned(),
            400,
            "invalid_limit",
            "negative limit",
        ),
        (
            "/v1/products?limit=0".to_owned(),
            400,
            "invalid_limit",
            "zero limit",
        ),
        (
            "/v1/products?limit=101".to_owned(),
            400,
            "invalid_limit",
            "limit above the maximum",
        ),
        (
            "/v1/products?limit=99999999999999999999999".to_owned(),
            400,
            "invalid_limit",
            "huge limit",
        ),
        (
            "/v1/products?limit=ten".to_owned(),
            400,
            "invalid_limit",
            "non-numeric limit",
        ),
        (
            "/v1/products?limit=".to_owned(),
            400,
            "invalid_limit",
            "empty limit",
        ),
        (
            "/v1/products?cursor=%%%".to_owned(),
            400,
            "invalid_cursor",
            "cursor not base64",
        ),
        (
            format!("/v1/products?cursor={bad_sku_cursor}"),
            400,
            "invalid_cursor",
            "cursor of no sku",
        ),
        (
            "/v1/products?category=Not%20A%20Category".to_owned(),
            400,
            "invalid_category",
            "bad category",
        ),
        (
            "/v1/products/not%20a%20sku".to_owned(),
            400,
            "invalid_sku",
            "invalid sku",
        ),
        (
            format!("/v1/products/{}", "x".repeat(65)),
            400,
            "invalid_sku",
            "overlong sku",
        ),
        (
            "/v1/products/no-such-sku".to_owned(),
            404,
            "product_not_found",
            "unknown sku",
        ),
        (
            "/v1/nothing-here".to_owned(),
            404,
            "not_found",
            "unknown route",
        ),
    ];
    for (path, status, code, case) in cases {
        assert_problem(app.get(&path).await, status, code, case).await;
    }
    app.stop().await;
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_need_the_token_and_a_valid_body() {
    let (env, config) = setup(|_| {}).await;
    let app = App::start(&config).await;
    let url = app.url("/admin/v1/products/new-1");
    let good = json!({ "name": "New", "price": 100, "currency": "eur" });
    let anonymous = app.http.put(&url).json(&good).send().await.unwrap();
    assert_problem(anonymous, 401, "unauthorized", "no token").await;
    let wrong = app.http.put(&url).bearer_auth("not-the-token").json(&good);
    assert_problem(
        wrong.send().await.unwrap(),
        401,
        "unauthorized",
        "wrong token",
    )
    .await;
    let bodies = [
        (
            json!({ "price": 100, "currency": "eur" }),
            "invalid_body",
            "missing name",
        ),
        (
            json!({ "name": "x", "price": "cheap", "currency": "eur" }),
            "invalid_body",
            "price not a number",
        ),
        (
            json!({ "name": "x", "price": 1, "currency": "eur", "colour": "red" }),
            "invalid_body",
            "unknown field",
        ),
        (
            json!({ "name": "", "price": 100, "currency": "eur" }),
            "invalid_product",
            "empty name",
        ),
        (
            json!({ "name": "x".repeat(201), "price": 100, "currency": "eur" }),
            "invalid_product",
            "long name",
        ),
        (
            json!({ "name": "x", "price": -1, "currency": "eur" }),
            "invalid_product",
            "negative price",
        ),
        (
            json!({ "name": "x", "price": 1, "currency": "euro" }),
            "invalid_product",
            "bad currency",
        ),
        (
            json!({ "name": "x", "price": 1, "currency": "eur", "attributes": [1] }),
            "invalid_product",
            "attributes not an object",
        ),
        (
            json!({ "name": "x", "price": 1, "currency": "eur", "category": "Bad Cat" }),
            "invalid_body",
            "bad category",
        ),
        // Found by the contract test: PostgreSQL cannot store U+0000, and the write
        // failed as a 503 that no retry could ever fix.
        (
            json!({ "name": "x\u{0}", "price": 1, "currency": "eur" }),
            "invalid_product",
            "NUL in the name",
        ),
        (
            json!({ "name": "x", "description": "a\u{0}b", "price": 1, "currency": "eur" }),
            "invalid_product",
            "NUL in the description",
        ),
        (
            json!({ "name": "x", "price": 1, "currency": "eur", "attributes": { "k\u{0}": 1 } }),
            "invalid_product",
            "NUL in an attribute's name",
        ),
        (
            json!({ "name": "x", "price": 1, "currency": "eur", "attributes": { "k": ["\u{0}"] } }),
            "invalid_product",
            "NUL in an attribute's value",
        ),
        (
            json!({ "name": "x", "price": 1, "currency": "eur", "images": [{}] }),
            "invalid_product",
            "an image that is not a URL string",
        ),
    ];
    for (body, code, case) in bodies {
        let put = app.http.put(&url).bearer_auth(ADMIN).json(&body);
        assert_problem(put.send().await.unwrap(), 422, code, case).await;
    }
    let malformed = app
        .http
        .put(&url)
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{");
    assert_problem(
        malformed.send().await.unwrap(),
        400,
        "malformed_json",
        "malformed JSON",
    )
    .await;
    let bad_sku = app
        .http
        .put(app.url("/admin/v1/products/bad%20sku"))
        .bearer_auth(ADMIN)
        .json(&good);
    assert_problem(
        bad_sku.send().await.unwrap(),
        422,
        "invalid_sku",
        "invalid sku",
    )
    .await;
    assert_problem(
        app.get("/v1/products/new-1").await,
        404,
        "product_not_found",
        "nothing was written",
    )
    .await;
    let created = app
        .http
        .put(&url)
        .bearer_auth(ADMIN)
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    app.stop().await;
    env.cleanup().await;
}
