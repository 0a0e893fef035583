//! Telegram `Update` JSON → Switchboard inbound events. Pure: no host calls.
//!
//! Every update becomes exactly one event with `provider-event-id` = its `update_id`:
//! * `message`, `edited_message`, `channel_post`, `edited_channel_post`, `business_message`
//!   with text, a caption or media (photo, document, video, audio, voice, sticker, animation,
//!   video_note) → `message`, conversation = `chat.id`, sender = `from.id`;
//! * `callback_query` (an inline button press) → `message` whose text is the button's `data`;
//! * `message_reaction` → `reaction` (text = the first new emoji, none when removed);
//! * anything else (service messages, locations, polls, member updates, …) → `unsupported`
//!   with the raw update.

use serde_json::{Map, Value, json};
use switchboard_sdk::{EventKind, InboundEvent, ParseError};

/// Message-like update fields, in the order Telegram documents them.
pub const MESSAGE_FIELDS: [&str; 6] = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
];

/// Media content fields of a message.
pub const MEDIA_FIELDS: [&str; 8] = [
    "photo", "document", "video", "audio", "voice", "sticker", "animation", "video_note",
];

/// Parses a webhook body: one `Update`.
pub fn parse(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let update: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError::Malformed(format!("body is not JSON: {e}")))?;
    Ok(vec![parse_update(&update)?])
}

/// One `Update` → one event.
pub fn parse_update(update: &Value) -> Result<InboundEvent, ParseError> {
    if !update.is_object() {
        return Err(ParseError::Malformed("update is not a JSON object".into()));
    }
    let update_id = update
        .get("update_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| ParseError::Malformed("update without a numeric `update_id`".into()))?;
    let id = update_id.to_string();
    for field in MESSAGE_FIELDS {
        if let Some(msg) = update.get(field) {
            return Ok(message_event(&id, field, msg, update));
        }
    }
    if let Some(cb) = update.get("callback_query") {
        return Ok(callback_event(&id, cb, update));
    }
    if let Some(r) = update.get("message_reaction") {
        return Ok(reaction_event(&id, r, update));
    }
    let chat = first_chat_id(update);
    Ok(unsupported(&id, chat.as_deref().unwrap_or(""), update))
}

fn message_event(id: &str, field: &str, msg: &Value, update: &Value) -> InboundEvent {
    let Some(chat_id) = msg.pointer("/chat/id").and_then(Value::as_i64) else {
        return unsupported(id, "", update);
    };
    let conversation = chat_id.to_string();
    let text = msg
        .get("text")
        .or_else(|| msg.get("caption"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let media = MEDIA_FIELDS
        .iter()
        .find_map(|k| msg.get(*k).map(|m| (*k, m)))
        .and_then(|(kind, m)| media_of(kind, m));
    if text.is_none() && media.is_none() {
        // Service messages, locations, contacts, polls, dice, ...: kept raw.
        return unsupported(id, &conversation, update);
    }
    let kind = match (&media, msg.get("text")) {
        (Some(m), _) => m["kind"].as_str().unwrap_or("media").to_string(),
        (None, _) => "text".to_string(),
    };
    let mut payload = Map::new();
    payload.insert("type".into(), json!(kind));
    payload.insert("update".into(), json!(field));
    if field.starts_with("edited_") {
        payload.insert("edited".into(), json!(true));
    }
    if let Some(t) = &text {
        payload.insert("text".into(), json!(t));
    }
    if let Some(m) = media {
        payload.insert("media".into(), m);
    }
    payload.insert("message_id".into(), msg.get("message_id").cloned().unwrap_or(Value::Null));
    payload.insert("chat".into(), chat_summary(msg.get("chat")));
    if let Some(from) = msg.get("from") {
        payload.insert("from".into(), user_summary(from));
    }
    for key in ["message_thread_id", "entities", "caption_entities", "media_group_id"] {
        if let Some(v) = msg.get(key) {
            payload.insert(key.into(), v.clone());
        }
    }
    if let Some(reply) = msg.pointer("/reply_to_message/message_id") {
        payload.insert("reply_to_message_id".into(), reply.clone());
    }
    payload.insert("raw".into(), update.clone());
    let ts = msg
        .get("edit_date")
        .or_else(|| msg.get("date"))
        .and_then(Value::as_u64)
        .and_then(|s| s.checked_mul(1000));
    InboundEvent {
        provider_event_id: id.to_string(),
        kind: EventKind::Message,
        conversation,
        sender: msg
            .pointer("/from/id")
            .or_else(|| msg.pointer("/sender_chat/id"))
            .and_then(Value::as_i64)
            .map(|i| i.to_string()),
        text,
        timestamp_ms: ts,
        status: None,
        payload: Value::Object(payload).to_string(),
    }
}

/// `{kind, file_id, file_unique_id, mime_type?, file_name?, ...}`; a photo's largest size.
fn media_of(kind: &str, m: &Value) -> Option<Value> {
    let item = match m {
        Value::Array(sizes) => sizes.last()?,
        other => other,
    };
    let file_id = item.get("file_id")?.as_str()?;
    let mut out = json!({"kind": kind, "file_id": file_id});
    for key in ["file_unique_id", "mime_type", "file_name", "file_size", "width", "height", "duration", "emoji"] {
        if let Some(v) = item.get(key) {
            out[key] = v.clone();
        }
    }
    Some(out)
}

fn callback_event(id: &str, cb: &Value, update: &Value) -> InboundEvent {
    let from = cb.pointer("/from/id").and_then(Value::as_i64);
    let chat = cb.pointer("/message/chat/id").and_then(Value::as_i64).or(from);
    let Some(chat) = chat else {
        return unsupported(id, "", update);
    };
    let data = cb.get("data").and_then(Value::as_str).map(str::to_string);
    let mut payload = json!({
        "type": "callback_query",
        "callback_query_id": cb.get("id"),
        "data": data,
        "message_id": cb.pointer("/message/message_id"),
        "raw": update,
    });
    if let Some(f) = cb.get("from") {
        payload["from"] = user_summary(f);
    }
    InboundEvent {
        provider_event_id: id.to_string(),
        kind: EventKind::Message,
        conversation: chat.to_string(),
        sender: from.map(|f| f.to_string()),
        text: data,
        timestamp_ms: None,
        status: None,
        payload: payload.to_string(),
    }
}

fn reaction_event(id: &str, r: &Value, update: &Value) -> InboundEvent {
    let Some(chat) = r.pointer("/chat/id").and_then(Value::as_i64) else {
        return unsupported(id, "", update);
    };
    let emoji = r
        .get("new_reaction")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find_map(|x| x.get("emoji").and_then(Value::as_str)))
        .map(str::to_string);
    let payload = json!({
        "type": "reaction",
        "reaction": {"message_id": r.get("message_id"), "emoji": emoji},
        "raw": update,
    });
    InboundEvent {
        provider_event_id: id.to_string(),
        kind: EventKind::Reaction,
        conversation: chat.to_string(),
        sender: r.pointer("/user/id").and_then(Value::as_i64).map(|i| i.to_string()),
        text: emoji,
        timestamp_ms: r.get("date").and_then(Value::as_u64).and_then(|s| s.checked_mul(1000)),
        status: None,
        payload: payload.to_string(),
    }
}

fn unsupported(id: &str, conversation: &str, update: &Value) -> InboundEvent {
    InboundEvent {
        provider_event_id: id.to_string(),
        kind: EventKind::Unsupported,
        conversation: conversation.to_string(),
        sender: None,
        text: None,
        timestamp_ms: None,
        status: None,
        payload: update.to_string(),
    }
}

/// The chat of whatever the update carries (`my_chat_member.chat.id`, ...).
fn first_chat_id(update: &Value) -> Option<String> {
    let obj = update.as_object()?;
    obj.values()
        .find_map(|v| v.pointer("/chat/id").and_then(Value::as_i64))
        .map(|i| i.to_string())
}

fn chat_summary(chat: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(Value::Object(c)) = chat {
        for key in ["id", "type", "title", "username"] {
            if let Some(v) = c.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn user_summary(user: &Value) -> Value {
    let mut out = Map::new();
    for key in ["id", "is_bot", "first_name", "last_name", "username", "language_code"] {
        if let Some(v) = user.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}
