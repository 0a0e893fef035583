//! Conversation history and sessions: the last `limit` messages of each conversation (both
//! directions), each tagged with its session; a message after `session_timeout_ms` of quiet
//! starts a new session. An account may have at most `max_open_sessions` conversations active
//! within the timeout; a message that would open one more is refused (the caller answers 429).

use crate::store::history::*;
use super::tables::{self, CONVERSATIONS, HISTORY, SESSION_ACTIVITY, key2};
use super::{RedbStore, StoreError};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

/// Retention and session settings (`[inbox]`).

/// Session bookkeeping, kept beside the 24-hour-window state of the conversation.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct SessionState {
    #[serde(default)]
    pub session: u64,
    #[serde(default)]
    pub last_activity_ms: Option<u64>,
}

/// The conversation's row in CONVERSATIONS, with fields other modules own left untouched.
fn load_state(txn: &WriteTransaction, key: &str) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
    let t = txn.open_table(CONVERSATIONS)?;
    Ok(match t.get(key)? {
        Some(v) => tables::decode("conversations", v.value())?,
        None => serde_json::Map::new(),
    })
}

fn session_of(state: &serde_json::Map<String, serde_json::Value>) -> SessionState {
    serde_json::from_value(serde_json::Value::Object(state.clone())).unwrap_or_default()
}

fn is_open(s: &SessionState, now: u64, timeout: u64) -> bool {
    s.last_activity_ms.is_some_and(|t| now.saturating_sub(t) < timeout)
}

/// Whether a message now would open a new session in this conversation.
pub(super) fn opens_session(txn: &WriteTransaction, account: &str, conversation: &str, now: u64, opts: &HistoryOptions) -> Result<bool, StoreError> {
    let state = session_of(&load_state(txn, &key2(account, conversation))?);
    Ok(!is_open(&state, now, opts.session_timeout_ms))
}

/// Conversations of `account` active within the session timeout (counted up to `cap`).
pub(super) fn open_sessions(txn: &WriteTransaction, account: &str, now: u64, opts: &HistoryOptions, cap: usize) -> Result<usize, StoreError> {
    let from = now.saturating_sub(opts.session_timeout_ms) + 1;
    let t = txn.open_table(SESSION_ACTIVITY)?;
    let n = t.range((account, from, "")..=(account, u64::MAX, "\u{10FFFF}"))?.take(cap).count();
    Ok(n)
}

/// Appends a message to the conversation's history (trimming it to the retention) and moves
/// its session on.
pub(super) fn record(
    txn: &WriteTransaction,
    account: &str,
    conversation: &str,
    mut entry: HistoryEntry,
    now: u64,
    opts: &HistoryOptions,
) -> Result<(), StoreError> {
    let key = key2(account, conversation);
    let mut state = load_state(txn, &key)?;
    let mut s = session_of(&state);
    if !is_open(&s, now, opts.session_timeout_ms) {
        s.session += 1;
    }
    let mut activity = txn.open_table(SESSION_ACTIVITY)?;
    if let Some(prev) = s.last_activity_ms {
        activity.remove((account, prev, conversation))?;
    }
    let last = s.last_activity_ms.map_or(now, |t| t.max(now));
    activity.insert((account, last, conversation), ())?;
    s.last_activity_ms = Some(last);
    state.insert("session".into(), s.session.into());
    state.insert("last_activity_ms".into(), last.into());
    txn.open_table(CONVERSATIONS)?.insert(key.as_str(), tables::encode(&state).as_slice())?;

    entry.seq = tables::next_counter(txn, "history_seq")?;
    entry.session = s.session;
    let mut h = txn.open_table(HISTORY)?;
    h.insert((key.as_str(), entry.seq), tables::encode(&entry).as_slice())?;
    let kept: Vec<u64> = h
        .range((key.as_str(), 0)..=(key.as_str(), u64::MAX))?
        .rev()
        .skip(opts.limit)
        .map(|r| r.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()?;
    for seq in kept {
        h.remove((key.as_str(), seq))?;
    }
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
        self.write(move |txn| {
            if opens_session(txn, &account, &conversation, now, &opts)? {
                let open = open_sessions(txn, &account, now, &opts, opts.max_open_sessions)?;
                if open >= opts.max_open_sessions {
                    return Ok(Err(SessionLimit { open }));
                }
            }
            let entry = HistoryEntry::outbound(message_id, text, now);
            record(txn, &account, &conversation, entry, now, &opts)?;
            Ok(Ok(()))
        })
        .await
    }

    /// Whether one more session could open in `account` now (for a refusal before enqueueing).
    pub fn session_admits(&self, account: &str, conversation: &str, opts: &HistoryOptions) -> Result<Result<(), SessionLimit>, StoreError> {
        let now = self.now_ms();
        let txn = self.read()?;
        let key = key2(account, conversation);
        let state: serde_json::Map<String, serde_json::Value> = match txn.open_table(CONVERSATIONS)?.get(key.as_str())? {
            Some(v) => tables::decode("conversations", v.value())?,
            None => serde_json::Map::new(),
        };
        if is_open(&session_of(&state), now, opts.session_timeout_ms) {
            return Ok(Ok(()));
        }
        let from = now.saturating_sub(opts.session_timeout_ms) + 1;
        let t = txn.open_table(SESSION_ACTIVITY)?;
        let open = t.range((account, from, "")..=(account, u64::MAX, "\u{10FFFF}"))?.take(opts.max_open_sessions).count();
        Ok(if open >= opts.max_open_sessions { Err(SessionLimit { open }) } else { Ok(()) })
    }
}
