//! Agent-tool invocations and their approvals. Every invocation is a record (with its
//! correlation id); one that needs a human's YES waits as `awaiting_approval`, indexed by its
//! conversation (so one reply resolves all of that conversation's) and by its expiry.
//!
//! Approval state changes are durable before anything acts on them: a YES found in a webhook
//! moves the call to `approved` in the webhook's own ingest transaction; the runner then moves
//! it `approved → running` (at most once) before the tool runs. A restart re-runs `approved`
//! calls and fails `running` ones (the tool may or may not have finished: never run twice).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Waiting for an authorized YES/NO in its conversation.
    AwaitingApproval,
    /// YES received; the tool runs next.
    Approved,
    Running,
    Succeeded,
    /// The tool said no, or the sandbox stopped it, or a restart interrupted it.
    Failed,
    /// NO received.
    Denied,
    /// Nobody answered before the approval timeout.
    Expired,
}

impl CallStatus {
    pub fn is_final(self) -> bool {
        matches!(self, CallStatus::Succeeded | CallStatus::Failed | CallStatus::Denied | CallStatus::Expired)
    }
}

/// The approval side of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalInfo {
    pub expires_at_ms: u64,
    /// The outbound message that carried the prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub tool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    pub args: serde_json::Value,
    pub correlation_id: String,
    pub status: CallStatus,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// `{"code","message"}` of a failed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum CallEnd {
    Succeeded(serde_json::Value),
    Failed { code: String, message: String },
}
