//! What operations need: a census of the outbox for `/metrics` and a round trip for the
//! watchdog. The online backup is redb's; PostgreSQL has its own tools (`pg_dump`, base
//! backups, replicas).

use super::{PgStore, i, query, query_opt, text_enum, u};
use crate::store::{BackupSummary, MessageStatus, OutboxCensus, StoreError};
use std::path::Path;

impl PgStore {
    pub async fn backup_to(&self, _path: &Path) -> Result<BackupSummary, StoreError> {
        Err(StoreError::Unsupported { op: "the online backup", backend: "postgres", hint: "back up the database with pg_dump or a base backup" })
    }

    /// Unfinished outbox messages by status and how long the oldest due one has waited.
    pub async fn outbox_census(&self) -> Result<OutboxCensus, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let rows = query(
            &tx,
            "SELECT status, (status = 'sending' AND lease_expires > $1) AS live, count(*), min(due_at) FILTER (WHERE due_at <= $1)
             FROM outbox WHERE due_at IS NOT NULL GROUP BY 1, 2",
            &[&i(now)],
        )
        .await?;
        let stored = query_opt(&tx, "SELECT count(*) FROM outbox", &[]).await?.map_or(0, |r| u(r.get(0)));
        tx.commit().await?;
        let mut census = OutboxCensus { stored, ..Default::default() };
        for r in rows {
            let status: MessageStatus = text_enum("outbox", r.get(0))?;
            let live: bool = r.get(1);
            let n = u(r.get(2));
            match status {
                MessageStatus::Queued => census.queued += n,
                MessageStatus::Sending if live => census.sending += n,
                // A lease that ran out (its holder died) is waiting again.
                MessageStatus::Sending => census.queued += n,
                MessageStatus::Retrying => census.retrying += n,
                _ => {}
            }
            if let Some(at) = r.get::<_, Option<i64>>(3).map(u) {
                census.oldest_due_ms = Some(census.oldest_due_ms.map_or(at, |o| o.min(at)));
            }
        }
        Ok(census)
    }

    /// One round trip through a pooled connection and a commit.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        query(&tx, "SELECT 1", &[]).await?;
        tx.commit().await?;
        Ok(())
    }
}
