//! Domain types shared by the store, the runtime and the API. They mirror the WIT types but
//! belong to the host: `runtime/` converts at the boundary so nothing else sees wasmtime types.

use serde::{Deserialize, Serialize};

/// A raw HTTP request as a plugin sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// Inbound: path and query. Outbound: absolute URL.
    pub url: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout_ms: Option<u32>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Message,
    Status,
    Reaction,
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Sent,
    Delivered,
    Read,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub provider_message_id: String,
    pub state: DeliveryState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// One event a plugin produced from a verified webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundEvent {
    pub provider_event_id: String,
    pub kind: EventKind,
    pub conversation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusUpdate>,
    /// Plugin-normalised JSON (or the raw provider JSON for `unsupported`).
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    pub kind: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageBody {
    Text(String),
    Media(Media),
    Template(Template),
}

impl MessageBody {
    /// Free-form messages are what a customer-service window restricts; templates are not.
    pub fn is_free_form(&self) -> bool {
        !matches!(self, MessageBody::Template(_))
    }
}

/// What a plugin's `deliver` said about one attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum DeliveryOutcome {
    Delivered { provider_message_id: String },
    Retry { after_ms: Option<u64> },
    RateLimited { after_ms: u64 },
    Permanent { code: String, reason: String },
}

/// What an agent tool says about itself (`describe`), as the host keeps and lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub description: String,
    /// JSON Schema of the invoke argument.
    pub schema: serde_json::Value,
    /// Declared by the tool (manifest or `describe`); config may force it on.
    pub requires_approval: bool,
}

/// Why a tool said no (its own answer, not a sandbox failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "message")]
pub enum ToolError {
    InvalidArgs(String),
    Failed(String),
}

/// Whether two sender ids name the same sender: trimmed, a leading `+` ignored
/// (`+16505551234` = `16505551234`); an empty id matches nothing.
pub fn same_sender(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_start_matches('+').to_string();
    let a = norm(a);
    !a.is_empty() && a == norm(b)
}

/// An approval reply: `Some(true)` for YES, `Some(false)` for NO (trimmed, any case).
pub fn approval_reply(text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if t.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

/// What a polling plugin's `poll` returned: events and the cursor to commit with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollBatch {
    pub events: Vec<InboundEvent>,
    /// `None`: keep the current cursor.
    pub cursor: Option<String>,
}
