//! The catalog's HTTP surface, with HTTP caching: a strong `ETag` over the body
//! (`If-None-Match` → 304), and `Cache-Control` with `s-maxage` and
//! `stale-while-revalidate`, so a CDN in front can absorb the read path.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flashgate_common::domain::{Category, Currency, Sku};
use flashgate_common::http::{ApiJson, ApiPath, ApiQuery, Problem};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::availability::Availability;
use crate::catalog::Catalog;
use crate::error::FillError;
use crate::pages::{PageQuery, decode_cursor};
use crate::products::{self, Product, ProductInput};

/// Product pages carry live availability: a CDN may serve one for a second, and a stale
/// copy for two more while it refetches, so what it shows is at most about 3 s old (it
/// informs; only the reservation transaction authorizes a sale).
const PRODUCT_CACHE: &str = "public, max-age=1, s-maxage=1, stale-while-revalidate=2";
/// Listings change only with product writes.
const LIST_CACHE: &str = "public, max-age=5, s-maxage=5, stale-while-revalidate=60";
/// Largest page.
const MAX_LIMIT: i64 = 100;

fn unavailable(error: FillError) -> Problem {
    tracing::warn!(error = %error, "catalog read failed");
    Problem::unavailable(
        "catalog_unavailable",
        "the catalog cannot be read right now; retry",
        1,
    )
}

/// A body as served: its bytes and its strong `ETag`.
#[derive(Clone)]
struct Rendered {
    body: Bytes,
    etag: HeaderValue,
}

impl Rendered {
    /// Serializes `body` and digests it into an `ETag`.
    fn new<T: Serialize>(body: &T) -> Self {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&bytes)[..12]));
        Self {
            body: Bytes::from(bytes),
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
        }
    }

    /// The answer to a request with `headers`: 304 when the client already has it.
    fn respond(self, headers: &HeaderMap, cache_control: &'static str) -> Response {
        let etag = self.etag.as_bytes();
        let matches = headers.get(header::IF_NONE_MATCH).is_some_and(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .map(<[u8]>::trim_ascii)
                .any(|t| t == etag || t == b"*")
        });
        let mut response = if matches {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            ([(header::CONTENT_TYPE, "application/json")], self.body).into_response()
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        );
        headers.insert(header::ETAG, self.etag);
        response
    }
}

/// A product answer as last rendered, with the product and availability it was rendered
/// from. It is reused while the caches still hold those very values (compared by pointer:
/// a refill, an invalidation or a new availability reading renders again), so a hot read
/// costs two cache lookups instead of a serialization and a digest.
pub(crate) struct RenderedProduct {
    product: Arc<Product>,
    availability: Option<Arc<Availability>>,
    rendered: Rendered,
}

impl RenderedProduct {
    fn renders(&self, product: &Arc<Product>, availability: Option<&Arc<Availability>>) -> bool {
        Arc::ptr_eq(&self.product, product)
            && match (&self.availability, availability) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

/// A product with its sale's availability.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ProductWithAvailability)]
pub(crate) struct ProductView<'a> {
    #[serde(flatten)]
    product: &'a Product,
    /// The latest sale's units, when the product is on sale.
    availability: Option<&'a Availability>,
}

/// One product, with its sale's availability (`ETag`; `If-None-Match` gets `304`).
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "catalog",
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description = "The product"),
           ("If-None-Match" = Option<String>, Header, description = "An `ETag` the client holds")),
    responses(
        (status = 200, description = "The product", body = ProductView,
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the `ETag` given"),
        (status = 400, description = "Not a valid sku (`invalid_sku`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such product (`product_not_found`)", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The catalog cannot be read; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn get_product(
    State(catalog): State<Arc<Catalog>>,
    ApiPath(sku): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let sku = Sku::parse(sku).map_err(|e| Problem::bad_request("invalid_sku", e.to_string()))?;
    let product = catalog
        .product(&sku)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| Problem::not_found("product_not_found", "no product with this sku"))?;
    let availability = match &product.sale_id {
        Some(sale) => catalog.availability(sale).await,
        None => None,
    };
    if let Some(hit) = catalog.rendered.get(sku.as_str())
        && hit.renders(&product, availability.as_ref())
    {
        return Ok(hit.rendered.clone().respond(&headers, PRODUCT_CACHE));
    }
    let rendered = Rendered::new(&ProductView {
        product: &product,
        availability: availability.as_deref(),
    });
    catalog.rendered.insert(
        sku.to_string(),
        Arc::new(RenderedProduct {
            product,
            availability,
            rendered: rendered.clone(),
        }),
    );
    Ok(rendered.respond(&headers, PRODUCT_CACHE))
}

/// Query of `GET /v1/products`, read as text so every bad value gets its own problem.
#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    category: Option<String>,
}

impl ListParams {
    fn parse(self) -> Result<PageQuery, Problem> {
        let limit = match self.limit {
            None => 20,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| {
                    Problem::bad_request(
                        "invalid_limit",
                        format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                    )
                })?,
        };
        let after = match self.cursor {
            None => None,
            Some(raw) => Some(decode_cursor(&raw).ok_or_else(|| {
                Problem::bad_request("invalid_cursor", "cursor is not one this API returned")
            })?),
        };
        let category = match self.category {
            None => None,
            Some(raw) => Some(
                Category::parse(raw)
                    .map_err(|e| Problem::bad_request("invalid_category", e.to_string()))?,
            ),
        };
        Ok(PageQuery {
            category,
            after,
            limit,
        })
    }
}

/// A page of products in sku order (`ETag`; `If-None-Match` gets `304`).
#[utoipa::path(get, path = "/v1/products", tag = "catalog",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Page size (default 20)"),
           ("cursor" = Option<String>, Query, min_length = 1, description = "`next_cursor` of the page before"),
           ("category" = Option<String>, Query, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", description = "Only this category"),
           ("If-None-Match" = Option<String>, Header, description = "An `ETag` the client holds")),
    responses(
        (status = 200, description = "A page", body = crate::pages::Page,
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "Unchanged since the `ETag` given"),
        (status = 400, description = "A bad limit, cursor or category", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The catalog cannot be read; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn list_products(
    State(catalog): State<Arc<Catalog>>,
    ApiQuery(params): ApiQuery<ListParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let page = catalog.page(params.parse()?).await.map_err(unavailable)?;
    Ok(Rendered::new(page.as_ref()).respond(&headers, LIST_CACHE))
}

/// Whether a JSON value holds U+0000 in any string or key.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Creates or updates a product: written to PostgreSQL, then invalidated everywhere.
#[utoipa::path(put, path = "/admin/v1/products/{sku}", tag = "operators",
    security(("admin_token" = [])),
    params(("sku" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description = "The product")),
    request_body = ProductInput,
    responses(
        (status = 201, description = "Created", body = Product),
        (status = 200, description = "Updated", body = Product),
        (status = 400, description = "Malformed JSON", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "No or wrong admin token", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 415, description = "Not `application/json`", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad sku, name, price or currency", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "The catalog cannot be read; retry", body = flashgate_common::http::ProblemBody, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn put_product(
    State(catalog): State<Arc<Catalog>>,
    ApiPath(sku): ApiPath<String>,
    ApiJson(input): ApiJson<ProductInput>,
) -> Result<(StatusCode, Json<Product>), Problem> {
    let sku = Sku::parse(sku).map_err(|e| Problem::unprocessable("invalid_sku", e.to_string()))?;
    let currency = Currency::parse(input.currency.to_ascii_lowercase())
        .map_err(|e| Problem::unprocessable("invalid_product", e.to_string()))?;
    if input.name.is_empty() || input.name.chars().count() > 200 || input.price < 0 {
        return Err(Problem::unprocessable(
            "invalid_product",
            "name must be 1..=200 characters and price >= 0",
        ));
    }
    let texts = [&input.name, &input.description];
    if texts.iter().any(|t| t.contains('\0'))
        || has_nul(&input.attributes)
        || has_nul(&input.images)
    {
        return Err(Problem::unprocessable(
            "invalid_product",
            "text must not contain U+0000 (PostgreSQL cannot store it)",
        ));
    }
    if !input
        .images
        .as_array()
        .is_some_and(|a| a.iter().all(|i| i.is_string()))
    {
        return Err(Problem::unprocessable(
            "invalid_product",
            "images must be an array of URL strings",
        ));
    }
    let (product, created) = products::upsert(&catalog.pool, &sku, &input, currency.as_str())
        .await
        .map_err(|e| match flashgate_common::db::violated_constraint(&e) {
            Some(constraint) => {
                Problem::unprocessable("invalid_product", format!("violates {constraint}"))
            }
            None => unavailable(FillError::Database(e.to_string())),
        })?;
    catalog.invalidate(&sku).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(product)))
}
