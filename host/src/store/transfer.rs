//! Moving a store between engines (`switchboard store export|import`): every durable record as
//! one JSON line, engine-neutral. Derived indexes (due orders, FIFOs, counts) are not exported;
//! the importing engine rebuilds them from the rows. Leases are not exported: they belong to
//! processes of the old store, and the fencing counter (exported) keeps new tokens above theirs.

use super::inbox::InboxRow;
use super::{DeadLetter, HistoryEntry, OutboxRow, PushRow, ToolCall};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum ExportRecord {
    Inbox { row: InboxRow },
    Dedupe { account: String, event_id: String, expires_at_ms: u64 },
    Outbox { row: OutboxRow },
    Idempotency { key: String, message_id: String, fingerprint: String, expires_at_ms: u64 },
    DeadLetter { entry: DeadLetter },
    Conversation { account: String, conversation: String, last_inbound_ms: Option<u64>, session: u64, last_activity_ms: Option<u64> },
    History { account: String, conversation: String, entry: HistoryEntry },
    PluginKv { plugin: String, key: String, value: Vec<u8> },
    Push { row: PushRow },
    ToolCall { call: ToolCall },
    PollCursor { account: String, cursor: String },
    /// Id and token counters: `fence`, `inbox_seq`, `outbox_seq`, `history_seq`. Importing
    /// moves the target's counter up to at least this value, never down.
    Counter { name: String, value: u64 },
}

impl ExportRecord {
    pub fn table(&self) -> &'static str {
        match self {
            ExportRecord::Inbox { .. } => "inbox",
            ExportRecord::Dedupe { .. } => "dedupe",
            ExportRecord::Outbox { .. } => "outbox",
            ExportRecord::Idempotency { .. } => "idempotency",
            ExportRecord::DeadLetter { .. } => "dead_letters",
            ExportRecord::Conversation { .. } => "conversations",
            ExportRecord::History { .. } => "history",
            ExportRecord::PluginKv { .. } => "plugin_kv",
            ExportRecord::Push { .. } => "push",
            ExportRecord::ToolCall { .. } => "tool_calls",
            ExportRecord::PollCursor { .. } => "poll_cursors",
            ExportRecord::Counter { .. } => "counters",
        }
    }
}

/// An outbox row still in its queue (its conversation's FIFO and the account's cap).
pub(crate) fn outbox_open(row: &OutboxRow) -> bool {
    use super::MessageStatus::*;
    matches!(row.status, Queued | Sending | Retrying)
}
