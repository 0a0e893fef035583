//! The dead-letter queue: outbound messages that failed for good, and inbox events handed out
//! `max_deliveries` times without an ack. Redriving puts them back in line under the same id
//! (and so the same idempotency key): a redriven message still cannot be sent twice.

use super::inbox::InboxRow;
use super::outbox::{self, OutboxRow};
use super::tables::{self, DEAD_LETTERS, INBOX, INBOX_READY, OUTBOX};
use super::{Store, StoreError};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadKind {
    Outbound,
    Inbound,
    /// An event push delivery gave up on.
    Push,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `out:<message id>`, `in:<event id>` or `push:<event id>`.
    pub id: String,
    pub kind: DeadKind,
    pub account: String,
    pub reason: String,
    pub dead_at_ms: u64,
    /// Attempts (outbound) or deliveries (inbound) made.
    pub tries: u32,
    /// The message or event as it was when it died.
    pub item: serde_json::Value,
}

impl DeadLetter {
    pub(super) fn outbound(row: &OutboxRow, reason: String, now: u64) -> Self {
        Self {
            id: format!("out:{}", row.id),
            kind: DeadKind::Outbound,
            account: row.account.clone(),
            reason,
            dead_at_ms: now,
            tries: row.attempts.len() as u32,
            item: serde_json::to_value(row).expect("serializable"),
        }
    }

    pub(super) fn push(row: &super::push::PushRow, reason: String, now: u64) -> Self {
        Self {
            id: format!("push:{}", row.id),
            kind: DeadKind::Push,
            account: row.account.clone(),
            reason,
            dead_at_ms: now,
            tries: row.attempts,
            item: serde_json::to_value(row).expect("serializable"),
        }
    }

    pub(super) fn inbound(row: &InboxRow, now: u64) -> Self {
        Self {
            id: format!("in:{}", row.id),
            kind: DeadKind::Inbound,
            account: row.account.clone(),
            reason: format!("not acknowledged after {} deliveries", row.deliveries),
            dead_at_ms: now,
            tries: row.deliveries,
            item: serde_json::to_value(row).expect("serializable"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveResult {
    pub redriven: Vec<String>,
    /// Ids that are not in the dead-letter queue.
    pub not_found: Vec<String>,
}

pub(super) fn put(txn: &WriteTransaction, dl: &DeadLetter) -> Result<(), StoreError> {
    txn.open_table(DEAD_LETTERS)?.insert(dl.id.as_str(), tables::encode(dl).as_slice())?;
    Ok(())
}

/// Accepts `out:ID`, `in:ID`, `push:ID`, or a bare message id (`msg_…`) for convenience.
fn normalise(id: &str) -> String {
    if id.starts_with("out:") || id.starts_with("in:") || id.starts_with("push:") { id.to_string() } else { format!("out:{id}") }
}

impl Store {
    pub fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(DEAD_LETTERS)?;
        let mut out = Vec::new();
        for r in t.iter()?.take(limit) {
            out.push(tables::decode("dead_letters", r?.1.value())?);
        }
        Ok(out)
    }

    pub fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(DEAD_LETTERS)?;
        t.get(normalise(id).as_str())?.map(|v| tables::decode("dead_letters", v.value())).transpose()
    }

    pub fn dlq_len(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let txn = self.read()?;
        Ok(txn.open_table(DEAD_LETTERS)?.len()?)
    }

    /// Puts dead letters back in their queues; `None` redrives all of them.
    pub async fn dlq_redrive(&self, ids: Option<Vec<String>>) -> Result<RedriveResult, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let ids: Vec<String> = match ids {
                Some(ids) => ids.iter().map(|i| normalise(i)).collect(),
                None => {
                    let t = txn.open_table(DEAD_LETTERS)?;
                    let all: Vec<String> = t.iter()?.map(|r| r.map(|(k, _)| k.value().to_string())).collect::<Result<_, _>>()?;
                    all
                }
            };
            let mut out = RedriveResult { redriven: Vec::new(), not_found: Vec::new() };
            for id in ids {
                let entry = txn.open_table(DEAD_LETTERS)?.remove(id.as_str())?.map(|v| v.value().to_vec());
                let Some(bytes) = entry else {
                    out.not_found.push(id);
                    continue;
                };
                let dl: DeadLetter = tables::decode("dead_letters", &bytes)?;
                match dl.kind {
                    DeadKind::Outbound => {
                        let msg_id = id.trim_start_matches("out:");
                        let row = outbox::load(&txn.open_table(OUTBOX)?, msg_id)?;
                        let Some(mut row) = row else {
                            out.not_found.push(id);
                            continue;
                        };
                        outbox::requeue(txn, &mut row, now)?;
                    }
                    DeadKind::Inbound => {
                        let mut row: InboxRow = serde_json::from_value(dl.item)
                            .map_err(|e| StoreError::Codec { table: "dead_letters", reason: e.to_string() })?;
                        row.deliveries = 0;
                        row.lease = None;
                        row.visible_at_ms = now;
                        txn.open_table(INBOX)?.insert(row.id, tables::encode(&row).as_slice())?;
                        txn.open_table(INBOX_READY)?.insert((now, row.id), ())?;
                    }
                    DeadKind::Push => {
                        let mut row: super::push::PushRow = serde_json::from_value(dl.item)
                            .map_err(|e| StoreError::Codec { table: "dead_letters", reason: e.to_string() })?;
                        row.attempts = 0;
                        row.last_error = None;
                        super::push::requeue_in(txn, row, now)?;
                    }
                }
                out.redriven.push(id);
            }
            Ok(out)
        })
        .await
    }
}
