//! Outbound messages: idempotent enqueue, claim with a fenced lease, attempt records, and
//! provider status updates.

use super::history::HistoryOptions;
use crate::model::{Failure, MessageBody};
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
    pub(crate) fn rank(self) -> u8 {
        match self {
            MessageStatus::Queued | MessageStatus::Sending | MessageStatus::Retrying => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Read => 3,
            MessageStatus::Failed => 4,
        }
    }
}

/// Claim order among due messages: all due `high` before any due `normal`, and so on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub(crate) fn rank(self) -> u8 {
        match self {
            Priority::High => 0,
            Priority::Normal => 1,
            Priority::Low => 2,
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
    #[serde(default)]
    pub priority: Priority,
    /// Position in its conversation's FIFO.
    #[serde(default)]
    pub seq: u64,
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

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub account: String,
    pub to: String,
    pub conversation: String,
    pub body: MessageBody,
    pub metadata: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    /// Hash of the request, so a reused key with a different request is refused (empty
    /// without a key: nothing compares it).
    pub fingerprint: String,
    pub correlation_id: String,
    pub priority: Priority,
    /// Refuse the message when the account already has this many unfinished messages.
    pub max_queued: u64,
    /// How long the idempotency key is remembered.
    pub idempotency_ttl_ms: u64,
    /// Refuse the message if the conversation's last inbound message is older than this (a
    /// free-form message on a channel with a customer-service window). Checked in the
    /// enqueue's own transaction, against the same row the enqueue writes: no separate read
    /// per message, and no inbound message can slip between the check and the write. A
    /// conversation with no inbound on record is not refused: the provider decides.
    pub window_ms: Option<u64>,
    /// Keep the message in its conversation's history, in the same transaction, and refuse it
    /// (nothing written) if it would open a session beyond the account's cap.
    pub history: Option<HistoryOptions>,
}

impl OutboxRow {
    /// What the conversation's history shows of the message.
    pub fn history_text(&self) -> Option<String> {
        match &self.body {
            MessageBody::Text(t) => Some(t.clone()),
            MessageBody::Media(m) => m.caption.clone(),
            MessageBody::Template(t) => Some(format!("[template {}]", t.name)),
        }
    }

    /// A message as enqueued: queued, due now, no attempts (both engines store this).
    pub fn queued(id: String, msg: NewMessage, seq: u64, now: u64) -> Self {
        Self {
            id,
            account: msg.account,
            to: msg.to,
            conversation: msg.conversation,
            body: msg.body,
            metadata: msg.metadata,
            idempotency_key: msg.idempotency_key,
            correlation_id: msg.correlation_id,
            priority: msg.priority,
            seq,
            status: MessageStatus::Queued,
            created_at_ms: now,
            updated_at_ms: now,
            due_at_ms: Some(now),
            attempts: Vec::new(),
            provider_message_id: None,
            error: None,
            lease: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum EnqueueOutcome {
    Created(OutboxRow),
    /// The idempotency key was seen with the same request: the original message.
    Existing(OutboxRow),
    /// The idempotency key was seen with a different request.
    KeyConflict { id: String },
    /// The account's queue is at its cap.
    QueueFull { queued: u64 },
    /// The conversation's customer-service window closed at this time (only with
    /// [`NewMessage::window_ms`]).
    OutsideWindow { closed_at_ms: u64 },
    /// The message would open a session in its conversation and the account already has
    /// `open` sessions, its cap (only with [`NewMessage::history`]).
    SessionLimit { open: usize },
}

#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub row: OutboxRow,
    pub token: u64,
    /// The message was claimed before and that lease ran out (its holder stalled or died).
    pub reclaimed: bool,
}

/// What the worker decided after an attempt.
#[derive(Debug, Clone)]
pub enum Disposition {
    Delivered { provider_message_id: String },
    RetryAt(u64),
    /// Dead-lettered: a permanent error or attempts exhausted.
    Failed(Failure),
    /// Not attempted (rate limit, open breaker): back in the queue at this time, no attempt
    /// counted.
    Deferred(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordResult {
    Recorded(MessageStatus),
    /// The lease was re-granted to someone else: this worker's result is discarded.
    Fenced,
}
