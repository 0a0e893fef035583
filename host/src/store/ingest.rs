//! Inbound webhook events: dedupe, inbox rows, conversation state and outbound status changes,
//! all in the caller's one (group-committed) transaction.

use super::inbox::InboxRow;
use super::tables::{self, CONVERSATIONS, DEDUPE, DEDUPE_EXPIRY, INBOX, INBOX_READY, key2};
use super::{Store, StoreError, outbox};
use crate::model::{EventKind, InboundEvent};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

pub struct IngestRequest {
    pub account: String,
    pub correlation_id: String,
    pub events: Vec<InboundEvent>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub stored: usize,
    pub duplicates: usize,
    pub status_updates: usize,
}

/// What the host remembers of a conversation between messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ConversationState {
    pub last_inbound_ms: Option<u64>,
}

impl Store {
    /// Stores a verified webhook's events. Events seen before (same account and provider
    /// event id, within the dedupe TTL) are counted as duplicates and write nothing.
    pub async fn ingest(&self, req: IngestRequest) -> Result<IngestOutcome, StoreError> {
        let now = self.now_ms();
        let ttl = self.opts.dedupe_ttl_ms;
        self.write(move |txn| ingest_in(txn, req, now, ttl)).await
    }

    /// When the conversation last heard from the user (for 24-hour windows).
    pub fn last_inbound_ms(&self, account: &str, conversation: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(CONVERSATIONS)?;
        Ok(match t.get(key2(account, conversation).as_str())? {
            Some(v) => tables::decode::<ConversationState>("conversations", v.value())?.last_inbound_ms,
            None => None,
        })
    }

    /// Deletes up to `limit` dedupe keys whose TTL has passed; returns how many.
    pub async fn sweep_dedupe(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let mut exp = txn.open_table(DEDUPE_EXPIRY)?;
            let mut dedupe = txn.open_table(DEDUPE)?;
            let expired: Vec<(u64, String)> = exp
                .range((0, "")..(now + 1, ""))?
                .take(limit)
                .map(|r| r.map(|(k, _)| {
                    let (at, key) = k.value();
                    (at, key.to_string())
                }))
                .collect::<Result<_, _>>()?;
            for (at, key) in &expired {
                exp.remove((*at, key.as_str()))?;
                dedupe.remove(key.as_str())?;
            }
            Ok(expired.len())
        })
        .await
    }
}

fn ingest_in(txn: &WriteTransaction, req: IngestRequest, now: u64, ttl: u64) -> Result<IngestOutcome, StoreError> {
    let mut out = IngestOutcome::default();
    let mut dedupe = txn.open_table(DEDUPE)?;
    let mut expiry = txn.open_table(DEDUPE_EXPIRY)?;
    for event in req.events {
        let key = key2(&req.account, &event.provider_event_id);
        let previous = dedupe.get(key.as_str())?.map(|e| e.value());
        match previous {
            Some(expires) if expires > now => {
                out.duplicates += 1;
                continue;
            }
            // Expired but not yet swept: drop its sweep entry so the sweeper cannot delete
            // the fresh key written below.
            Some(expires) => {
                expiry.remove((expires, key.as_str()))?;
            }
            None => {}
        }
        dedupe.insert(key.as_str(), now + ttl)?;
        expiry.insert((now + ttl, key.as_str()), ())?;
        if let Some(update) = &event.status
            && outbox::apply_status(txn, &req.account, update, now)?
        {
            out.status_updates += 1;
        }
        if matches!(event.kind, EventKind::Message | EventKind::Reaction) {
            touch_conversation(txn, &req.account, &event.conversation, now)?;
        }
        let id = tables::next_counter(txn, "inbox_seq")?;
        let row = InboxRow {
            id,
            account: req.account.clone(),
            correlation_id: req.correlation_id.clone(),
            received_at_ms: now,
            deliveries: 0,
            visible_at_ms: now,
            lease: None,
            event,
        };
        txn.open_table(INBOX)?.insert(id, tables::encode(&row).as_slice())?;
        txn.open_table(INBOX_READY)?.insert((now, id), ())?;
        out.stored += 1;
    }
    Ok(out)
}

fn touch_conversation(txn: &WriteTransaction, account: &str, conversation: &str, now: u64) -> Result<(), StoreError> {
    let mut t = txn.open_table(CONVERSATIONS)?;
    let key = key2(account, conversation);
    let mut state: ConversationState = match t.get(key.as_str())? {
        Some(v) => tables::decode("conversations", v.value())?,
        None => ConversationState::default(),
    };
    state.last_inbound_ms = Some(state.last_inbound_ms.map_or(now, |t| t.max(now)));
    t.insert(key.as_str(), tables::encode(&state).as_slice())?;
    Ok(())
}
