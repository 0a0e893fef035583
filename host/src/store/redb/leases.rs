//! Resource leases with fencing tokens (e.g. `poll:<account>`: one poller per bot across all
//! processes sharing the store). A grant always carries a token larger than any before it, and
//! writes made under a lease check it in the same transaction ([`lease_holds`]).

use crate::store::leases::*;
use super::tables::{self, LEASES};
use super::{RedbStore, StoreError};
use redb::{ReadableTable, WriteTransaction};


fn get(txn: &WriteTransaction, resource: &str) -> Result<Option<LeaseRecord>, StoreError> {
    txn.open_table(LEASES)?.get(resource)?.map(|v| tables::decode("leases", v.value())).transpose()
}

fn put(txn: &WriteTransaction, resource: &str, rec: &LeaseRecord) -> Result<(), StoreError> {
    txn.open_table(LEASES)?.insert(resource, tables::encode(rec).as_slice())?;
    Ok(())
}

/// Whether `token` is the live lease on `resource` at `now`: the check a guarded write makes
/// inside its own transaction.
pub(super) fn lease_holds(txn: &WriteTransaction, resource: &str, token: u64, now: u64) -> Result<bool, StoreError> {
    Ok(get(txn, resource)?.is_some_and(|l| l.token == token && l.expires_at_ms > now))
}

impl RedbStore {
    pub async fn lease_acquire(&self, resource: &str, holder: &str, ttl_ms: u64) -> Result<Acquire, StoreError> {
        let (resource, holder, now) = (resource.to_string(), holder.to_string(), self.now_ms());
        self.write(move |txn| {
            if let Some(cur) = get(txn, &resource)?
                && cur.expires_at_ms > now
                && cur.holder != holder
            {
                return Ok(Acquire::Busy(cur));
            }
            let rec = LeaseRecord { holder, token: tables::next_counter(txn, "fence")?, expires_at_ms: now + ttl_ms };
            put(txn, &resource, &rec)?;
            Ok(Acquire::Granted(rec))
        })
        .await
    }

    /// Extends the lease if `token` still holds it; `false` means it was lost.
    pub async fn lease_renew(&self, resource: &str, token: u64, ttl_ms: u64) -> Result<bool, StoreError> {
        let (resource, now) = (resource.to_string(), self.now_ms());
        self.write(move |txn| {
            if !lease_holds(txn, &resource, token, now)? {
                return Ok(false);
            }
            let mut rec = get(txn, &resource)?.expect("checked above");
            rec.expires_at_ms = now + ttl_ms;
            put(txn, &resource, &rec)?;
            Ok(true)
        })
        .await
    }

    pub async fn lease_release(&self, resource: &str, token: u64) -> Result<bool, StoreError> {
        let resource = resource.to_string();
        self.write(move |txn| {
            if get(txn, &resource)?.is_some_and(|l| l.token == token) {
                txn.open_table(LEASES)?.remove(resource.as_str())?;
                return Ok(true);
            }
            Ok(false)
        })
        .await
    }
}
