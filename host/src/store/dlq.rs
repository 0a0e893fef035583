//! The dead-letter queue: outbound messages that failed for good, and inbox events handed out
//! `max_deliveries` times without an ack. Redriving puts them back in line under the same id
//! (and so the same idempotency key): a redriven message still cannot be sent twice.

use super::inbox::InboxRow;
use super::outbox::OutboxRow;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadKind {
    Outbound,
    Inbound,
    /// An event push delivery gave up on.
    Push,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `out:<message id>`, `in:<event id>` or `push:<event id>`.
    pub id: String,
    pub kind: DeadKind,
    pub account: String,
    pub reason: String,
    pub dead_at_ms: u64,
    /// Attempts (outbound) or deliveries (inbound) made.
    pub tries: u32,
    /// The message or event as it was when it died.
    pub item: serde_json::Value,
}

impl DeadLetter {
    pub(crate) fn outbound(row: &OutboxRow, reason: String, now: u64) -> Self {
        Self {
            id: format!("out:{}", row.id),
            kind: DeadKind::Outbound,
            account: row.account.clone(),
            reason,
            dead_at_ms: now,
            tries: row.attempts.len() as u32,
            item: serde_json::to_value(row).expect("serializable"),
        }
    }

    pub(crate) fn push(row: &super::push::PushRow, reason: String, now: u64) -> Self {
        Self {
            id: format!("push:{}", row.id),
            kind: DeadKind::Push,
            account: row.account.clone(),
            reason,
            dead_at_ms: now,
            tries: row.attempts,
            item: serde_json::to_value(row).expect("serializable"),
        }
    }

    pub(crate) fn inbound(row: &InboxRow, now: u64) -> Self {
        Self {
            id: format!("in:{}", row.id),
            kind: DeadKind::Inbound,
            account: row.account.clone(),
            reason: format!("not acknowledged after {} deliveries", row.deliveries),
            dead_at_ms: now,
            tries: row.deliveries,
            item: serde_json::to_value(row).expect("serializable"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedriveResult {
    pub redriven: Vec<String>,
    /// Ids that are not in the dead-letter queue.
    pub not_found: Vec<String>,
}


/// Accepts `out:ID`, `in:ID`, `push:ID`, or a bare message id (`msg_…`) for convenience.
pub(crate) fn normalise(id: &str) -> String {
    if id.starts_with("out:") || id.starts_with("in:") || id.starts_with("push:") { id.to_string() } else { format!("out:{id}") }
}
