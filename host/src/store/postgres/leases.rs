//! Resource leases as rows: `leases(resource PRIMARY KEY, holder, token, expires_at)`. A grant
//! takes its token from `fence_seq`, so tokens grow across daemons; the row lock taken by the
//! upsert serialises two daemons asking for the same resource.

use super::{PgStore, Tx, execute, i, next_token, query_opt, u};
use crate::store::{Acquire, LeaseRecord, StoreError};

fn record(row: &tokio_postgres::Row) -> LeaseRecord {
    LeaseRecord { holder: row.get("holder"), token: u(row.get("token")), expires_at_ms: u(row.get("expires_at")) }
}

/// Whether `token` is the live lease on `resource` at `now`, checked (and the row locked
/// against a concurrent re-grant) inside the caller's transaction.
pub(super) async fn lease_holds(tx: &Tx<'_>, resource: &str, token: u64, now: u64) -> Result<bool, StoreError> {
    let row = query_opt(
        tx,
        "SELECT 1 FROM leases WHERE resource = $1 AND token = $2 AND expires_at > $3 FOR SHARE",
        &[&resource, &i(token), &i(now)],
    )
    .await?;
    Ok(row.is_some())
}

impl PgStore {
    pub async fn lease_acquire(&self, resource: &str, holder: &str, ttl_ms: u64) -> Result<Acquire, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // One statement makes sure the row exists and locks it: whoever comes second sees the
        // first's grant. (An `INSERT ... DO NOTHING` then `SELECT ... FOR UPDATE` found no row
        // when another daemon's release deleted it between the two: CI caught it with two
        // daemons polling one Telegram bot.) A conflicting row is kept as it is: the no-op
        // update only takes its lock and returns it.
        let cur = query_opt(
            &tx,
            "INSERT INTO leases (resource, holder, token, expires_at) VALUES ($1, '', 0, 0) \
             ON CONFLICT (resource) DO UPDATE SET resource = EXCLUDED.resource RETURNING holder, token, expires_at",
            &[&resource],
        )
        .await?
        .map(|r| record(&r))
        .ok_or_else(|| StoreError::Postgres("lease upsert returned no row".into()))?;
        if cur.expires_at_ms > now && cur.holder != holder {
            tx.commit().await?;
            return Ok(Acquire::Busy(cur));
        }
        let rec = LeaseRecord { holder: holder.to_string(), token: next_token(&tx).await?, expires_at_ms: now + ttl_ms };
        execute(
            &tx,
            "UPDATE leases SET holder = $2, token = $3, expires_at = $4 WHERE resource = $1",
            &[&resource, &rec.holder, &i(rec.token), &i(rec.expires_at_ms)],
        )
        .await?;
        tx.commit().await?;
        Ok(Acquire::Granted(rec))
    }

    /// Extends the lease if `token` still holds it; `false` means it was lost.
    pub async fn lease_renew(&self, resource: &str, token: u64, ttl_ms: u64) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let n = execute(
            &tx,
            "UPDATE leases SET expires_at = $4 WHERE resource = $1 AND token = $2 AND expires_at > $3",
            &[&resource, &i(token), &i(now), &i(now + ttl_ms)],
        )
        .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn lease_release(&self, resource: &str, token: u64) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let n = execute(&tx, "DELETE FROM leases WHERE resource = $1 AND token = $2", &[&resource, &i(token)]).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    pub async fn lease_get(&self, resource: &str) -> Result<Option<LeaseRecord>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT holder, token, expires_at FROM leases WHERE resource = $1 AND token > 0", &[&resource]).await?;
        tx.commit().await?;
        Ok(row.map(|r| record(&r)))
    }
}
