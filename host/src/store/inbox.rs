//! The agent-facing inbox: claim with a lease, ack, nack. A lease carries a fencing token
//! that grows on every grant, so an ack from a consumer whose lease expired and was re-granted
//! is refused instead of deleting the new holder's work.

use super::tables::{self, INBOX, INBOX_READY};
use super::{Store, StoreError};
use crate::model::InboundEvent;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct InboxLease {
    pub token: u64,
    pub consumer: String,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct InboxRow {
    pub id: u64,
    pub account: String,
    pub correlation_id: String,
    pub received_at_ms: u64,
    pub deliveries: u32,
    pub visible_at_ms: u64,
    pub lease: Option<InboxLease>,
    pub event: InboundEvent,
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub max: usize,
    pub lease_ms: u64,
    pub consumer: String,
    pub account: Option<String>,
    /// An event already handed out this many times goes to the dead-letter queue instead.
    pub max_deliveries: u32,
}

/// An event handed to a consumer, as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimedEvent {
    pub id: String,
    pub account: String,
    pub correlation_id: String,
    pub received_at_ms: u64,
    /// How many times this event has been handed out, this time included.
    pub deliveries: u32,
    #[serde(flatten)]
    pub event: InboundEvent,
}

#[derive(Debug, Clone, Serialize)]
pub struct InboxClaim {
    /// The fencing token of this claim; pass it to ack/nack.
    pub lease: String,
    pub lease_expires_at_ms: u64,
    pub events: Vec<ClaimedEvent>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AckResult {
    pub acked: Vec<String>,
    /// Ids that are unknown, already acked, or held under another (newer) lease.
    pub rejected: Vec<String>,
}

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

impl Store {
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
    let mut inbox = txn.open_table(INBOX)?;
    let mut ready = txn.open_table(INBOX_READY)?;
    let token = tables::next_counter(txn, "fence")?;
    let expires = now + req.lease_ms;
    let mut events = Vec::new();
    let due: Vec<(u64, u64)> = ready
        .range((0, 0)..=(now, u64::MAX))?
        .map(|r| r.map(|(k, _)| k.value()))
        .collect::<Result<_, _>>()?;
    for (at, id) in due {
        if events.len() >= req.max {
            break;
        }
        let Some(bytes) = inbox.get(id)?.map(|v| v.value().to_vec()) else {
            ready.remove((at, id))?; // stale index entry
            continue;
        };
        let mut row: InboxRow = tables::decode("inbox", &bytes)?;
        if req.account.as_ref().is_some_and(|a| *a != row.account) {
            continue;
        }
        ready.remove((at, id))?;
        if row.deliveries >= req.max_deliveries {
            inbox.remove(id)?;
            super::dlq::put(txn, &super::dlq::DeadLetter::inbound(&row, now))?;
            continue;
        }
        row.deliveries += 1;
        row.visible_at_ms = expires;
        row.lease = Some(InboxLease { token, consumer: req.consumer.clone(), expires_at_ms: expires });
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
    Ok(InboxClaim { lease: token.to_string(), lease_expires_at_ms: expires, events })
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
        op(&mut inbox, &mut ready, &mut row)?;
        out.acked.push(id_str.clone());
    }
    Ok(out)
}
