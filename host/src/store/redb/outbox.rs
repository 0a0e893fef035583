//! Outbound messages: idempotent enqueue, claim with a fenced lease, attempt records, and
//! provider status updates.

use crate::store::outbox::*;
use super::dlq;
use crate::store::dlq::DeadLetter;
use super::tables::{self, CONV_QUEUE, IDEMPOTENCY, IDEMPOTENCY_EXPIRY, OUTBOX, OUTBOX_BY_PROVIDER, OUTBOX_DUE, key2};
use super::shared::{HotTables, SharedTables};
use super::{RedbStore, StoreError, history};
use crate::model::{DeliveryState, StatusUpdate};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};


#[derive(Serialize, Deserialize)]
struct IdemRecord {
    id: String,
    fingerprint: String,
}

impl RedbStore {
    pub async fn enqueue(&self, msg: NewMessage) -> Result<EnqueueOutcome, StoreError> {
        let now = self.now_ms();
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        self.write_shared(move |shared| enqueue_in(shared, msg, id, now)).await
    }

    pub fn message(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(OUTBOX)?;
        t.get(id)?.map(|v| tables::decode("outbox", v.value())).transpose()
    }

    /// Claims up to `max` due messages, in priority then due-time order, each under a fresh
    /// fencing token. With `ordered`, only the oldest unfinished message of a conversation
    /// can be claimed, so a conversation has at most one delivery in flight.
    pub async fn claim_outbox(&self, max: usize, lease_ms: u64, ordered: bool) -> Result<Vec<ClaimedMessage>, StoreError> {
        let now = self.now_ms();
        self.write_shared(move |shared| claim_in(shared.tables()?, max, lease_ms, ordered, now)).await
    }

    /// Extends a held lease (heartbeat). `false`: the lease is gone; stop working on it.
    pub async fn renew_outbox_lease(&self, id: String, token: u64, lease_ms: u64) -> Result<bool, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let mut outbox = txn.open_table(OUTBOX)?;
            let Some(mut row) = load(&outbox, &id)? else { return Ok(false) };
            match &mut row.lease {
                Some(l) if l.token == token => l.expires_at_ms = now + lease_ms,
                _ => return Ok(false),
            }
            move_due(txn, &mut row, Some(now + lease_ms))?;
            outbox.insert(id.as_str(), tables::encode(&row).as_slice())?;
            Ok(true)
        })
        .await
    }

    /// Records an attempt (if any) and its disposition, if `token` still holds the lease.
    pub async fn record_attempt(
        &self,
        id: String,
        token: u64,
        attempt: Option<Attempt>,
        disposition: Disposition,
    ) -> Result<RecordResult, StoreError> {
        let now = self.now_ms();
        self.write_shared(move |shared| record_in(shared, &id, token, attempt, disposition, now)).await
    }

    /// When the next message is due: the earliest entry of each priority's due index (a
    /// read: idle workers look before they claim, so an idle daemon commits no empty claim
    /// transaction, an fsync, and sleep until then).
    pub fn next_outbox_due(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let due = txn.open_table(OUTBOX_DUE)?;
        let mut next: Option<u64> = None;
        for rank in 0..3u8 {
            if let Some(r) = due.range((rank, 0, "")..(rank + 1, 0, ""))?.next() {
                let at = r?.0.value().1;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(next)
    }

    /// Unfinished messages of an account (what the queue cap counts).
    pub fn queued_count(&self, account: &str) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(tables::META)?;
        Ok(meta.get(queued_key(account).as_str())?.map_or(0, |v| v.value()))
    }

    /// Messages by status, newest first, at most `limit`.
    pub fn list_messages(&self, status: Option<MessageStatus>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(OUTBOX)?;
        let mut out = Vec::new();
        for r in t.iter()?.rev() {
            let (_, v) = r?;
            let row: OutboxRow = tables::decode("outbox", v.value())?;
            if status.is_none_or(|s| s == row.status) {
                out.push(row);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Deletes up to `limit` idempotency keys older than their TTL; returns how many.
    pub async fn sweep_idempotency(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let mut exp = txn.open_table(IDEMPOTENCY_EXPIRY)?;
            let mut idem = txn.open_table(IDEMPOTENCY)?;
            let expired: Vec<(u64, String)> = exp
                .range((0, "")..(now + 1, ""))?
                .take(limit)
                .map(|r| r.map(|(k, _)| (k.value().0, k.value().1.to_string())))
                .collect::<Result<_, _>>()?;
            for (at, key) in &expired {
                exp.remove((*at, key.as_str()))?;
                idem.remove(key.as_str())?;
            }
            Ok(expired.len())
        })
        .await
    }
}

fn queued_key(account: &str) -> String {
    format!("queued\0{account}")
}

fn conv_key(row: &OutboxRow) -> String {
    key2(&row.account, &row.conversation)
}

/// Moves the row's due-index entry to `due` (or removes it with `None`).
fn move_due(txn: &WriteTransaction, row: &mut OutboxRow, due: Option<u64>) -> Result<(), StoreError> {
    move_due_in(&mut txn.open_table(OUTBOX_DUE)?, row, due)
}

/// [`move_due`] on an open due index.
fn move_due_in(t: &mut redb::Table<'_, (u8, u64, &'static str), ()>, row: &mut OutboxRow, due: Option<u64>) -> Result<(), StoreError> {
    let rank = row.priority.rank();
    if let Some(at) = row.due_at_ms.take() {
        t.remove((rank, at, row.id.as_str()))?;
    }
    if let Some(at) = due {
        t.insert((rank, at, row.id.as_str()), ())?;
    }
    row.due_at_ms = due;
    Ok(())
}

/// Removes a message that reached a final state from its conversation queue and the
/// account's queued count, and puts the conversation's next message (if a claim parked it)
/// back in the due index.
fn finish(t: &mut HotTables<'_>, row: &OutboxRow, now: u64) -> Result<(), StoreError> {
    let key = conv_key(row);
    t.conv_queue.remove((key.as_str(), row.seq))?;
    let next = t.conv_queue.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?.next().transpose()?.map(|(_, id)| id.value().to_string());
    t.add_counter(&queued_key(&row.account), -1)?;
    if let Some(id) = next
        && let Some(mut head) = load(&t.outbox, &id)?
        && head.due_at_ms.is_none()
        && matches!(head.status, MessageStatus::Queued | MessageStatus::Retrying)
    {
        move_due_in(&mut t.outbox_due, &mut head, Some(now))?;
        t.outbox.insert(id.as_str(), tables::encode(&head).as_slice())?;
    }
    Ok(())
}

/// Puts a (re-driven) message back in line.
pub(super) fn requeue(txn: &WriteTransaction, row: &mut OutboxRow, now: u64) -> Result<(), StoreError> {
    row.status = MessageStatus::Queued;
    row.lease = None;
    row.error = None;
    row.updated_at_ms = now;
    move_due(txn, row, Some(now))?;
    txn.open_table(CONV_QUEUE)?.insert((conv_key(row).as_str(), row.seq), row.id.as_str())?;
    tables::add_counter(txn, &queued_key(&row.account), 1)?;
    txn.open_table(OUTBOX)?.insert(row.id.as_str(), tables::encode(&*row).as_slice())?;
    Ok(())
}

pub(super) fn load(t: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> Result<Option<OutboxRow>, StoreError> {
    t.get(id)?.map(|v| tables::decode("outbox", v.value())).transpose()
}

/// Queues a message (and keeps it in its conversation's history, when asked) in the batch's
/// transaction, on its shared open tables. Everything that may refuse it is checked before
/// anything is written. The conversation's row is read once, for the window, the session cap
/// and the history it then records.
fn enqueue_in(shared: &mut SharedTables<'_>, msg: NewMessage, id: String, now: u64) -> Result<EnqueueOutcome, StoreError> {
    let t = shared.tables()?;
    if let Some(refused) = refusal(t, &msg)? {
        return Ok(refused);
    }
    let history = msg.history;
    let mut state = match (msg.window_ms, &history) {
        (None, None) => None,
        _ => Some(history::ConversationState::load(t, &key2(&msg.account, &msg.conversation))?),
    };
    if let (Some(window), Some(last)) = (msg.window_ms, state.as_ref().and_then(|s| s.last_inbound_ms))
        && now >= last + window
    {
        return Ok(EnqueueOutcome::OutsideWindow { closed_at_ms: last + window });
    }
    if let (Some(h), Some(s)) = (&history, &state)
        && !s.session_open(now, h.session_timeout_ms)
    {
        // This conversation's own row is not among those `open_sessions` may rewrite: it
        // rewrites only conversations still active, and this one is not.
        let open = history::open_sessions(t, &msg.account, now, h)?;
        if open >= h.max_open_sessions {
            return Ok(EnqueueOutcome::SessionLimit { open });
        }
    }
    let row = insert_in(t, msg, id, now)?;
    if let (Some(h), Some(state)) = (&history, state.as_mut()) {
        let (inbox, t) = shared.inbox_and_tables()?;
        history::record_outbound(t, inbox, &row, state, now, h)?;
    }
    Ok(EnqueueOutcome::Created(row))
}

/// The answer for a message that is not queued now: its idempotency key was seen, or the
/// account's queue is full.
fn refusal(t: &HotTables<'_>, msg: &NewMessage) -> Result<Option<EnqueueOutcome>, StoreError> {
    if let Some(key) = &msg.idempotency_key {
        let existing: Option<IdemRecord> =
            t.idempotency.get(key.as_str())?.map(|v| tables::decode("idempotency", v.value())).transpose()?;
        if let Some(rec) = existing {
            if rec.fingerprint != msg.fingerprint {
                return Ok(Some(EnqueueOutcome::KeyConflict { id: rec.id }));
            }
            if let Some(row) = load(&t.outbox, &rec.id)? {
                return Ok(Some(EnqueueOutcome::Existing(row)));
            }
        }
    }
    let queued = t.read_counter(&queued_key(&msg.account))?;
    Ok((queued >= msg.max_queued).then_some(EnqueueOutcome::QueueFull { queued }))
}

fn insert_in(t: &mut HotTables<'_>, msg: NewMessage, id: String, now: u64) -> Result<OutboxRow, StoreError> {
    if let Some(key) = &msg.idempotency_key {
        let rec = IdemRecord { id: id.clone(), fingerprint: msg.fingerprint.clone() };
        t.idempotency.insert(key.as_str(), tables::encode(&rec).as_slice())?;
        t.idempotency_expiry.insert((now + msg.idempotency_ttl_ms, key.as_str()), ())?;
    }
    t.add_counter(&queued_key(&msg.account), 1)?;
    let seq = t.next_counter("outbox_seq")?;
    let row = OutboxRow::queued(id.clone(), msg, seq, now);
    t.outbox.insert(id.as_str(), tables::encode(&row).as_slice())?;
    t.outbox_due.insert((row.priority.rank(), now, id.as_str()), ())?;
    t.conv_queue.insert((conv_key(&row).as_str(), seq), id.as_str())?;
    Ok(row)
}

/// Rows a claim may examine in all (a bound on one transaction's length).
const MAX_EXAMINED_PER_CLAIM: usize = 4096;

fn claim_in(t: &mut HotTables<'_>, max: usize, lease_ms: u64, ordered: bool, now: u64) -> Result<Vec<ClaimedMessage>, StoreError> {
    let mut claimed = Vec::with_capacity(max);
    // Due rows are read in chunks. A claimed row moves to its lease expiry and a blocked one is
    // parked (each once), so both leave the due range and the next chunk starts past them; only
    // stale entries stay, and are skipped. The total examined per claim is bounded.
    let chunk = max.saturating_mul(16).max(64);
    let mut examined = 0usize;
    for rank in 0..3u8 {
        let mut stale = 0usize;
        while claimed.len() < max && examined < MAX_EXAMINED_PER_CLAIM {
            let ids: Vec<String> = t
                .outbox_due
                .range((rank, 0, "")..(rank, now + 1, ""))?
                .skip(stale)
                .take(chunk)
                .map(|r| r.map(|(k, _)| k.value().2.to_string()))
                .collect::<Result<_, _>>()?;
            if ids.is_empty() {
                break;
            }
            examined += ids.len();
            for id in ids {
                if claimed.len() >= max {
                    break;
                }
                let Some(mut row) = load(&t.outbox, &id)? else {
                    stale += 1;
                    continue;
                };
                if ordered && !is_head(&t.conv_queue, &row)? {
                    // Blocked behind its conversation's head: park it (out of the due index)
                    // until that head finishes ([`finish`] puts it back). Left in, a long
                    // blocked queue would be rescanned by every claim and could hide other
                    // conversations' due messages beyond the scan bound.
                    move_due_in(&mut t.outbox_due, &mut row, None)?;
                    t.outbox.insert(id.as_str(), tables::encode(&row).as_slice())?;
                    continue;
                }
                let token = t.next_counter("fence")?;
                let expires = now + lease_ms;
                let reclaimed = row.lease.is_some();
                row.status = MessageStatus::Sending;
                row.lease = Some(OutboxLease { token, expires_at_ms: expires });
                row.updated_at_ms = now;
                move_due_in(&mut t.outbox_due, &mut row, Some(expires))?;
                t.outbox.insert(id.as_str(), tables::encode(&row).as_slice())?;
                claimed.push(ClaimedMessage { row, token, reclaimed });
            }
        }
    }
    Ok(claimed)
}

fn is_head(queue: &impl ReadableTable<(&'static str, u64), &'static str>, row: &OutboxRow) -> Result<bool, StoreError> {
    let key = conv_key(row);
    let head = queue.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?.next().transpose()?;
    Ok(head.is_none_or(|(k, _)| k.value().1 == row.seq))
}

fn record_in(
    shared: &mut SharedTables<'_>,
    id: &str,
    token: u64,
    attempt: Option<Attempt>,
    disposition: Disposition,
    now: u64,
) -> Result<RecordResult, StoreError> {
    let t = shared.tables()?;
    let Some(mut row) = load(&t.outbox, id)? else { return Ok(RecordResult::Fenced) };
    if row.lease.as_ref().map(|l| l.token) != Some(token) {
        return Ok(RecordResult::Fenced);
    }
    row.lease = None;
    row.updated_at_ms = now;
    row.attempts.extend(attempt);
    match disposition {
        Disposition::Delivered { provider_message_id } => {
            move_due_in(&mut t.outbox_due, &mut row, None)?;
            // A status webhook may have raced ahead of us; never move back from it.
            if row.status.rank() < MessageStatus::Sent.rank() {
                row.status = MessageStatus::Sent;
            }
            t.outbox_by_provider.insert(key2(&row.account, &provider_message_id).as_str(), id)?;
            row.provider_message_id = Some(provider_message_id);
            finish(t, &row, now)?;
        }
        Disposition::RetryAt(at) => {
            row.status = MessageStatus::Retrying;
            move_due_in(&mut t.outbox_due, &mut row, Some(at))?;
        }
        Disposition::Deferred(at) => {
            row.status = if row.attempts.is_empty() { MessageStatus::Queued } else { MessageStatus::Retrying };
            move_due_in(&mut t.outbox_due, &mut row, Some(at))?;
        }
        Disposition::Failed(failure) => {
            move_due_in(&mut t.outbox_due, &mut row, None)?;
            row.status = MessageStatus::Failed;
            finish(t, &row, now)?;
            shared.close()?; // the dead-letter queue opens its own tables
            dlq::put(
                shared.txn(),
                &DeadLetter::outbound(&row, format!("{}: {}", failure.code, failure.reason), now),
            )?;
            row.error = Some(failure);
        }
    }
    let status = row.status;
    shared.tables()?.outbox.insert(id, tables::encode(&row).as_slice())?;
    Ok(RecordResult::Recorded(status))
}

/// Applies a provider status webhook to the message it names. Returns whether a message
/// was found and changed.
pub(super) fn apply_status(
    txn: &WriteTransaction,
    account: &str,
    update: &StatusUpdate,
    now: u64,
) -> Result<bool, StoreError> {
    let id = {
        let t = txn.open_table(OUTBOX_BY_PROVIDER)?;
        let found = t.get(key2(account, &update.provider_message_id).as_str())?;
        match found {
            Some(v) => v.value().to_string(),
            None => return Ok(false),
        }
    };
    let mut outbox = txn.open_table(OUTBOX)?;
    let Some(mut row) = load(&outbox, &id)? else { return Ok(false) };
    let next = match update.state {
        DeliveryState::Sent => MessageStatus::Sent,
        DeliveryState::Delivered => MessageStatus::Delivered,
        DeliveryState::Read => MessageStatus::Read,
        DeliveryState::Failed => MessageStatus::Failed,
    };
    if next.rank() <= row.status.rank() {
        return Ok(false);
    }
    row.status = next;
    if let Some(err) = &update.error {
        row.error = Some(err.clone());
    }
    row.updated_at_ms = now;
    outbox.insert(id.as_str(), tables::encode(&row).as_slice())?;
    Ok(true)
}
