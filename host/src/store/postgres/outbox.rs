//! Outbound messages: idempotent enqueue (a unique key), claims with `FOR UPDATE SKIP LOCKED`
//! under fresh fencing tokens, attempt records guarded by the token in their `WHERE` clause,
//! and provider status updates. With `ordered`, only a conversation's oldest open message can
//! be claimed (per-conversation FIFO across every daemon).

use super::{PgStore, Tx, enum_text, execute, from_json, i, next_token, query, query_opt, text_enum, to_json, u};
use crate::model::{DeliveryState, StatusUpdate};
use crate::store::outbox::OutboxLease;
use crate::store::{
    Attempt, ClaimedMessage, DeadLetter, Disposition, EnqueueOutcome, MessageStatus, NewMessage, OutboxRow, Priority,
    RecordResult, StoreError,
};

const COLUMNS: &str = "id, account, recipient, conversation, body, metadata, idempotency_key, correlation_id, priority, seq, status,
    created_at, updated_at, due_at, attempts, provider_message_id, error, lease_token, lease_expires";

fn priority_of(rank: i16) -> Priority {
    match rank {
        0 => Priority::High,
        1 => Priority::Normal,
        _ => Priority::Low,
    }
}

fn row_of(r: &tokio_postgres::Row) -> Result<OutboxRow, StoreError> {
    let lease = match (r.get::<_, Option<i64>>("lease_token"), r.get::<_, Option<i64>>("lease_expires")) {
        (Some(t), Some(e)) => Some(OutboxLease { token: u(t), expires_at_ms: u(e) }),
        _ => None,
    };
    Ok(OutboxRow {
        id: r.get("id"),
        account: r.get("account"),
        to: r.get("recipient"),
        conversation: r.get("conversation"),
        body: from_json("outbox", r.get("body"))?,
        metadata: r.get("metadata"),
        idempotency_key: r.get("idempotency_key"),
        correlation_id: r.get("correlation_id"),
        priority: priority_of(r.get("priority")),
        seq: u(r.get("seq")),
        status: text_enum("outbox", r.get("status"))?,
        created_at_ms: u(r.get("created_at")),
        updated_at_ms: u(r.get("updated_at")),
        due_at_ms: r.get::<_, Option<i64>>("due_at").map(u),
        attempts: from_json("outbox", r.get("attempts"))?,
        provider_message_id: r.get("provider_message_id"),
        error: r.get::<_, Option<serde_json::Value>>("error").map(|e| from_json("outbox", e)).transpose()?,
        lease,
    })
}

/// Writes every mutable column of `row` back (the row is locked by the caller).
async fn save(tx: &Tx<'_>, row: &OutboxRow, open: bool) -> Result<(), StoreError> {
    execute(
        tx,
        "UPDATE outbox SET status = $2, updated_at = $3, due_at = $4, attempts = $5, provider_message_id = $6, error = $7,
             lease_token = $8, lease_expires = $9, open = $10
         WHERE id = $1",
        &[
            &row.id,
            &enum_text(&row.status),
            &i(row.updated_at_ms),
            &row.due_at_ms.map(i),
            &to_json(&row.attempts),
            &row.provider_message_id,
            &row.error.as_ref().map(to_json),
            &row.lease.as_ref().map(|l| i(l.token)),
            &row.lease.as_ref().map(|l| i(l.expires_at_ms)),
            &open,
        ],
    )
    .await?;
    Ok(())
}

async fn load_locked(tx: &Tx<'_>, id: &str) -> Result<Option<OutboxRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1 FOR UPDATE");
    query_opt(tx, &sql, &[&id]).await?.as_ref().map(row_of).transpose()
}

/// Puts a (re-driven) message back in line; `false` if it no longer exists.
pub(super) async fn requeue(tx: &Tx<'_>, id: &str, now: u64) -> Result<bool, StoreError> {
    let Some(mut row) = load_locked(tx, id).await? else { return Ok(false) };
    row.status = MessageStatus::Queued;
    row.lease = None;
    row.error = None;
    row.updated_at_ms = now;
    row.due_at_ms = Some(now);
    save(tx, &row, true).await?;
    Ok(true)
}

async fn queued(tx: &Tx<'_>, account: &str) -> Result<u64, StoreError> {
    let row = query_opt(tx, "SELECT count(*) FROM outbox WHERE account = $1 AND open", &[&account]).await?;
    Ok(row.map_or(0, |r| u(r.get(0))))
}

/// The existing message of an idempotency key, or the key's conflict.
async fn by_key(tx: &Tx<'_>, key: &str, fingerprint: &str) -> Result<Option<EnqueueOutcome>, StoreError> {
    let Some(rec) = query_opt(tx, "SELECT message_id, fingerprint FROM idempotency WHERE key = $1", &[&key]).await? else {
        return Ok(None);
    };
    let (id, fp): (String, String) = (rec.get(0), rec.get(1));
    if fp != fingerprint {
        return Ok(Some(EnqueueOutcome::KeyConflict { id }));
    }
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
    Ok(query_opt(tx, &sql, &[&id]).await?.as_ref().map(row_of).transpose()?.map(EnqueueOutcome::Existing))
}

pub(super) async fn enqueue_in(tx: &Tx<'_>, msg: NewMessage, id: String, now: u64) -> Result<EnqueueOutcome, StoreError> {
    if let Some(key) = &msg.idempotency_key
        && let Some(found) = by_key(tx, key, &msg.fingerprint).await?
    {
        return Ok(found);
    }
    let queued = queued(tx, &msg.account).await?;
    if queued >= msg.max_queued {
        return Ok(EnqueueOutcome::QueueFull { queued });
    }
    if let Some(window) = msg.window_ms {
        let sql = "SELECT last_inbound FROM conversations WHERE account = $1 AND conversation = $2";
        let last = query_opt(tx, sql, &[&msg.account, &msg.conversation]).await?.and_then(|r| r.get::<_, Option<i64>>(0)).map(u);
        if let Some(last) = last
            && now >= last + window
        {
            return Ok(EnqueueOutcome::OutsideWindow { closed_at_ms: last + window });
        }
    }
    let history = msg.history;
    if let Some(h) = &history
        && let Some(open) = super::history::refuses_session(tx, &msg.account, &msg.conversation, now, h).await?
    {
        return Ok(EnqueueOutcome::SessionLimit { open });
    }
    if let Some(key) = &msg.idempotency_key {
        // Another daemon may have taken the key since the look-up: the unique key decides.
        let inserted = execute(
            tx,
            "INSERT INTO idempotency (key, message_id, fingerprint, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
            &[key, &id, &msg.fingerprint, &i(now + msg.idempotency_ttl_ms)],
        )
        .await?;
        if inserted == 0 {
            return match by_key(tx, key, &msg.fingerprint).await? {
                Some(found) => Ok(found),
                None => Err(StoreError::Postgres(format!("idempotency key `{key}` vanished while enqueueing"))),
            };
        }
    }
    let seq = u(query_opt(tx, "SELECT nextval('outbox_seq')", &[]).await?.expect("nextval returns a row").get(0));
    let row = OutboxRow::queued(id.clone(), msg, seq, now);
    execute(
        tx,
        "INSERT INTO outbox (id, account, recipient, conversation, body, metadata, idempotency_key, correlation_id, priority, seq,
             status, created_at, updated_at, due_at, attempts, open)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $12, '[]', true)",
        &[
            &row.id,
            &row.account,
            &row.to,
            &row.conversation,
            &to_json(&row.body),
            &row.metadata,
            &row.idempotency_key,
            &row.correlation_id,
            &(row.priority.rank() as i16),
            &i(seq),
            &enum_text(&row.status),
            &i(now),
        ],
    )
    .await?;
    if let Some(h) = &history {
        super::history::record_outbound(tx, &row, now, h).await?;
    }
    Ok(EnqueueOutcome::Created(row))
}

impl PgStore {
    pub async fn enqueue(&self, msg: NewMessage) -> Result<EnqueueOutcome, StoreError> {
        let now = self.now_ms();
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        self.batch.enqueue(msg, id, now).await
    }

    pub async fn message(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
        let row = query_opt(&tx, &sql, &[&id]).await?;
        tx.commit().await?;
        row.as_ref().map(row_of).transpose()
    }

    /// Claims up to `max` due messages, in priority then due-time order, each under a fresh
    /// fencing token. Rows another daemon is claiming right now are skipped, not waited for.
    pub async fn claim_outbox(&self, max: usize, lease_ms: u64, ordered: bool) -> Result<Vec<ClaimedMessage>, StoreError> {
        let now = self.now_ms();
        let expires = now + lease_ms;
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // The head check reads committed state: a head in flight elsewhere is still open, so
        // the messages behind it stay put.
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox o
             WHERE due_at IS NOT NULL AND due_at <= $1
               AND (NOT $2 OR NOT EXISTS (
                   SELECT 1 FROM outbox h WHERE h.open AND h.account = o.account AND h.conversation = o.conversation AND h.seq < o.seq))
             ORDER BY priority, due_at, id LIMIT $3 FOR UPDATE SKIP LOCKED"
        );
        let rows = query(&tx, &sql, &[&i(now), &ordered, &(max.min(10_000) as i64)]).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut row = row_of(r)?;
            let token = next_token(&tx).await?;
            let reclaimed = row.lease.is_some();
            row.status = MessageStatus::Sending;
            row.lease = Some(OutboxLease { token, expires_at_ms: expires });
            row.updated_at_ms = now;
            row.due_at_ms = Some(expires);
            save(&tx, &row, true).await?;
            claimed.push(ClaimedMessage { row, token, reclaimed });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// `Some(now)` if a message is due now, else `None` (a read: idle workers look before they
    /// claim; they poll a shared store, so "when" would buy nothing). With `ordered`, a
    /// message waiting behind its conversation's head does not count.
    pub async fn next_outbox_due(&self, ordered: bool) -> Result<Option<u64>, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(
            &tx,
            "SELECT EXISTS (SELECT 1 FROM outbox o WHERE due_at IS NOT NULL AND due_at <= $1
                 AND (NOT $2 OR NOT EXISTS (
                     SELECT 1 FROM outbox h WHERE h.open AND h.account = o.account AND h.conversation = o.conversation AND h.seq < o.seq)))",
            &[&i(now), &ordered],
        )
        .await?;
        tx.commit().await?;
        Ok(row.is_some_and(|r| r.get(0)).then_some(now))
    }

    /// Extends a held lease (heartbeat). `false`: the lease is gone; stop working on it.
    pub async fn renew_outbox_lease(&self, id: String, token: u64, lease_ms: u64) -> Result<bool, StoreError> {
        let at = self.now_ms() + lease_ms;
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let n = execute(
            &tx,
            "UPDATE outbox SET lease_expires = $3, due_at = $3 WHERE id = $1 AND lease_token = $2",
            &[&id, &i(token), &i(at)],
        )
        .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records an attempt (if any) and its disposition, if `token` still holds the lease.
    pub async fn record_attempt(&self, id: String, token: u64, attempt: Option<Attempt>, disposition: Disposition) -> Result<RecordResult, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1 AND lease_token = $2 FOR UPDATE");
        let Some(r) = query_opt(&tx, &sql, &[&id, &i(token)]).await? else {
            return Ok(RecordResult::Fenced);
        };
        let mut row = row_of(&r)?;
        row.lease = None;
        row.updated_at_ms = now;
        row.attempts.extend(attempt);
        let mut open = true;
        match disposition {
            Disposition::Delivered { provider_message_id } => {
                row.due_at_ms = None;
                // A status webhook may have raced ahead of us; never move back from it.
                if row.status.rank() < MessageStatus::Sent.rank() {
                    row.status = MessageStatus::Sent;
                }
                // The provider id is unique per account: a stale mapping to another message
                // (the provider reused an id) moves to this one, as redb's index entry does.
                execute(
                    &tx,
                    "UPDATE outbox SET provider_message_id = NULL WHERE account = $1 AND provider_message_id = $2 AND id <> $3",
                    &[&row.account, &provider_message_id, &row.id],
                )
                .await?;
                row.provider_message_id = Some(provider_message_id);
                open = false;
            }
            Disposition::RetryAt(at) => {
                row.status = MessageStatus::Retrying;
                row.due_at_ms = Some(at);
            }
            Disposition::Deferred(at) => {
                row.status = if row.attempts.is_empty() { MessageStatus::Queued } else { MessageStatus::Retrying };
                row.due_at_ms = Some(at);
            }
            Disposition::Failed(failure) => {
                row.due_at_ms = None;
                row.status = MessageStatus::Failed;
                super::dlq::put(&tx, &DeadLetter::outbound(&row, format!("{}: {}", failure.code, failure.reason), now)).await?;
                row.error = Some(failure);
                open = false;
            }
        }
        save(&tx, &row, open).await?;
        tx.commit().await?;
        Ok(RecordResult::Recorded(row.status))
    }

    /// Unfinished messages of an account (what the queue cap counts).
    pub async fn queued_count(&self, account: &str) -> Result<u64, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let n = queued(&tx, account).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Messages by status, newest first (ids are time-ordered), at most `limit`.
    pub async fn list_messages(&self, status: Option<MessageStatus>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE ($1::text IS NULL OR status = $1) ORDER BY id DESC LIMIT $2");
        let rows = query(&tx, &sql, &[&status.map(|s| enum_text(&s)), &(limit.min(i64::MAX as usize) as i64)]).await?;
        tx.commit().await?;
        rows.iter().map(row_of).collect()
    }

    /// Deletes up to `limit` idempotency keys older than their TTL; returns how many.
    pub async fn sweep_idempotency(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let n = execute(
            &tx,
            "DELETE FROM idempotency WHERE key IN (
                 SELECT key FROM idempotency WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&i(now), &(limit as i64)],
        )
        .await?;
        tx.commit().await?;
        Ok(n as usize)
    }
}

/// Applies a provider status webhook to the message it names (inside the ingest transaction).
/// Returns whether a message was found and changed.
pub(super) async fn apply_status(tx: &Tx<'_>, account: &str, update: &StatusUpdate, now: u64) -> Result<bool, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE account = $1 AND provider_message_id = $2 FOR UPDATE");
    let Some(r) = query_opt(tx, &sql, &[&account, &update.provider_message_id]).await? else { return Ok(false) };
    let row = row_of(&r)?;
    let next = match update.state {
        DeliveryState::Sent => MessageStatus::Sent,
        DeliveryState::Delivered => MessageStatus::Delivered,
        DeliveryState::Read => MessageStatus::Read,
        DeliveryState::Failed => MessageStatus::Failed,
    };
    if next.rank() <= row.status.rank() {
        return Ok(false);
    }
    let error = update.error.as_ref().map(to_json).or_else(|| row.error.as_ref().map(to_json));
    execute(
        tx,
        "UPDATE outbox SET status = $2, error = $3, updated_at = $4 WHERE id = $1",
        &[&row.id, &enum_text(&next), &error, &i(now)],
    )
    .await?;
    Ok(true)
}
