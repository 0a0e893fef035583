//! The push queue: inbox events of accounts with `deliver_to`, delivered by the push worker
//! under fenced leases, in order per conversation (only a conversation's oldest undelivered
//! event is ever in flight), retried with backoff and dead-lettered like outbound messages.

use crate::model::InboundEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushLease {
    pub token: u64,
    pub expires_at_ms: u64,
}

/// One event on its way to an account's agent endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRow {
    /// The event id (the same as the inbox's, so an agent using both sees one id).
    pub id: u64,
    pub account: String,
    pub correlation_id: String,
    pub received_at_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    pub due_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<PushLease>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub event: InboundEvent,
}

#[derive(Debug, Clone)]
pub struct ClaimedPush {
    pub row: PushRow,
    pub token: u64,
}

/// What the push worker decided after an attempt.
#[derive(Debug, Clone)]
pub enum PushDisposition {
    Delivered,
    RetryAt { at_ms: u64, error: String },
    /// Dead-lettered: a permanent refusal or attempts exhausted.
    Failed(String),
}
