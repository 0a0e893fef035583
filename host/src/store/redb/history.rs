//! Conversation history and sessions: the last `limit` messages of each conversation (both
//! directions), each tagged with its session; a message after `session_timeout_ms` of quiet
//! starts a new session. An account may have at most `max_open_sessions` conversations active
//! within the timeout; a message that would open one more is refused (the caller answers 429).

use crate::store::history::*;
use super::tables::{self, CONVERSATIONS, HISTORY, SESSION_ACTIVITY, key2};
use super::{RedbStore, StoreError};
use super::shared::IngestTables;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

/// Retention and session settings (`[inbox]`).

/// A conversation's row in CONVERSATIONS: everything the host remembers of it between
/// messages, in one place so that a webhook reads and writes it once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ConversationState {
    /// When the user last wrote (for 24-hour windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_ms: Option<u64>,
    #[serde(default)]
    pub session: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_ms: Option<u64>,
    /// Entries kept in HISTORY, so trimming removes the oldest without scanning the rest.
    /// `None` in rows written before it was kept: counted once, then carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_len: Option<u64>,
}

impl ConversationState {
    pub fn load(t: &IngestTables<'_>, key: &str) -> Result<Self, StoreError> {
        Ok(match t.conversations.get(key)? {
            Some(v) => tables::decode("conversations", v.value())?,
            None => Self::default(),
        })
    }

    pub fn save(&self, t: &mut IngestTables<'_>, key: &str) -> Result<(), StoreError> {
        t.conversations.insert(key, tables::encode(self).as_slice())?;
        Ok(())
    }

    fn session_open(&self, now: u64, timeout: u64) -> bool {
        self.last_activity_ms.is_some_and(|t| now.saturating_sub(t) < timeout)
    }
}

/// Whether a message now would open a new session in this conversation.
pub(super) fn opens_session(t: &IngestTables<'_>, account: &str, conversation: &str, now: u64, opts: &HistoryOptions) -> Result<bool, StoreError> {
    Ok(!ConversationState::load(t, &key2(account, conversation))?.session_open(now, opts.session_timeout_ms))
}

/// Conversations of `account` active within the session timeout (counted up to `cap`).
pub(super) fn open_sessions(t: &IngestTables<'_>, account: &str, now: u64, opts: &HistoryOptions, cap: usize) -> Result<usize, StoreError> {
    count_open(&t.session_activity, account, now, opts, cap)
}

fn count_open(
    activity: &impl ReadableTable<(&'static str, u64, &'static str), ()>,
    account: &str,
    now: u64,
    opts: &HistoryOptions,
    cap: usize,
) -> Result<usize, StoreError> {
    let from = now.saturating_sub(opts.session_timeout_ms) + 1;
    Ok(activity.range((account, from, "")..=(account, u64::MAX, "\u{10FFFF}"))?.take(cap).count())
}

/// Appends a message to the conversation's history (trimming it to the retention) and moves
/// its session on, in `state` (the caller saves it, once, with its own changes).
pub(super) fn record(
    t: &mut IngestTables<'_>,
    account: &str,
    conversation: &str,
    state: &mut ConversationState,
    mut entry: HistoryEntry,
    now: u64,
    opts: &HistoryOptions,
) -> Result<(), StoreError> {
    let key = key2(account, conversation);
    if !state.session_open(now, opts.session_timeout_ms) {
        state.session += 1;
    }
    let last = state.last_activity_ms.map_or(now, |t| t.max(now));
    if state.last_activity_ms != Some(last) {
        if let Some(prev) = state.last_activity_ms {
            t.session_activity.remove((account, prev, conversation))?;
        }
        t.session_activity.insert((account, last, conversation), ())?;
    }
    state.last_activity_ms = Some(last);

    entry.seq = t.next_counter("history_seq")?;
    entry.session = state.session;
    let h = &mut t.history;
    let all = (key.as_str(), 0)..=(key.as_str(), u64::MAX);
    let mut len = match state.history_len {
        Some(n) => n,
        None => h.range(all.clone())?.count() as u64,
    };
    h.insert((key.as_str(), entry.seq), tables::encode(&entry).as_slice())?;
    len += 1;
    while len > opts.limit as u64 {
        let oldest = match h.range(all.clone())?.next() {
            Some(r) => r?.0.value().1,
            None => break,
        };
        h.remove((key.as_str(), oldest))?;
        len -= 1;
    }
    state.history_len = Some(len);
    Ok(())
}


impl RedbStore {
    /// The conversation's kept messages, newest first, at most `limit`.
    pub fn history(&self, account: &str, conversation: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let key = key2(account, conversation);
        let txn = self.read()?;
        let t = txn.open_table(HISTORY)?;
        let mut out = Vec::new();
        for r in t.range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?.rev().take(limit) {
            out.push(tables::decode("history", r?.1.value())?);
        }
        Ok(out)
    }

    /// Records an outbound message in its conversation's history, unless it would open a
    /// session beyond the account's cap (then nothing is written).
    pub async fn record_outbound(
        &self,
        account: String,
        conversation: String,
        message_id: String,
        text: Option<String>,
        opts: HistoryOptions,
    ) -> Result<Result<(), SessionLimit>, StoreError> {
        let now = self.now_ms();
        self.write_shared(move |shared| {
            let t = shared.tables()?;
            let key = key2(&account, &conversation);
            let mut state = ConversationState::load(t, &key)?;
            if !state.session_open(now, opts.session_timeout_ms) {
                let open = open_sessions(t, &account, now, &opts, opts.max_open_sessions)?;
                if open >= opts.max_open_sessions {
                    return Ok(Err(SessionLimit { open }));
                }
            }
            let entry = HistoryEntry::outbound(message_id, text, now);
            record(t, &account, &conversation, &mut state, entry, now, &opts)?;
            state.save(t, &key)?;
            Ok(Ok(()))
        })
        .await
    }

    /// Whether one more session could open in `account` now (for a refusal before enqueueing).
    pub fn session_admits(&self, account: &str, conversation: &str, opts: &HistoryOptions) -> Result<Result<(), SessionLimit>, StoreError> {
        let now = self.now_ms();
        let txn = self.read()?;
        let key = key2(account, conversation);
        let state: ConversationState = match txn.open_table(CONVERSATIONS)?.get(key.as_str())? {
            Some(v) => tables::decode("conversations", v.value())?,
            None => ConversationState::default(),
        };
        if state.session_open(now, opts.session_timeout_ms) {
            return Ok(Ok(()));
        }
        let open = count_open(&txn.open_table(SESSION_ACTIVITY)?, account, now, opts, opts.max_open_sessions)?;
        Ok(if open >= opts.max_open_sessions { Err(SessionLimit { open }) } else { Ok(()) })
    }
}
