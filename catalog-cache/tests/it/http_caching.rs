//! HTTP caching: a strong ETag (304 on a matching If-None-Match) and Cache-Control with
//! s-maxage and stale-while-revalidate, so a CDN in front can absorb the read path.

use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};

use crate::support::{App, create_product, product_body, setup};

async fn etag_and_cache_control(app: &App, path: &str) -> (String, String) {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let header = |name| response.headers()[name].to_str().unwrap().to_owned();
    (header(ETAG), header(CACHE_CONTROL))
}

async fn status_with_etag(app: &App, path: &str, etag: &str) -> reqwest::Response {
    let get = app.http.get(app.url(path)).header(IF_NONE_MATCH, etag);
    get.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_etag_gets_304_and_cache_control_lets_a_cdn_absorb_reads() {
    let (env, config) = setup(|_| {}).await;
    create_product(&env.pool, "etag-1", "Tagged sneaker", "shoes").await;
    let app = App::start(&config).await;
    for path in ["/v1/products/etag-1", "/v1/products?limit=5"] {
        let (etag, cache_control) = etag_and_cache_control(&app, path).await;
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "strong: {etag}"
        );
        assert!(cache_control.contains("s-maxage="), "{cache_control}");
        assert!(
            cache_control.contains("stale-while-revalidate="),
            "{cache_control}"
        );
        let cached = status_with_etag(&app, path, &etag).await;
        assert_eq!(cached.status(), 304, "{path}");
        assert_eq!(cached.headers()[ETAG], etag.as_str());
        assert!(cached.headers().contains_key(CACHE_CONTROL));
        assert!(cached.bytes().await.unwrap().is_empty());
        let listed = status_with_etag(&app, path, &format!("\"other\", {etag}")).await;
        assert_eq!(listed.status(), 304, "{path}: one of several tags");
        let other = status_with_etag(&app, path, "\"not-this-one\"").await;
        assert_eq!(other.status(), 200, "{path}");
    }
    let (etag, _) = etag_and_cache_control(&app, "/v1/products/etag-1").await;
    let body = product_body("Retagged", "shoes");
    assert_eq!(app.put_product("etag-1", &body).await.status(), 200);
    let changed = status_with_etag(&app, "/v1/products/etag-1", &etag).await;
    assert_eq!(changed.status(), 200, "a write changes the tag");
    assert_ne!(changed.headers()[ETAG], etag.as_str());
    app.stop().await;
    env.cleanup().await;
}
