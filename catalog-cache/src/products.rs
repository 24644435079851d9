//! Products in PostgreSQL: the source the caches fill from.

use chrono::{DateTime, Utc};
use flashgate_common::domain::{Category, Sku};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// A product document, with the sale currently selling it (if any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    /// Stock-keeping unit.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// List price, minor units.
    pub price: i64,
    /// Currency.
    pub currency: String,
    /// Free-form attributes.
    pub attributes: serde_json::Value,
    /// Image URLs.
    pub images: serde_json::Value,
    /// Grows with every write.
    pub version: i64,
    /// Last write.
    pub updated_at: DateTime<Utc>,
    /// The latest sale of this product.
    pub sale_id: Option<String>,
}

/// One product.
pub(crate) async fn fetch(pool: &PgPool, sku: &Sku) -> sqlx::Result<Option<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT p.sku, p.name, p.description, p.category, p.price, p.currency, p.attributes,
                  p.images, p.version, p.updated_at,
                  (SELECT s.id FROM sales s WHERE s.sku = p.sku ORDER BY s.starts_at DESC LIMIT 1) AS sale_id
           FROM products p WHERE p.sku = $1"#,
        sku.as_str()
    )
    .fetch_optional(pool)
    .await
}

/// A page in sku order after `after`, optionally of one category; one extra row tells
/// whether there is a next page.
pub(crate) async fn page(
    pool: &PgPool,
    category: Option<&Category>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as!(
        Product,
        r#"SELECT p.sku, p.name, p.description, p.category, p.price, p.currency, p.attributes,
                  p.images, p.version, p.updated_at,
                  (SELECT s.id FROM sales s WHERE s.sku = p.sku ORDER BY s.starts_at DESC LIMIT 1) AS sale_id
           FROM products p
           WHERE ($1::text IS NULL OR p.category = $1) AND ($2::text IS NULL OR p.sku > $2)
           ORDER BY p.sku LIMIT $3"#,
        category.map(Category::as_str),
        after,
        limit + 1
    )
    .fetch_all(pool)
    .await
}

/// The body of a product write.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Name (1..=200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Category (default `general`).
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub category: Option<Category>,
    /// List price, minor units.
    #[schema(minimum = 0)]
    pub price: i64,
    /// Currency (case-insensitive).
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// Attributes object.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
    /// Image URLs.
    #[serde(default = "empty_array")]
    #[schema(value_type = Vec<String>)]
    pub images: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

fn empty_array() -> serde_json::Value {
    serde_json::json!([])
}

/// Creates or updates a product; returns it and whether it was created.
pub async fn upsert(
    pool: &PgPool,
    sku: &Sku,
    input: &ProductInput,
    currency: &str,
) -> sqlx::Result<(Product, bool)> {
    let row = sqlx::query!(
        r#"INSERT INTO products (sku, name, description, category, price, currency, attributes, images)
           VALUES ($1, $2, $3, COALESCE($4, 'general'), $5, $6, $7, $8)
           ON CONFLICT (sku) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,
               category = COALESCE($4, products.category), price = EXCLUDED.price, currency = EXCLUDED.currency,
               attributes = EXCLUDED.attributes, images = EXCLUDED.images,
               version = products.version + 1, updated_at = now()
           RETURNING (xmax = 0) AS "created!""#,
        sku.as_str(),
        input.name,
        input.description,
        input.category.as_ref().map(Category::as_str),
        input.price,
        currency,
        input.attributes,
        input.images
    )
    .fetch_one(pool)
    .await?;
    let product = fetch(pool, sku).await?.ok_or(sqlx::Error::RowNotFound)?;
    Ok((product, row.created))
}
