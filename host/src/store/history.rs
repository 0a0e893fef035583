//! Conversation history and sessions: the last `limit` messages of each conversation (both
//! directions), each tagged with its session; a message after `session_timeout_ms` of quiet
//! starts a new session. An account may have at most `max_open_sessions` conversations active
//! within the timeout; a message that would open one more is refused (the caller answers 429).

use crate::model::EventKind;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryOptions {
    pub limit: usize,
    pub session_timeout_ms: u64,
    pub max_open_sessions: usize,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self { limit: 20, session_timeout_ms: 1_800_000, max_open_sessions: 1_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// One message of a conversation, as `GET /v1/conversations/{id}/messages` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub direction: Direction,
    pub at_ms: u64,
    /// 1 for the conversation's first session; a new one after the session timeout.
    pub session: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Inbox event id (inbound) or message id (outbound).
    pub id: String,
}

impl HistoryEntry {
    /// An inbound event as its conversation's history keeps it (the engine assigns `seq` and
    /// `session` when it records it).
    pub fn inbound(event: &crate::model::InboundEvent, inbox_id: u64, now: u64) -> Self {
        Self {
            seq: 0,
            direction: Direction::Inbound,
            at_ms: now,
            session: 0,
            kind: Some(event.kind),
            sender: event.sender.clone(),
            text: event.text.clone(),
            id: inbox_id.to_string(),
        }
    }

    /// An outbound message (the engine assigns `seq` and `session`).
    pub fn outbound(message_id: String, text: Option<String>, now: u64) -> Self {
        Self { seq: 0, direction: Direction::Outbound, at_ms: now, session: 0, kind: None, sender: None, text, id: message_id }
    }
}

/// Why an outbound message may not open a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    pub open: usize,
}
