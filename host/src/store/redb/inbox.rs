//! The agent-facing inbox: claim with a lease, ack, nack. A lease carries a fencing token
//! that grows on every grant, so an ack from a consumer whose lease expired and was re-granted
//! is refused instead of deleting the new holder's work.

use crate::store::inbox::*;
use super::tables::{self, INBOX, INBOX_HELD, INBOX_READY};
use super::{RedbStore, StoreError};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};


fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

impl RedbStore {
    pub async fn claim_inbox(&self, req: ClaimRequest) -> Result<InboxClaim, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| claim_in(txn, req, now)).await
    }

    /// Deletes events held under `lease`.
    pub async fn ack_inbox(&self, ids: Vec<String>, lease: String) -> Result<AckResult, StoreError> {
        self.write(move |txn| {
            settle(txn, &ids, &lease, |inbox, ready, row| {
                ready.remove((row.visible_at_ms, row.id))?;
                inbox.remove(row.id)?;
                Ok(())
            })
        })
        .await
    }

    /// Returns events held under `lease` to the queue after `delay_ms`.
    pub async fn nack_inbox(&self, ids: Vec<String>, lease: String, delay_ms: u64) -> Result<AckResult, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            settle(txn, &ids, &lease, |inbox, ready, row| {
                ready.remove((row.visible_at_ms, row.id))?;
                row.visible_at_ms = now + delay_ms;
                row.lease = None;
                ready.insert((row.visible_at_ms, row.id), ())?;
                inbox.insert(row.id, tables::encode(row).as_slice())?;
                Ok(())
            })
        })
        .await
    }

    /// Events waiting (claimable now or later, or leased): for stats and tests.
    pub fn inbox_len(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        Ok(txn.open_table(INBOX)?.len()?)
    }
}

fn claim_in(txn: &WriteTransaction, req: ClaimRequest, now: u64) -> Result<InboxClaim, StoreError> {
    let held = held_by(txn, &req.consumer, now)?;
    if held >= req.max_held {
        return Ok(InboxClaim { lease: String::new(), lease_expires_at_ms: 0, events: Vec::new(), expired_leases: 0, held_limit: Some(held) });
    }
    let max = req.max.min(req.max_held - held);
    let mut inbox = txn.open_table(INBOX)?;
    let mut ready = txn.open_table(INBOX_READY)?;
    let mut holds = txn.open_table(INBOX_HELD)?;
    let token = tables::next_counter(txn, "fence")?;
    let expires = now + req.lease_ms;
    let mut events = Vec::new();
    let mut expired_leases = 0;
    let due: Vec<(u64, u64)> = ready
        .range((0, 0)..=(now, u64::MAX))?
        .map(|r| r.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for (at, id) in due {
        if events.len() >= max {
            break;
        }
        let Some(bytes) = inbox.get(id)?.map(|v| v.value().to_vec()) else {
            ready.remove((at, id))?; // stale index entry
            continue;
        };
        let mut row: InboxRow = tables::decode("inbox", &bytes)?;
        if req.account.as_ref().is_some_and(|a| *a != row.account)
            || req.conversation.as_ref().is_some_and(|c| *c != row.event.conversation)
        {
            continue;
        }
        ready.remove((at, id))?;
        if let Some(old) = &row.lease {
            holds.remove((old.consumer.as_str(), id))?;
        }
        if row.deliveries >= req.max_deliveries {
            inbox.remove(id)?;
            super::dlq::put(txn, &crate::store::dlq::DeadLetter::inbound(&row, now))?;
            continue;
        }
        expired_leases += usize::from(row.lease.is_some());
        row.deliveries += 1;
        row.visible_at_ms = expires;
        row.lease = Some(InboxLease { token, consumer: req.consumer.clone(), expires_at_ms: expires });
        holds.insert((req.consumer.as_str(), id), expires)?;
        ready.insert((expires, id), ())?;
        inbox.insert(id, tables::encode(&row).as_slice())?;
        events.push(ClaimedEvent {
            id: id.to_string(),
            account: row.account,
            correlation_id: row.correlation_id,
            received_at_ms: row.received_at_ms,
            deliveries: row.deliveries,
            event: row.event,
        });
    }
    Ok(InboxClaim { lease: token.to_string(), lease_expires_at_ms: expires, events, expired_leases, held_limit: None })
}

/// Events `consumer` holds under unexpired leases; entries of expired leases are dropped.
fn held_by(txn: &WriteTransaction, consumer: &str, now: u64) -> Result<usize, StoreError> {
    let mut holds = txn.open_table(INBOX_HELD)?;
    let entries: Vec<(u64, u64)> = holds
        .range((consumer, 0)..=(consumer, u64::MAX))?
        .map(|r| r.map(|(k, v)| (k.value().1, v.value())))
        .collect::<Result<_, _>>()?;
    let mut held = 0;
    for (id, expires) in entries {
        if expires > now {
            held += 1;
        } else {
            holds.remove((consumer, id))?;
        }
    }
    Ok(held)
}

type InboxTable<'t> = redb::Table<'t, u64, &'static [u8]>;
type ReadyTable<'t> = redb::Table<'t, (u64, u64), ()>;

/// Applies `op` to every id currently held under `lease`; the rest are rejected.
fn settle(
    txn: &WriteTransaction,
    ids: &[String],
    lease: &str,
    mut op: impl FnMut(&mut InboxTable<'_>, &mut ReadyTable<'_>, &mut InboxRow) -> Result<(), StoreError>,
) -> Result<AckResult, StoreError> {
    let mut inbox = txn.open_table(INBOX)?;
    let mut ready = txn.open_table(INBOX_READY)?;
    let token: Option<u64> = lease.parse().ok();
    let mut out = AckResult::default();
    for id_str in ids {
        let row = match parse_id(id_str) {
            Some(id) => inbox.get(id)?.map(|v| v.value().to_vec()),
            None => None,
        };
        let Some(bytes) = row else {
            out.rejected.push(id_str.clone());
            continue;
        };
        let mut row: InboxRow = tables::decode("inbox", &bytes)?;
        if token.is_none() || row.lease.as_ref().map(|l| l.token) != token {
            out.rejected.push(id_str.clone());
            continue;
        }
        if let Some(l) = &row.lease {
            txn.open_table(INBOX_HELD)?.remove((l.consumer.as_str(), row.id))?;
        }
        op(&mut inbox, &mut ready, &mut row)?;
        out.acked.push(id_str.clone());
    }
    Ok(out)
}
