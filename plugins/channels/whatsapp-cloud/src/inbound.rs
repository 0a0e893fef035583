//! Meta webhook JSON → Switchboard inbound events. Pure: no host calls.
//!
//! A delivery looks like
//! `{"object":"whatsapp_business_account","entry":[{"id":WABA,"changes":[{"field":"messages",
//! "value":{"metadata":{..},"contacts":[..],"messages":[..],"statuses":[..]}}]}]}`.
//! Every message, status and change becomes exactly one event; whatever is not understood
//! becomes an `unsupported` event carrying the raw JSON, so nothing is dropped silently.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use switchboard_sdk::{DeliveryState, EventKind, Failure, InboundEvent, ParseError, StatusUpdate};

use crate::errors;

pub(crate) mod fast;

/// The only `object` this channel accepts.
pub const OBJECT: &str = "whatsapp_business_account";

/// Media message types; each carries `{id, mime_type, sha256, caption?, ...}` under its type.
pub const MEDIA_TYPES: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// Parses a verified webhook body into events, in delivery order: the common shape without a
/// JSON tree ([`fast`]), anything else by [`parse_general`].
pub fn parse(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    match fast::parse(body) {
        Some(events) => Ok(events),
        None => parse_general(body),
    }
}

/// Parses any body through a `serde_json::Value`: every shape, every error.
pub fn parse_general(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError::Malformed(format!("body is not JSON: {e}")))?;
    let root = root
        .as_object()
        .ok_or_else(|| ParseError::Malformed("body is not a JSON object".into()))?;
    match root.get("object") {
        Some(Value::String(o)) if o == OBJECT => {}
        Some(Value::String(o)) => {
            return Err(ParseError::Unexpected(format!(
                "object `{o}` is not `{OBJECT}`"
            )));
        }
        Some(_) => return Err(ParseError::Malformed("`object` is not a string".into())),
        None => return Err(ParseError::Malformed("missing `object`".into())),
    }
    let entries = root
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError::Malformed("missing `entry` array".into()))?;

    let mut events = Vec::new();
    for entry in entries {
        let entry_id = entry.get("id").and_then(Value::as_str).unwrap_or("");
        match entry.get("changes").and_then(Value::as_array) {
            Some(changes) => {
                for change in changes {
                    parse_change(entry_id, change, &mut events);
                }
            }
            None => events.push(unsupported_hashed(entry_id, entry)),
        }
    }
    Ok(events)
}

fn parse_change(entry_id: &str, change: &Value, events: &mut Vec<InboundEvent>) {
    let value = change.get("value");
    // Account-level events have no user: their conversation is the business phone number id
    // (or the WhatsApp Business Account id).
    let account_key = value
        .and_then(|v| v.pointer("/metadata/phone_number_id"))
        .and_then(Value::as_str)
        .unwrap_or(entry_id);

    let (Some("messages"), Some(Value::Object(value))) =
        (change.get("field").and_then(Value::as_str), value)
    else {
        // Other fields (message_template_status_update, account_update, ...) are kept raw.
        events.push(unsupported_hashed(account_key, change));
        return;
    };

    let messages = value.get("messages");
    let statuses = value.get("statuses");
    let has_errors = value.get("errors").is_some_and(|e| !e.is_null());
    let understood = matches!(messages, None | Some(Value::Array(_)))
        && matches!(statuses, None | Some(Value::Array(_)))
        && (messages.is_some() || statuses.is_some());
    if has_errors || !understood {
        // Value-level errors (e.g. a webhook Meta could not deliver in full) or a shape we do
        // not know: keep the whole change.
        events.push(unsupported_hashed(account_key, change));
    }

    let contacts = value.get("contacts").map_or_else(Vec::new, contact_names);
    for msg in messages.and_then(Value::as_array).into_iter().flatten() {
        events.push(message_event(msg, &contacts));
    }
    for status in statuses.and_then(Value::as_array).into_iter().flatten() {
        events.push(status_event(status));
    }
}

/// `wa_id` → profile name, from `value.contacts`.
fn contact_names(contacts: &Value) -> Vec<(String, String)> {
    contacts
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let wa_id = c.get("wa_id")?.as_str()?;
            let name = c.pointer("/profile/name")?.as_str()?;
            Some((wa_id.to_string(), name.to_string()))
        })
        .collect()
}

/// One entry of `value.messages`.
pub fn message_event(msg: &Value, contacts: &[(String, String)]) -> InboundEvent {
    let from = str_at(msg, "from");
    let (Some(id), Some(from)) = (str_at(msg, "id"), from) else {
        return unsupported_hashed(from.unwrap_or(""), msg);
    };
    let kind = str_at(msg, "type").unwrap_or("");
    let Some(normalised) = normalise_message(kind, msg) else {
        return unsupported(id, from, msg);
    };

    let mut payload = Map::new();
    payload.insert("type".into(), json!(kind));
    if let Some(text) = &normalised.text {
        payload.insert("text".into(), json!(text));
    }
    for (key, value) in normalised.fields {
        payload.insert(key.into(), value);
    }
    if let Some(context) = msg.get("context") {
        payload.insert("context".into(), context.clone());
    }
    // The contact whose wa_id is the sender; else the only contact (wa_id and `from` can
    // differ in formatting for some countries).
    let contact_name = contacts
        .iter()
        .find(|(wa_id, _)| wa_id == from)
        .or_else(|| (contacts.len() == 1).then(|| &contacts[0]))
        .map(|(_, name)| name.clone());
    if let Some(name) = contact_name {
        payload.insert("contact_name".into(), json!(name));
    }
    payload.insert("raw".into(), msg.clone());

    InboundEvent {
        provider_event_id: id.to_string(),
        kind: normalised.kind,
        conversation: from.to_string(),
        sender: Some(from.to_string()),
        text: normalised.text,
        timestamp_ms: timestamp_ms(msg),
        status: None,
        payload: Value::Object(payload).to_string(),
    }
}

struct Normalised {
    kind: EventKind,
    text: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

/// The type-specific part of a message, or `None` when this type (or sub-type) is not
/// understood and the message must become `unsupported`.
fn normalise_message(kind: &str, msg: &Value) -> Option<Normalised> {
    let message = |text: Option<String>, fields| {
        Some(Normalised {
            kind: EventKind::Message,
            text,
            fields,
        })
    };
    match kind {
        "text" => {
            let body = msg.pointer("/text/body")?.as_str()?;
            message(Some(body.to_string()), vec![])
        }
        k if MEDIA_TYPES.contains(&k) => {
            let m = msg.get(k)?.as_object()?;
            if m.get("id").is_none() && m.get("url").is_none() {
                return None;
            }
            let mut media = Map::new();
            media.insert("kind".into(), json!(k));
            for key in [
                "id",
                "mime_type",
                "sha256",
                "caption",
                "filename",
                "url",
                "voice",
                "animated",
            ] {
                if let Some(v) = m.get(key) {
                    media.insert(key.into(), v.clone());
                }
            }
            let caption = m.get("caption").and_then(Value::as_str).map(str::to_string);
            message(caption, vec![("media", Value::Object(media))])
        }
        "interactive" => {
            let sub = msg.pointer("/interactive/type")?.as_str()?;
            if sub != "button_reply" && sub != "list_reply" {
                return None; // e.g. nfm_reply (Flows): kept raw as unsupported
            }
            let r = msg.get("interactive")?.get(sub)?;
            let id = r.get("id")?.as_str()?;
            let title = r.get("title").and_then(Value::as_str).unwrap_or("");
            let mut reply = json!({"type": sub, "id": id, "title": title});
            if let Some(d) = r.get("description") {
                reply["description"] = d.clone();
            }
            message(Some(title.to_string()), vec![("reply", reply)])
        }
        "button" => {
            let b = msg.get("button")?;
            let payload = b.get("payload").and_then(Value::as_str);
            let text = b.get("text").and_then(Value::as_str);
            if payload.is_none() && text.is_none() {
                return None;
            }
            let reply = json!({"type": "button", "payload": payload, "text": text});
            message(text.map(str::to_string), vec![("reply", reply)])
        }
        "reaction" => {
            let r = msg.get("reaction")?;
            let target = r.get("message_id")?.as_str()?;
            // No `emoji` (or an empty one) means the user removed their reaction.
            let emoji = r
                .get("emoji")
                .and_then(Value::as_str)
                .filter(|e| !e.is_empty());
            Some(Normalised {
                kind: EventKind::Reaction,
                text: emoji.map(str::to_string),
                fields: vec![("reaction", json!({"message_id": target, "emoji": emoji}))],
            })
        }
        _ => None,
    }
}

/// One entry of `value.statuses`.
pub fn status_event(status: &Value) -> InboundEvent {
    let recipient = str_at(status, "recipient_id").unwrap_or("");
    let (Some(wamid), Some(state)) = (str_at(status, "id"), str_at(status, "status")) else {
        return unsupported_hashed(recipient, status);
    };
    let event_id = format!("{wamid}:{state}");
    let state_enum = match state {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "read" => DeliveryState::Read,
        "failed" => DeliveryState::Failed,
        _ => return unsupported(&event_id, recipient, status), // e.g. "deleted", "warning"
    };
    let error = match state_enum {
        DeliveryState::Failed => status
            .get("errors")
            .and_then(Value::as_array)
            .and_then(|errs| errs.first())
            .map(|e| Failure::new(errors::code_string(e), errors::reason(e))),
        _ => None,
    };

    let mut payload = Map::new();
    payload.insert("type".into(), json!("status"));
    payload.insert("status".into(), json!(state));
    payload.insert("message_id".into(), json!(wamid));
    payload.insert("recipient_id".into(), json!(recipient));
    if let Some(e) = &error {
        payload.insert("error".into(), json!({"code": e.code, "reason": e.reason}));
    }
    for key in ["conversation", "pricing", "biz_opaque_callback_data"] {
        if let Some(v) = status.get(key) {
            payload.insert(key.into(), v.clone());
        }
    }
    payload.insert("raw".into(), status.clone());

    InboundEvent {
        provider_event_id: event_id,
        kind: EventKind::Status,
        conversation: recipient.to_string(),
        sender: None,
        text: None,
        timestamp_ms: timestamp_ms(status),
        status: Some(StatusUpdate {
            provider_message_id: wamid.to_string(),
            state: state_enum,
            error,
        }),
        payload: Value::Object(payload).to_string(),
    }
}

/// An `unsupported` event with a provider id we have.
fn unsupported(event_id: &str, conversation: &str, raw: &Value) -> InboundEvent {
    InboundEvent {
        provider_event_id: event_id.to_string(),
        kind: EventKind::Unsupported,
        conversation: conversation.to_string(),
        sender: str_at(raw, "from").map(str::to_string),
        text: None,
        timestamp_ms: timestamp_ms(raw),
        status: None,
        payload: raw.to_string(),
    }
}

/// An `unsupported` event without a provider id: the id is derived from the content, so a
/// redelivery of the same JSON dedupes.
fn unsupported_hashed(conversation: &str, raw: &Value) -> InboundEvent {
    unsupported(&content_id(raw), conversation, raw)
}

/// `sha256:<hex>` of the canonical JSON (object keys sorted, so key order does not matter).
pub fn content_id(raw: &Value) -> String {
    let digest = Sha256::digest(raw.to_string().as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Meta timestamps are Unix seconds as strings (numbers are accepted too).
fn timestamp_ms(v: &Value) -> Option<u64> {
    timestamp_of(v.get("timestamp")?)
}

fn timestamp_of(timestamp: &Value) -> Option<u64> {
    let secs = match timestamp {
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        Value::Number(n) => n.as_u64()?,
        _ => return None,
    };
    secs.checked_mul(1000)
}
