//! Conversions between generated WIT types and the host's model types.

use super::bindings::wit;
use crate::model::{
    DeliveryOutcome, DeliveryState, EventKind, Failure, HttpRequest, HttpResponse, InboundEvent, MessageBody,
    StatusUpdate,
};

/// An outbound message as handed to a plugin.
pub struct Outbound<'a> {
    pub id: &'a str,
    pub account: &'a str,
    pub to: &'a str,
    pub conversation: &'a str,
    pub body: &'a MessageBody,
    pub metadata: Option<&'a serde_json::Value>,
    pub attempt: u32,
    pub idempotency_key: Option<&'a str>,
}

pub(super) fn request_to_wit(r: HttpRequest) -> wit::HttpRequest {
    wit::HttpRequest { method: r.method, url: r.url, headers: r.headers, body: r.body, timeout_ms: r.timeout_ms }
}

pub(super) fn request_from_wit(r: wit::HttpRequest) -> HttpRequest {
    HttpRequest { method: r.method, url: r.url, headers: r.headers, body: r.body, timeout_ms: r.timeout_ms }
}

pub(super) fn response_to_wit(r: HttpResponse) -> wit::HttpResponse {
    wit::HttpResponse { status: r.status, headers: r.headers, body: r.body }
}

pub(super) fn response_from_wit(r: wit::HttpResponse) -> HttpResponse {
    HttpResponse { status: r.status, headers: r.headers, body: r.body }
}

fn failure_from_wit(f: wit::Failure) -> Failure {
    Failure { code: f.code, reason: f.reason }
}

pub(super) fn event_from_wit(e: wit::InboundEvent) -> InboundEvent {
    let payload = crate::model::Payload::from_plugin(e.payload);
    InboundEvent {
        provider_event_id: e.provider_event_id,
        kind: match e.kind {
            wit::EventKind::Message => EventKind::Message,
            wit::EventKind::Status => EventKind::Status,
            wit::EventKind::Reaction => EventKind::Reaction,
            wit::EventKind::Unsupported => EventKind::Unsupported,
        },
        conversation: e.conversation,
        sender: e.sender,
        text: e.text,
        timestamp_ms: e.timestamp_ms,
        status: e.status.map(|s| StatusUpdate {
            provider_message_id: s.provider_message_id,
            state: match s.state {
                wit::DeliveryState::Sent => DeliveryState::Sent,
                wit::DeliveryState::Delivered => DeliveryState::Delivered,
                wit::DeliveryState::Read => DeliveryState::Read,
                wit::DeliveryState::Failed => DeliveryState::Failed,
            },
            error: s.error.map(failure_from_wit),
        }),
        payload,
    }
}

pub(super) fn parse_error_text(e: wit::ParseError) -> String {
    match e {
        wit::ParseError::Malformed(m) => format!("malformed: {m}"),
        wit::ParseError::Unexpected(m) => format!("unexpected: {m}"),
    }
}

pub(super) fn outbound_to_wit(m: Outbound<'_>) -> wit::OutboundMessage {
    let body = match m.body {
        MessageBody::Text(t) => wit::MessageBody::Text(t.clone()),
        MessageBody::Media(md) => wit::MessageBody::Media(wit::Media {
            kind: md.kind.clone(),
            url: md.url.clone(),
            caption: md.caption.clone(),
        }),
        MessageBody::Template(t) => wit::MessageBody::Template(wit::Template {
            name: t.name.clone(),
            language: t.language.clone(),
            components: t.components.as_ref().map(|c| c.to_string()),
        }),
    };
    wit::OutboundMessage {
        id: m.id.to_string(),
        account: m.account.to_string(),
        to: m.to.to_string(),
        conversation: Some(m.conversation.to_string()),
        body,
        metadata: m.metadata.map(|v| v.to_string()),
        attempt: m.attempt,
        idempotency_key: m.idempotency_key.map(str::to_string),
    }
}

pub(super) fn outcome_from_wit(o: wit::DeliveryOutcome) -> DeliveryOutcome {
    match o {
        wit::DeliveryOutcome::Delivered(id) => DeliveryOutcome::Delivered { provider_message_id: id },
        wit::DeliveryOutcome::Retry(t) => DeliveryOutcome::Retry { code: t.code, reason: t.reason, after_ms: t.after_ms },
        wit::DeliveryOutcome::RateLimited(after) => DeliveryOutcome::RateLimited { after_ms: after },
        wit::DeliveryOutcome::Permanent(f) => DeliveryOutcome::Permanent { code: f.code, reason: f.reason },
    }
}

/// What a plugin may hand back. Guest memory already bounds a result to the memory cap; these
/// keep one call from making the host store or forward megabytes it never asked for.
pub(super) const MAX_ID_BYTES: usize = 1024;
pub(super) const MAX_REASON_BYTES: usize = 16 * 1024;
pub(super) const MAX_EVENTS: usize = 1_000;
pub(super) const MAX_EVENTS_BYTES: usize = 8 << 20;
pub(super) const MAX_HANDSHAKE_BODY: usize = 64 * 1024;

pub(super) fn check_outcome(o: &wit::DeliveryOutcome) -> Result<(), String> {
    match o {
        wit::DeliveryOutcome::Delivered(id) if id.len() > MAX_ID_BYTES => {
            Err(format!("provider message id of {} bytes (limit {MAX_ID_BYTES})", id.len()))
        }
        wit::DeliveryOutcome::Permanent(wit::Failure { code, reason }) | wit::DeliveryOutcome::Retry(wit::Transient { code, reason, .. })
            if code.len() > MAX_ID_BYTES || reason.len() > MAX_REASON_BYTES =>
        {
            Err(format!("failure of {} + {} bytes (limits {MAX_ID_BYTES} + {MAX_REASON_BYTES})", code.len(), reason.len()))
        }
        _ => Ok(()),
    }
}

pub(super) fn check_events(events: &[wit::InboundEvent]) -> Result<(), String> {
    check_event_sizes(events)?;
    check_event_ids(events)
}

/// How many events and how many bytes in all: the plugin's doing.
pub(super) fn check_event_sizes(events: &[wit::InboundEvent]) -> Result<(), String> {
    if events.len() > MAX_EVENTS {
        return Err(format!("{} events (limit {MAX_EVENTS})", events.len()));
    }
    let bytes: usize = events
        .iter()
        .map(|e| e.payload.len() + e.provider_event_id.len() + e.conversation.len() + e.text.as_ref().map_or(0, String::len))
        .sum();
    if bytes > MAX_EVENTS_BYTES {
        return Err(format!("events of {bytes} bytes (limit {MAX_EVENTS_BYTES})"));
    }
    Ok(())
}

/// Ids and conversations short enough to store. A parser copies them from the webhook, so one
/// too long is usually the request's doing.
pub(super) fn check_event_ids(events: &[wit::InboundEvent]) -> Result<(), String> {
    if let Some(e) = events.iter().find(|e| e.provider_event_id.len() > MAX_ID_BYTES || e.conversation.len() > MAX_ID_BYTES) {
        return Err(format!("event id or conversation over {MAX_ID_BYTES} bytes (event {})", e.provider_event_id.len()));
    }
    Ok(())
}

pub(super) fn check_response(r: &wit::HttpResponse) -> Result<(), String> {
    if r.body.len() > MAX_HANDSHAKE_BODY {
        return Err(format!("handshake body of {} bytes (limit {MAX_HANDSHAKE_BODY})", r.body.len()));
    }
    Ok(())
}

/// The largest result a tool may return (its JSON text).
pub(super) const MAX_TOOL_RESULT_BYTES: usize = 1 << 20;
/// The largest `describe` schema a tool may declare.
pub(super) const MAX_TOOL_SCHEMA_BYTES: usize = 64 * 1024;

pub(super) fn tool_error_from_wit(e: wit::ToolError) -> crate::model::ToolError {
    let cap = |m: String| m.chars().take(MAX_REASON_BYTES).collect::<String>();
    match e {
        wit::ToolError::InvalidArgs(m) => crate::model::ToolError::InvalidArgs(cap(m)),
        wit::ToolError::Failed(m) => crate::model::ToolError::Failed(cap(m)),
    }
}

/// A tool's `describe`, checked: the schema must be a JSON object of bounded size.
pub(super) fn tool_info_from_wit(i: wit::ToolInfo, manifest_requires_approval: bool) -> Result<crate::model::ToolInfo, String> {
    if i.schema.len() > MAX_TOOL_SCHEMA_BYTES || i.description.len() > MAX_REASON_BYTES {
        return Err(format!("describe(): schema or description too large (limits {MAX_TOOL_SCHEMA_BYTES} / {MAX_REASON_BYTES} bytes)"));
    }
    let schema: serde_json::Value =
        serde_json::from_str(&i.schema).map_err(|e| format!("describe(): schema is not JSON: {e}"))?;
    if !schema.is_object() {
        return Err("describe(): schema must be a JSON Schema object".into());
    }
    Ok(crate::model::ToolInfo {
        name: i.name,
        description: i.description,
        schema,
        requires_approval: i.requires_approval || manifest_requires_approval,
    })
}
