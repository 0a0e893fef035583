//! The push queue: inbox events of accounts with `deliver_to`, delivered under fenced leases,
//! in order per conversation (only a conversation's oldest undelivered event is claimable),
//! retried with backoff and dead-lettered like outbound messages.

use super::{PgStore, Tx, execute, from_json, i, next_token, query, query_opt, to_json, u};
use crate::store::inbox::InboxRow;
use crate::store::push::PushLease;
use crate::store::{ClaimedPush, DeadLetter, PushDisposition, PushRow, StoreError};

const COLUMNS: &str = "id, account, correlation_id, received_at, attempts, due_at, lease_token, lease_expires, last_error, event";

fn row_of(r: &tokio_postgres::Row) -> Result<PushRow, StoreError> {
    let lease = match (r.get::<_, Option<i64>>("lease_token"), r.get::<_, Option<i64>>("lease_expires")) {
        (Some(t), Some(e)) => Some(PushLease { token: u(t), expires_at_ms: u(e) }),
        _ => None,
    };
    Ok(PushRow {
        id: u(r.get("id")),
        account: r.get("account"),
        correlation_id: r.get("correlation_id"),
        received_at_ms: u(r.get("received_at")),
        attempts: r.get::<_, i32>("attempts") as u32,
        due_at_ms: u(r.get("due_at")),
        lease,
        last_error: r.get("last_error"),
        event: from_json("push_queue", r.get("event"))?,
    })
}

/// Queues an ingested event for push (inside the ingest transaction).
pub(super) async fn enqueue_in(tx: &Tx<'_>, inbox: &InboxRow, now: u64) -> Result<(), StoreError> {
    let row = PushRow {
        id: inbox.id,
        account: inbox.account.clone(),
        correlation_id: inbox.correlation_id.clone(),
        received_at_ms: inbox.received_at_ms,
        attempts: 0,
        due_at_ms: now,
        lease: None,
        last_error: None,
        event: inbox.event.clone(),
    };
    requeue_in(tx, row, now).await
}

/// Puts a row (new or redriven) in its conversation's queue, due at `now`.
pub(super) async fn requeue_in(tx: &Tx<'_>, row: PushRow, now: u64) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO push_queue (id, account, conversation, correlation_id, received_at, attempts, due_at, last_error, event)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET attempts = EXCLUDED.attempts, due_at = EXCLUDED.due_at, last_error = EXCLUDED.last_error,
             lease_token = NULL, lease_expires = NULL",
        &[
            &i(row.id),
            &row.account,
            &row.event.conversation,
            &row.correlation_id,
            &i(row.received_at_ms),
            &(row.attempts as i32),
            &i(now),
            &row.last_error,
            &to_json(&row.event),
        ],
    )
    .await?;
    Ok(())
}

impl PgStore {
    /// Claims up to `max` due events, each the head of its conversation, under fresh fencing
    /// tokens; a claimed event is due again at its lease expiry.
    pub async fn claim_push(&self, max: usize, lease_ms: u64) -> Result<Vec<ClaimedPush>, StoreError> {
        let now = self.now_ms();
        let expires = now + lease_ms;
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM push_queue p
             WHERE due_at <= $1
               AND NOT EXISTS (SELECT 1 FROM push_queue h WHERE h.account = p.account AND h.conversation = p.conversation AND h.id < p.id)
             ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        let rows = query(&tx, &sql, &[&i(now), &(max.min(10_000) as i64)]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut row = row_of(r)?;
            let token = next_token(&tx).await?;
            execute(
                &tx,
                "UPDATE push_queue SET due_at = $2, lease_token = $3, lease_expires = $2 WHERE id = $1",
                &[&i(row.id), &i(expires), &i(token)],
            )
            .await?;
            row.due_at_ms = expires;
            row.lease = Some(PushLease { token, expires_at_ms: expires });
            out.push(ClaimedPush { row, token });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// `Some(now)` if a push delivery is due now, else `None` (a read; see
    /// [`PgStore::next_outbox_due`]).
    pub async fn next_push_due(&self) -> Result<Option<u64>, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT EXISTS (SELECT 1 FROM push_queue WHERE due_at <= $1)", &[&i(now)]).await?;
        tx.commit().await?;
        Ok(row.is_some_and(|r| r.get(0)).then_some(now))
    }

    /// Records an attempt's outcome if `token` still holds the lease; `false`: fenced off.
    pub async fn record_push(&self, id: u64, token: u64, disposition: PushDisposition) -> Result<bool, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let sql = format!("SELECT {COLUMNS} FROM push_queue WHERE id = $1 AND lease_token = $2 FOR UPDATE");
        let Some(r) = query_opt(&tx, &sql, &[&i(id), &i(token)]).await? else { return Ok(false) };
        let mut row = row_of(&r)?;
        row.lease = None;
        row.attempts += 1;
        match disposition {
            PushDisposition::Delivered => {
                execute(&tx, "DELETE FROM push_queue WHERE id = $1", &[&i(id)]).await?;
            }
            PushDisposition::RetryAt { at_ms, error } => {
                execute(
                    &tx,
                    "UPDATE push_queue SET attempts = $2, due_at = $3, last_error = $4, lease_token = NULL, lease_expires = NULL WHERE id = $1",
                    &[&i(id), &(row.attempts as i32), &i(at_ms), &error],
                )
                .await?;
            }
            PushDisposition::Failed(reason) => {
                execute(&tx, "DELETE FROM push_queue WHERE id = $1", &[&i(id)]).await?;
                row.last_error = Some(reason.clone());
                super::dlq::put(&tx, &DeadLetter::push(&row, reason, now)).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Events waiting for push delivery (in flight included).
    pub async fn push_len(&self) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT count(*) FROM push_queue", &[]).await?.expect("count returns a row");
        tx.commit().await?;
        Ok(u(row.get(0)))
    }
}
