//! Announcing changes to every process that caches them: product writes to the catalog
//! processes, sale settings (rate, burst, pause, stock) to the doors.

use super::Redis;
use crate::Result;
use crate::domain::{SaleId, Sku};

impl Redis {
    /// Deletes the cached product and listing pages and tells every catalog process to
    /// drop its in-process copies.
    pub async fn announce_product_change(&self, sku: &Sku) -> Result<()> {
        let keys = self.keys();
        redis::pipe()
            .del(keys.product(sku))
            .ignore()
            .del(keys.product_pages())
            .ignore()
            .publish(keys.catalog_channel(), sku.as_str())
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Tells every door to re-read a sale's settings now, rather than at its next refresh.
    pub async fn announce_sale_change(&self, sale: &SaleId) -> Result<()> {
        redis::cmd("PUBLISH")
            .arg(self.keys().sales_channel())
            .arg(sale.as_str())
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }
}
