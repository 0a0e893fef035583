//! The push queue: inbox events of accounts with `deliver_to`, delivered by the push worker
//! under fenced leases, in order per conversation (only a conversation's oldest undelivered
//! event is ever in flight), retried with backoff and dead-lettered like outbound messages.

use crate::store::push::*;
use super::dlq;
use crate::store::dlq::DeadLetter;
use crate::store::inbox::InboxRow;
use super::tables::{self, PUSH, PUSH_CONV, PUSH_DUE, key2};
use super::{RedbStore, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};


fn conv_key(row: &PushRow) -> String {
    key2(&row.account, &row.event.conversation)
}

fn save(txn: &WriteTransaction, row: &PushRow) -> Result<(), StoreError> {
    txn.open_table(PUSH)?.insert(row.id, tables::encode(row).as_slice())?;
    Ok(())
}

/// Queues an ingested event for push (inside the ingest transaction).
pub(super) fn enqueue_in(txn: &WriteTransaction, inbox: &InboxRow, now: u64) -> Result<(), StoreError> {
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
    requeue_in(txn, row, now)
}

/// Puts a row (new or redriven) at the back of its conversation, due at `now`. Only a
/// conversation's head is in PUSH_DUE: a row behind others is parked (out of the due index)
/// until its turn ([`release_next`]), so a long conversation waiting on its head never fills
/// a claim's bounded scan and starves the others (as the outbox parks its blocked messages).
pub(super) fn requeue_in(txn: &WriteTransaction, mut row: PushRow, now: u64) -> Result<(), StoreError> {
    row.due_at_ms = now;
    row.lease = None;
    let key = conv_key(&row);
    let mut conv = txn.open_table(PUSH_CONV)?;
    // Conversation order is event id order, so a redriven (older) event goes first again.
    let behind_others = conv.range((key.as_str(), 0)..(key.as_str(), row.id))?.next().is_some();
    conv.insert((key.as_str(), row.id), ())?;
    drop(conv);
    if !behind_others {
        txn.open_table(PUSH_DUE)?.insert((now, row.id), ())?;
    }
    save(txn, &row)
}

/// After a conversation's head left the queue: its next row, if any, becomes due now.
fn release_next(txn: &WriteTransaction, key: &str, now: u64) -> Result<(), StoreError> {
    let next = txn.open_table(PUSH_CONV)?.range((key, 0)..=(key, u64::MAX))?.next().transpose()?.map(|(k, _)| k.value().1);
    let Some(id) = next else { return Ok(()) };
    let bytes = txn.open_table(PUSH)?.get(id)?.map(|v| v.value().to_vec());
    let Some(bytes) = bytes else { return Ok(()) };
    let mut row: PushRow = tables::decode("push", &bytes)?;
    let mut due = txn.open_table(PUSH_DUE)?;
    // Already in the due index (in flight until its lease expires, retrying at its backoff,
    // or queued before parking existed): it keeps its time.
    if due.get((row.due_at_ms, row.id))?.is_some() {
        return Ok(());
    }
    due.insert((now, row.id), ())?;
    drop(due);
    row.due_at_ms = now;
    save(txn, &row)
}

fn is_head(txn: &WriteTransaction, row: &PushRow) -> Result<bool, StoreError> {
    let q = txn.open_table(PUSH_CONV)?;
    let key = conv_key(row);
    let head = q.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?.next().transpose()?;
    Ok(head.is_none_or(|(k, _)| k.value().1 == row.id))
}

/// Takes a conversation's head out of the queue and lets the next row of its conversation go.
fn remove(txn: &WriteTransaction, row: &PushRow, now: u64) -> Result<(), StoreError> {
    txn.open_table(PUSH_DUE)?.remove((row.due_at_ms, row.id))?;
    let key = conv_key(row);
    txn.open_table(PUSH_CONV)?.remove((key.as_str(), row.id))?;
    txn.open_table(PUSH)?.remove(row.id)?;
    release_next(txn, &key, now)
}

fn reschedule(txn: &WriteTransaction, row: &mut PushRow, at: u64) -> Result<(), StoreError> {
    let mut due = txn.open_table(PUSH_DUE)?;
    due.remove((row.due_at_ms, row.id))?;
    due.insert((at, row.id), ())?;
    row.due_at_ms = at;
    Ok(())
}

impl RedbStore {
    /// Claims up to `max` due events, each the head of its conversation, under fresh fencing
    /// tokens; a claimed event is due again at its lease expiry (a stalled worker's event is
    /// retried without a sweeper).
    /// When the next push delivery is due (a read; see [`RedbStore::next_outbox_due`]).
    pub fn next_push_due(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let due = txn.open_table(PUSH_DUE)?;
        Ok(due.first()?.map(|(k, _)| k.value().0))
    }

    pub async fn claim_push(&self, max: usize, lease_ms: u64) -> Result<Vec<ClaimedPush>, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let scan = max.saturating_mul(16).max(64);
            let due: Vec<u64> = {
                let t = txn.open_table(PUSH_DUE)?;
                t.range((0, 0)..=(now, u64::MAX))?.take(scan).map(|r| r.map(|(k, _)| k.value().1)).collect::<Result<_, _>>()?
            };
            let mut out = Vec::new();
            for id in due {
                if out.len() >= max {
                    break;
                }
                let bytes = txn.open_table(PUSH)?.get(id)?.map(|v| v.value().to_vec());
                let Some(bytes) = bytes else { continue };
                let mut row: PushRow = tables::decode("push", &bytes)?;
                if !is_head(txn, &row)? {
                    continue;
                }
                let token = tables::next_counter(txn, "fence")?;
                let expires = now + lease_ms;
                reschedule(txn, &mut row, expires)?;
                row.lease = Some(PushLease { token, expires_at_ms: expires });
                save(txn, &row)?;
                out.push(ClaimedPush { row, token });
            }
            Ok(out)
        })
        .await
    }

    /// Records an attempt's outcome if `token` still holds the lease; `false`: fenced off.
    pub async fn record_push(&self, id: u64, token: u64, disposition: PushDisposition) -> Result<bool, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let bytes = txn.open_table(PUSH)?.get(id)?.map(|v| v.value().to_vec());
            let Some(bytes) = bytes else { return Ok(false) };
            let mut row: PushRow = tables::decode("push", &bytes)?;
            if row.lease.as_ref().map(|l| l.token) != Some(token) {
                return Ok(false);
            }
            row.lease = None;
            row.attempts += 1;
            match disposition {
                PushDisposition::Delivered => remove(txn, &row, now)?,
                PushDisposition::RetryAt { at_ms, error } => {
                    row.last_error = Some(error);
                    reschedule(txn, &mut row, at_ms)?;
                    save(txn, &row)?;
                }
                PushDisposition::Failed(reason) => {
                    remove(txn, &row, now)?;
                    row.last_error = Some(reason.clone());
                    dlq::put(txn, &DeadLetter::push(&row, reason, now))?;
                }
            }
            Ok(true)
        })
        .await
    }

    /// Events waiting for push delivery (in flight included).
    pub fn push_len(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        Ok(txn.open_table(PUSH)?.len()?)
    }
}
