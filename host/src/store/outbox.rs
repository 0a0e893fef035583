//! Outbound messages: idempotent enqueue, claim with a fenced lease, attempt records, and
//! provider status updates.

use super::tables::{self, IDEMPOTENCY, OUTBOX, OUTBOX_BY_PROVIDER, OUTBOX_DUE, key2};
use super::{Store, StoreError};
use crate::model::{DeliveryState, Failure, MessageBody, StatusUpdate};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sending,
    Retrying,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    /// Ordering of provider-reported progress; status webhooks never move a message back.
    fn rank(self) -> u8 {
        match self {
            MessageStatus::Queued | MessageStatus::Sending | MessageStatus::Retrying => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Failed => 4,
        }
    }
}

/// One delivery attempt, as shown by `GET /v1/messages/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub at_ms: u64,
    /// delivered, retry, rate_limited, permanent, or error (the plugin call itself failed).
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxLease {
    pub token: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    pub id: String,
    pub account: String,
    pub to: String,
    pub conversation: String,
    pub body: MessageBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub correlation_id: String,
    pub status: MessageStatus,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Where the row sits in the due index; `None` once final.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_at_ms: Option<u64>,
    pub attempts: Vec<Attempt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<OutboxLease>,
}

pub struct NewMessage {
    pub account: String,
    pub to: String,
    pub conversation: String,
    pub body: MessageBody,
    pub metadata: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    /// Hash of the request, so a reused key with a different request is refused.
    pub fingerprint: String,
    pub correlation_id: String,
}

#[derive(Debug, Clone)]
pub enum EnqueueOutcome {
    Created(OutboxRow),
    /// The idempotency key was seen with the same request: the original message.
    Existing(OutboxRow),
    /// The idempotency key was seen with a different request.
    KeyConflict { id: String },
}

#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub row: OutboxRow,
    pub token: u64,
}

/// What the worker decided after an attempt.
#[derive(Debug, Clone)]
pub enum Disposition {
    Delivered { provider_message_id: String },
    RetryAt(u64),
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    Recorded(MessageStatus),
    /// The lease was re-granted to someone else: this worker's result is discarded.
    Fenced,
}

#[derive(Serialize, Deserialize)]
struct IdemRecord {
    id: String,
    fingerprint: String,
}

impl Store {
    pub async fn enqueue(&self, msg: NewMessage) -> Result<EnqueueOutcome, StoreError> {
        let now = self.now_ms();
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        self.write(move |txn| enqueue_in(txn, msg, id, now)).await
    }

    pub fn message(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(OUTBOX)?;
        t.get(id)?.map(|v| tables::decode("outbox", v.value())).transpose()
    }

    /// Claims up to `max` due messages under a fresh fencing token each.
    pub async fn claim_outbox(&self, max: usize, lease_ms: u64) -> Result<Vec<ClaimedMessage>, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| claim_in(txn, max, lease_ms, now)).await
    }

    /// Records an attempt and its disposition, if `token` still holds the lease.
    pub async fn record_attempt(
        &self,
        id: String,
        token: u64,
        attempt: Attempt,
        disposition: Disposition,
    ) -> Result<RecordResult, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| record_in(txn, &id, token, attempt, disposition, now)).await
    }

    /// The earliest due time in the outbox, for the worker's sleep.
    pub fn next_due_ms(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(OUTBOX_DUE)?;
        Ok(t.first()?.map(|(k, _)| k.value().0))
    }
}

fn load(t: &impl ReadableTable<&'static str, &'static [u8]>, id: &str) -> Result<Option<OutboxRow>, StoreError> {
    t.get(id)?.map(|v| tables::decode("outbox", v.value())).transpose()
}

fn enqueue_in(txn: &WriteTransaction, msg: NewMessage, id: String, now: u64) -> Result<EnqueueOutcome, StoreError> {
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut idem = txn.open_table(IDEMPOTENCY)?;
    if let Some(key) = &msg.idempotency_key {
        let existing: Option<IdemRecord> =
            idem.get(key.as_str())?.map(|v| tables::decode("idempotency", v.value())).transpose()?;
        if let Some(rec) = existing {
            if rec.fingerprint != msg.fingerprint {
                return Ok(EnqueueOutcome::KeyConflict { id: rec.id });
            }
            if let Some(row) = load(&outbox, &rec.id)? {
                return Ok(EnqueueOutcome::Existing(row));
            }
        }
        let rec = IdemRecord { id: id.clone(), fingerprint: msg.fingerprint.clone() };
        idem.insert(key.as_str(), tables::encode(&rec).as_slice())?;
    }
    let row = OutboxRow {
        id: id.clone(),
        account: msg.account,
        to: msg.to,
        conversation: msg.conversation,
        body: msg.body,
        metadata: msg.metadata,
        idempotency_key: msg.idempotency_key,
        correlation_id: msg.correlation_id,
        status: MessageStatus::Queued,
        created_at_ms: now,
        updated_at_ms: now,
        due_at_ms: Some(now),
        attempts: Vec::new(),
        provider_message_id: None,
        error: None,
        lease: None,
    };
    outbox.insert(id.as_str(), tables::encode(&row).as_slice())?;
    txn.open_table(OUTBOX_DUE)?.insert((now, id.as_str()), ())?;
    Ok(EnqueueOutcome::Created(row))
}

fn claim_in(txn: &WriteTransaction, max: usize, lease_ms: u64, now: u64) -> Result<Vec<ClaimedMessage>, StoreError> {
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut due = txn.open_table(OUTBOX_DUE)?;
    let keys: Vec<(u64, String)> = due
        .range((0, "")..(now + 1, ""))?
        .take(max)
        .map(|r| r.map(|(k, _)| {
            let (at, id) = k.value();
            (at, id.to_string())
        }))
        .collect::<Result<_, _>>()?;
    let mut claimed = Vec::with_capacity(keys.len());
    for (at, id) in keys {
        due.remove((at, id.as_str()))?;
        let Some(mut row) = load(&outbox, &id)? else { continue };
        let token = tables::next_counter(txn, "fence")?;
        let expires = now + lease_ms;
        row.status = MessageStatus::Sending;
        row.lease = Some(OutboxLease { token, expires_at_ms: expires });
        row.due_at_ms = Some(expires);
        row.updated_at_ms = now;
        due.insert((expires, id.as_str()), ())?;
        outbox.insert(id.as_str(), tables::encode(&row).as_slice())?;
        claimed.push(ClaimedMessage { row, token });
    }
    Ok(claimed)
}

fn record_in(
    txn: &WriteTransaction,
    id: &str,
    token: u64,
    attempt: Attempt,
    disposition: Disposition,
    now: u64,
) -> Result<RecordResult, StoreError> {
    let mut outbox = txn.open_table(OUTBOX)?;
    let mut due = txn.open_table(OUTBOX_DUE)?;
    let Some(mut row) = load(&outbox, id)? else { return Ok(RecordResult::Fenced) };
    if row.lease.as_ref().map(|l| l.token) != Some(token) {
        return Ok(RecordResult::Fenced);
    }
    if let Some(at) = row.due_at_ms.take() {
        due.remove((at, id))?;
    }
    row.lease = None;
    row.updated_at_ms = now;
    row.attempts.push(attempt);
    match disposition {
        Disposition::Delivered { provider_message_id } => {
            // A status webhook may have raced ahead of us; never move back from it.
            if row.status.rank() < MessageStatus::Sent.rank() {
                row.status = MessageStatus::Sent;
            }
            txn.open_table(OUTBOX_BY_PROVIDER)?
                .insert(key2(&row.account, &provider_message_id).as_str(), id)?;
            row.provider_message_id = Some(provider_message_id);
        }
        Disposition::RetryAt(at) => {
            row.status = MessageStatus::Retrying;
            row.due_at_ms = Some(at);
            due.insert((at, id), ())?;
        }
        Disposition::Failed(failure) => {
            row.status = MessageStatus::Failed;
            row.error = Some(failure);
        }
    }
    let status = row.status;
    outbox.insert(id, tables::encode(&row).as_slice())?;
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
