//! Plugin key/value storage, namespaced by plugin name so plugins never see each other's keys.

use super::tables::{PLUGIN_KV, key2};
use super::{RedbStore, StoreError};

impl RedbStore {
    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(PLUGIN_KV)?;
        Ok(t.get(key2(plugin, key).as_str())?.map(|v| v.value().to_vec()))
    }

    /// `None` deletes the key.
    pub async fn kv_set(&self, plugin: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        let k = key2(plugin, key);
        self.write(move |txn| {
            let mut t = txn.open_table(PLUGIN_KV)?;
            match value {
                Some(v) => t.insert(k.as_str(), v.as_slice())?,
                None => t.remove(k.as_str())?,
            };
            Ok(())
        })
        .await
    }
}
