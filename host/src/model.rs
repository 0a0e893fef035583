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
    pub payload: Payload,
}

/// An event's payload: JSON kept as the text the plugin wrote. The webhook path only checks
/// it is JSON and the store writes it out as it is: parsing it into a tree on the request
/// thread, printing it again on the store's writer and freeing the tree there cost more per
/// webhook than the plugin's own parse. Reading it back (API, push) goes through a `Value`,
/// so any serde format can carry it. Two payloads are equal when their JSON values are.
#[derive(Clone)]
pub struct Payload(Box<serde_json::value::RawValue>);

impl Payload {
    /// What a plugin returned: its JSON as it is, or a JSON string of the text when it is not
    /// JSON (nothing a plugin says is dropped).
    pub fn from_plugin(text: String) -> Self {
        // One scan: checking with `IgnoredAny` and then `RawValue::from_string` read every
        // payload twice (the second check is inside `from_string`), ~2 % of the request
        // threads on the webhook path. The copy this makes instead is cheaper than a scan.
        match serde_json::from_str::<Box<serde_json::value::RawValue>>(&text) {
            Ok(raw) => Self(raw),
            Err(_) => Self::from(serde_json::Value::String(text)),
        }
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The payload as a JSON value.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("a payload is valid JSON")
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::from(serde_json::Value::Null)
    }
}

impl From<serde_json::Value> for Payload {
    fn from(v: serde_json::Value) -> Self {
        Self(serde_json::value::to_raw_value(&v).expect("a JSON value prints"))
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.value() == other.value()
    }
}

impl Eq for Payload {}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.get())
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Payload {
    /// Through a `Value`: works from any deserializer (`serde_json::from_value` included).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(Self::from)
    }
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
    /// A temporary failure: the provider's code and reason, and the delay it asked for.
    Retry { code: String, reason: String, after_ms: Option<u64> },
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

#[cfg(test)]
mod tests {
    use super::Payload;
    use serde_json::json;

    #[test]
    fn a_payload_keeps_the_plugins_text_and_compares_as_json() {
        let p = Payload::from_plugin(r#"{"b": 1, "a": [true]}"#.into());
        assert_eq!(p.get(), r#"{"b": 1, "a": [true]}"#, "written out as the plugin wrote it");
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"b": 1, "a": [true]}"#);
        assert_eq!(p, Payload::from(json!({"a": [true], "b": 1})), "equal as JSON values");
        assert_ne!(p, Payload::from(json!({"a": [false], "b": 1})));
        // Not JSON: kept as a JSON string, nothing dropped.
        let odd = Payload::from_plugin("not json {".into());
        assert_eq!(odd.value(), json!("not json {"));
        let trailing = Payload::from_plugin(r#"{"a":1} x"#.into());
        assert_eq!(trailing.value(), json!(r#"{"a":1} x"#), "JSON followed by more is not JSON");
        assert_eq!(Payload::from_plugin(" {\"a\":1}\n".into()).get(), r#"{"a":1}"#, "whitespace around it is not kept");
    }

    #[test]
    fn a_payload_reads_back_from_any_serde_source() {
        let p = Payload::from_plugin(r#"{"x":"y"}"#.into());
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v, json!({"x": "y"}), "into a Value (push bodies, API answers)");
        assert_eq!(serde_json::from_value::<Payload>(v).unwrap(), p, "from a Value (PostgreSQL rows)");
        assert_eq!(serde_json::from_str::<Payload>(r#" {"x" : "y"} "#).unwrap(), p, "from text (redb rows)");
    }
}
