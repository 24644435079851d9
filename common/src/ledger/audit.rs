//! The audit log of admission changes, whoever made them (an operator through the admin
//! API, or the admission controller): written inside the transaction that made the
//! change.

use serde_json::Value;
use sqlx::PgConnection;

/// Records a change, inside the transaction that made it.
pub async fn record(
    tx: &mut PgConnection,
    sale_id: &str,
    actor: &str,
    action: &str,
    old: Option<Value>,
    new: Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admission_audit (sale_id, actor, action, old, new) VALUES ($1, $2, $3, $4, $5)",
        sale_id,
        actor,
        action,
        old,
        new
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
