//! The operators' API: bearer token, audited changes, validation, stats.

use serde_json::{Value, json};

use crate::support::{ADMIN, Door};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_a_missing_or_wrong_token() {
    let door = Door::start().await;
    let url = door.url("/admin/v1/sales/guarded");
    let body = json!({ "sku": "x", "stock": 1, "price": 1, "currency": "eur", "rate_per_second": 1, "burst": 1 });
    for request in [
        door.http.put(&url).json(&body),
        door.http.put(&url).bearer_auth("guess").json(&body),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            "unauthorized"
        );
    }
    for path in [
        "/admin/v1/sales/guarded/stats",
        "/admin/v1/sales/guarded/audit",
        "/admin/v1/sales",
    ] {
        let read = door.http.get(door.url(path)).send().await.unwrap();
        assert_eq!(read.status(), 401, "{path}");
    }
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_change_is_audited_with_who_old_and_new() {
    let door = Door::start().await;
    assert_eq!(
        door.sale("audited", json!({ "rate_per_second": 10 }))
            .await
            .status(),
        201
    );
    assert_eq!(
        door.sale("audited", json!({ "rate_per_second": 20 }))
            .await
            .status(),
        200
    );
    let patch = door
        .http
        .patch(door.url("/admin/v1/sales/audited/admission"))
        .bearer_auth(ADMIN)
        .header("x-actor", "ops-alice");
    assert_eq!(
        patch
            .json(&json!({ "burst": 7 }))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let rows: Vec<(String, String, Option<Value>, Value)> = sqlx::query_as(
        "SELECT actor, action, old, new FROM admission_audit WHERE sale_id = 'audited' ORDER BY id",
    )
    .fetch_all(&door.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2.is_none()),
        ("api:admin", "sale.upsert", true)
    );
    assert_eq!(rows[1].2.as_ref().unwrap()["rate_per_second"], 10);
    assert_eq!(rows[1].3["rate_per_second"], 20);
    assert_eq!(
        (rows[2].0.as_str(), rows[2].1.as_str()),
        ("api:ops-alice", "admission.update")
    );
    assert_eq!(
        (
            rows[2].2.as_ref().unwrap()["burst"].clone(),
            rows[2].3["burst"].clone()
        ),
        (json!(100000), json!(7))
    );
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_sales_and_page_through_a_sales_audit_log() {
    let door = Door::start().await;
    for rate in [10, 20, 30] {
        door.sale("paged", json!({ "rate_per_second": rate })).await;
    }
    door.sale("listed", json!({})).await;
    let get = |path: &str| door.http.get(door.url(path)).bearer_auth(ADMIN).send();

    let list: Value = get("/admin/v1/sales").await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = list["sales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sale_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"paged") && ids.contains(&"listed"), "{list}");
    let paged = list["sales"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sale_id"] == "paged");
    assert_eq!(paged.unwrap()["rate_per_second"], 30);
    let one: Value = get("/admin/v1/sales?limit=1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["sales"].as_array().unwrap().len(), 1);

    let page: Value = get("/admin/v1/sales/paged/audit?limit=2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = page["entries"].as_array().unwrap();
    let rates: Vec<&Value> = entries
        .iter()
        .map(|e| &e["new"]["rate_per_second"])
        .collect();
    assert_eq!(rates, [&json!(30), &json!(20)], "newest first");
    assert_eq!(entries[0]["actor"], "api:admin");
    assert_eq!(entries[0]["old"]["rate_per_second"], 20);
    let last = entries[1]["id"].as_i64().unwrap();
    let next: Value = get(&format!("/admin/v1/sales/paged/audit?before={last}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = next["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{next}");
    assert_eq!(entries[0]["action"], "sale.upsert");
    assert!(
        entries[0]["old"].is_null(),
        "the first entry created the sale"
    );

    for (path, status, code) in [
        ("/admin/v1/sales/nowhere/audit", 404, "sale_not_found"),
        ("/admin/v1/sales/paged/audit?limit=0", 422, "invalid_limit"),
        (
            "/admin/v1/sales/paged/audit?limit=lots",
            400,
            "invalid_query",
        ),
        ("/admin/v1/sales?limit=100000", 422, "invalid_limit"),
    ] {
        let response = get(path).await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            code,
            "{path}"
        );
    }
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_admin_input_gets_problem_json_4xx() {
    let door = Door::start().await;
    let put = |body: Value| {
        door.http
            .put(door.url("/admin/v1/sales/checked"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let base = json!({ "sku": "sku-none", "stock": 5, "price": 100, "currency": "eur", "rate_per_second": 10, "burst": 10 });
    let with = |k: &str, v: Value| {
        let mut body = base.clone();
        body[k] = v;
        body
    };
    let cases = [
        (base.clone(), "unknown_sku", "a sku with no product"),
        (with("stock", json!(-1)), "invalid_sale", "negative stock"),
        (with("price", json!(0)), "invalid_sale", "zero price"),
        (
            with("currency", json!("euro")),
            "invalid_sale",
            "bad currency",
        ),
        (
            with("rate_per_second", json!(0)),
            "invalid_sale",
            "zero rate",
        ),
        (
            with("hold_seconds", json!(1)),
            "invalid_sale",
            "hold too short",
        ),
        (
            with("surprise", json!(true)),
            "invalid_body",
            "unknown field",
        ),
    ];
    for (body, code, case) in cases {
        let response = put(body).await.unwrap();
        assert_eq!(response.status(), 422, "{case}");
        assert_eq!(
            response.json::<Value>().await.unwrap()["code"],
            code,
            "{case}"
        );
    }
    let empty = door.admission("checked", json!({})).await;
    assert_eq!(empty.status(), 422);
    let unknown = door
        .admission("no-such-sale", json!({ "paused": true }))
        .await;
    assert_eq!(unknown.status(), 404);
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_tickets_stock_and_admission() {
    let door = Door::start().await;
    door.sale(
        "counted",
        json!({ "stock": 7, "rate_per_second": 1, "burst": 2 }),
    )
    .await;
    for customer in ["a", "b", "c"] {
        door.ticket("counted", customer).await;
    }
    let stats: Value = door
        .http
        .get(door.url("/admin/v1/sales/counted/stats"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["tickets"]["queued"], 2, "{stats}");
    assert_eq!(stats["queue"]["issued"], 2);
    assert_eq!(
        stats["stock"],
        json!({ "stock": 7, "available": 7, "reserved": 0, "sold": 0 })
    );
    assert_eq!(stats["admission"]["rate_per_second"], 1);
    assert!(
        stats["admission"]["rejected_per_second"]
            .get("rate_limited")
            .is_some()
    );
    let metrics = door.metrics().await;
    for series in [
        r#"flashgate_admission_tickets_issued_total{sale="counted"} 2"#,
        r#"flashgate_admission_rejected_total{sale="counted",reason="rate_limited"} 1"#,
        r#"flashgate_admission_rejected_total{sale="counted",reason="sold_out"} 0"#,
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} in\n{metrics}"
        );
    }
    // The queue and the stock as the door sees them, refreshed about once a second.
    let gauges = [
        r#"flashgate_queue_depth_tickets{sale="counted"} 2"#,
        r#"flashgate_stock_units{sale="counted",state="available"} 7"#,
        r#"flashgate_stock_units{sale="counted",state="sold"} 0"#,
    ];
    flashgate_common::testkit::poll_until(10, "the door's queue and stock gauges", || async {
        let metrics = door.metrics().await;
        gauges
            .iter()
            .all(|g| metrics.lines().any(|l| l == *g))
            .then_some(())
    })
    .await;
    door.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_door_shows_the_connections_it_holds_and_the_heads_that_timed_out() {
    use tokio::io::AsyncWriteExt as _;
    let door = Door::start_with(|c| c.connections.header_timeout_ms = 300).await;
    let addr = door.base.trim_start_matches("http://").to_owned();
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let series = |name: &str, metrics: &str| -> Option<f64> {
        metrics.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?;
            rest.contains(&format!(":{port}\""))
                .then(|| rest.rsplit(' ').next()?.parse().ok())
                .flatten()
        })
    };
    let mut trickling = tokio::net::TcpStream::connect(&addr).await.unwrap();
    trickling
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    flashgate_common::testkit::poll_until(
        10,
        "the trickling head is timed out and counted",
        || async {
            let metrics = door.metrics().await;
            series("flashgate_http_header_timeouts_total{", &metrics)
                .is_some_and(|n| n >= 1.0)
                .then_some(())
        },
    )
    .await;
    let metrics = door.metrics().await;
    let open = series("flashgate_http_connections_open{", &metrics);
    assert!(
        open.is_some_and(|n| n >= 1.0),
        "the scrape's own connection is held: {open:?} in\n{metrics}"
    );
    door.stop().await;
}
