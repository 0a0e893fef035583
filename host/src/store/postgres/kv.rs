//! Plugin key/value storage, namespaced by plugin name so plugins never see each other's keys.

use super::{PgStore, execute, query_opt};
use crate::store::StoreError;

impl PgStore {
    pub async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2", &[&plugin, &key]).await?;
        tx.commit().await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// `None` deletes the key.
    pub async fn kv_set(&self, plugin: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        match value {
            Some(v) => {
                execute(
                    &tx,
                    "INSERT INTO plugin_kv (plugin, key, value) VALUES ($1, $2, $3) ON CONFLICT (plugin, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&plugin, &key, &v],
                )
                .await?
            }
            None => execute(&tx, "DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2", &[&plugin, &key]).await?,
        };
        tx.commit().await?;
        Ok(())
    }
}
