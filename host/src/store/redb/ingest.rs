//! Inbound webhook events: dedupe, inbox rows, conversation state and outbound status changes,
//! all in the caller's one (group-committed) transaction.

use crate::store::ingest::*;
use super::history;
use crate::store::history::{HistoryEntry, HistoryOptions};
use crate::store::inbox::InboxRow;
use super::shared::SharedTables;
use super::tables::{self, CONVERSATIONS, key2};
use super::{RedbStore, StoreError, outbox, push, tools};
use crate::model::EventKind;


impl RedbStore {
    /// [`Store::ingest`] with the account's routing: approval replies resolve pending
    /// approvals in the same transaction, events go to the push queue and/or the pull inbox,
    /// and messages are kept in the conversation history.
    pub async fn ingest_with(&self, req: IngestRequest, opts: IngestOptions) -> Result<Ingested, StoreError> {
        let now = self.now_ms();
        let ttl = self.opts.dedupe_ttl_ms;
        #[cfg(feature = "ceiling")]
        if let Some(mode) = super::ceiling::mode() {
            return super::ceiling::ingest(self, mode, req, opts, now, ttl).await;
        }
        self.write_shared(move |shared| ingest_in(shared, req, opts, now, ttl)).await
    }

    /// When the conversation last heard from the user (for 24-hour windows).
    pub fn last_inbound_ms(&self, account: &str, conversation: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(CONVERSATIONS)?;
        Ok(match t.get(key2(account, conversation).as_str())? {
            Some(v) => tables::decode::<history::ConversationState>("conversations", v.value())?.last_inbound_ms,
            None => None,
        })
    }

    /// Nothing to sweep here: webhook dedupe keys live in the inbox log's runs, which expire
    /// whole in the writer's housekeeping after each commit (`store/dedupe_runs.rs`), and the
    /// old tables are emptied when the store opens. Kept for the `Store` trait (PostgreSQL
    /// deletes its expired rows this way).
    pub async fn sweep_dedupe(&self, _limit: usize) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// What [`check_sessions`] read of a webhook's only event, handed on so that [`ingest_in`]
/// reads neither its dedupe key nor its conversation's row a second time (a webhook usually
/// carries one message).
#[derive(Default)]
struct FirstRead {
    /// The event's dedupe entry, when it was read: `Some(None)`, none.
    dedupe: Option<Option<u64>>,
    state: Option<history::ConversationState>,
}

/// Whether a batch would open new sessions beyond the account's cap (`Some(open)` then),
/// checked before anything is written; and what it read of a lone event on the way.
fn check_sessions(shared: &mut SharedTables<'_>, req: &IngestRequest, h: &HistoryOptions, now: u64) -> Result<(Option<usize>, FirstRead), StoreError> {
    let (inbox, t) = shared.inbox_and_tables()?;
    let single = req.events.len() == 1;
    let mut first = FirstRead::default();
    let mut opening = std::collections::BTreeSet::new();
    for e in req.events.iter().filter(|e| matches!(e.kind, EventKind::Message | EventKind::Reaction)) {
        let key = key2(&req.account, &e.provider_event_id);
        let dedupe = inbox.seen(&key)?;
        if single {
            first.dedupe = Some(dedupe);
        }
        if dedupe.is_some_and(|exp| exp > now) {
            continue;
        }
        let state = history::ConversationState::load(t, &key2(&req.account, &e.conversation))?;
        if !state.session_open(now, h.session_timeout_ms) {
            opening.insert(e.conversation.as_str());
        }
        if single {
            first.state = Some(state);
        }
    }
    if opening.is_empty() {
        return Ok((None, first));
    }
    // Counting may rewrite conversations' rows (see `open_sessions`): read again later.
    let open = history::open_sessions(t, &req.account, now, h)?;
    Ok(((open + opening.len() > h.max_open_sessions).then_some(open), FirstRead { dedupe: first.dedupe, state: None }))
}

/// One webhook's events in the batch's transaction. Uses the shared open tables, and closes
/// them only around the rarer steps that open tables of their own (status updates, approval
/// replies, push routing).
pub(super) fn ingest_in(shared: &mut SharedTables<'_>, req: IngestRequest, opts: IngestOptions, now: u64, ttl: u64) -> Result<Ingested, StoreError> {
    let mut first = FirstRead::default();
    if let Some(h) = &opts.history {
        let (refused, read) = check_sessions(shared, &req, h, now)?;
        if let Some(open) = refused {
            return Ok(Ingested::SessionLimit { open });
        }
        first = read;
    }
    let mut out = IngestOutcome::default();
    let mut effects = IngestEffects::default();
    for event in req.events {
        let key = key2(&req.account, &event.provider_event_id);
        let previous = match first.dedupe.take() {
            Some(read) => read,
            None => shared.inbox().seen(&key)?,
        };
        if previous.is_some_and(|expires| expires > now) {
            out.duplicates += 1;
            continue;
        }
        // The key goes to the inbox log (and later its dedupe runs), not to a B-tree: see
        // `store/dedupe_runs.rs`. It commits with the rest of this transaction.
        shared.inbox().mark_seen(&key, now + ttl);
        if let Some(update) = &event.status {
            shared.close()?;
            if outbox::apply_status(shared.txn(), &req.account, update, now)? {
                out.status_updates += 1;
            }
        }
        if event.kind == EventKind::Message
            && let (Some(sender), Some(reply)) = (&event.sender, event.text.as_deref().and_then(crate::model::approval_reply))
            && opts.approvers.iter().any(|a| crate::model::same_sender(sender, a))
        {
            shared.close()?;
            let (approved, resolved) = tools::resolve_in(shared.txn(), &req.account, &event.conversation, reply, sender, now)?;
            effects.approved_calls.extend(approved);
            effects.approvals_resolved += resolved;
        }
        let (inbox, t) = shared.inbox_and_tables()?;
        let id = t.next_counter("inbox_seq")?;
        if matches!(event.kind, EventKind::Message | EventKind::Reaction) {
            // The conversation's row is read and written once per event: the 24-hour window,
            // and the session and history bookkeeping when history is kept.
            let key = key2(&req.account, &event.conversation);
            let mut state = match first.state.take() {
                Some(read) => read,
                None => history::ConversationState::load(t, &key)?,
            };
            state.last_inbound_ms = Some(state.last_inbound_ms.map_or(now, |t| t.max(now)));
            if let Some(h) = &opts.history {
                let entry = HistoryEntry::inbound(&event, id, now);
                history::record(t, inbox, &req.account, &event.conversation, &mut state, entry, now, h)?;
            }
            state.save(t, &key)?;
        }
        let row = InboxRow::received(id, &req.account, &req.correlation_id, event, now);
        let pushed = opts.push.as_ref().is_some_and(|p| p.kinds.as_ref().is_none_or(|k| k.contains(&row.event.kind)));
        if pushed {
            shared.close()?;
            push::enqueue_in(shared.txn(), &row, now)?;
            effects.pushed += 1;
        }
        if !pushed || opts.push.as_ref().is_some_and(|p| p.pull_too) {
            shared.inbox().put(row);
            effects.pullable += 1;
        }
        out.stored += 1;
    }
    Ok(Ingested::Stored(out, effects))
}

/// Poll cursors: account → what to pass to the plugin's next `poll` (Telegram: the next
/// `getUpdates` offset). Written only together with the events it covers.
pub(super) const POLL_CURSORS: redb::TableDefinition<'_, &str, &str> = redb::TableDefinition::new("poll_cursors");


impl RedbStore {
    /// Stores a poll's events and the new cursor in one transaction, only if `token` still
    /// holds the lease on `lease_resource` (the poller's fencing check). Dedupe works as for
    /// webhooks, so events polled again after a lost commit are duplicates.
    pub async fn ingest_polled(
        &self,
        req: IngestRequest,
        opts: IngestOptions,
        lease_resource: &str,
        token: u64,
        cursor: Option<String>,
    ) -> Result<Polled, StoreError> {
        let now = self.now_ms();
        let ttl = self.opts.dedupe_ttl_ms;
        let resource = lease_resource.to_string();
        self.write_shared(move |shared| {
            if !super::leases::lease_holds(shared.txn(), &resource, token, now)? {
                return Ok(Polled::Fenced);
            }
            let account = req.account.clone();
            let ingested = ingest_in(shared, req, opts, now, ttl)?;
            if let (Ingested::Stored(..), Some(c)) = (&ingested, cursor) {
                shared.txn().open_table(POLL_CURSORS)?.insert(account.as_str(), c.as_str())?;
            }
            Ok(Polled::Stored(ingested))
        })
        .await
    }

    /// The cursor committed by the account's last poll, if any.
    pub fn poll_cursor(&self, account: &str) -> Result<Option<String>, StoreError> {
        let txn = self.read()?;
        let table = match txn.open_table(POLL_CURSORS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get(account)?.map(|v| v.value().to_string()))
    }
}
