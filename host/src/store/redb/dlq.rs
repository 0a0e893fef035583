//! The dead-letter queue: outbound messages that failed for good, and inbox events handed out
//! `max_deliveries` times without an ack. Redriving puts them back in line under the same id
//! (and so the same idempotency key): a redriven message still cannot be sent twice.

use crate::store::dlq::*;
use crate::store::inbox::InboxRow;
use super::outbox;
use super::tables::{self, DEAD_LETTERS, OUTBOX};
use super::{RedbStore, StoreError};
use redb::{ReadableTable, WriteTransaction};


pub(super) fn put(txn: &WriteTransaction, dl: &DeadLetter) -> Result<(), StoreError> {
    txn.open_table(DEAD_LETTERS)?.insert(dl.id.as_str(), tables::encode(dl).as_slice())?;
    Ok(())
}

impl RedbStore {
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
        self.write_shared(move |shared| {
            shared.close()?;
            let txn = shared.txn();
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
                        shared.inbox().put(row);
                    }
                    DeadKind::Push => {
                        let mut row: crate::store::push::PushRow = serde_json::from_value(dl.item)
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
