//! Slack Events API bodies → Switchboard inbound events. Pure: no host calls.
//!
//! * `url_verification` → answered by [`url_verification`] (from `handshake`), never stored;
//! * `event_callback` → at most one event, id = the envelope's `event_id`:
//!   - `message` (plain, `file_share`, `thread_broadcast`, `me_message`) and `app_mention` →
//!     `message`, conversation = `channel`, sender = `user`, timestamp from `ts`;
//!   - the bot's own messages (`bot_id`, subtype `bot_message`, or `user` = `bot_user_id`) →
//!     nothing (answering them would loop);
//!   - `reaction_added` / `reaction_removed` → `reaction`;
//!   - everything else (`message_changed`, `message_deleted`, `channel_join`, other event
//!     types) → `unsupported` with the raw envelope;
//! * `app_rate_limited` → `unsupported` (id `app_rate_limited:{team}:{minute}`).

use serde_json::{Value, json};
use switchboard_sdk::{EventKind, HttpRequest, HttpResponse, InboundEvent, ParseError};

/// Message subtypes that are a user saying something.
pub const USER_MESSAGE_SUBTYPES: [&str; 3] = ["file_share", "thread_broadcast", "me_message"];

/// The `url_verification` answer: `{"challenge": ...}` as JSON, or `None` for anything else.
pub fn url_verification(req: &HttpRequest) -> Option<HttpResponse> {
    if !req.method.eq_ignore_ascii_case("POST") {
        return None;
    }
    let body: Value = serde_json::from_slice(&req.body).ok()?;
    if body.get("type").and_then(Value::as_str) != Some("url_verification") {
        return None;
    }
    let challenge = body.get("challenge").and_then(Value::as_str)?;
    Some(HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({ "challenge": challenge }).to_string().into_bytes(),
    })
}

/// Parses a verified Events API body. `bot_user_id` is the bot's own user id, if configured.
pub fn parse(body: &[u8], bot_user_id: Option<&str>) -> Result<Vec<InboundEvent>, ParseError> {
    if body.starts_with(b"payload=") {
        return Err(ParseError::Unexpected(
            "an interactivity payload (form post): point Slack's Interactivity URL elsewhere".into(),
        ));
    }
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| ParseError::Malformed(format!("body is not JSON: {e}")))?;
    match root.get("type").and_then(Value::as_str) {
        Some("event_callback") => event_callback(&root, bot_user_id),
        Some("app_rate_limited") => {
            let id = format!(
                "app_rate_limited:{}:{}",
                root.get("team_id").and_then(Value::as_str).unwrap_or(""),
                root.get("minute_rate_limited").map(Value::to_string).unwrap_or_default()
            );
            Ok(vec![unsupported(&id, root.get("team_id").and_then(Value::as_str).unwrap_or(""), &root)])
        }
        Some("url_verification") => Err(ParseError::Unexpected(
            "url_verification is answered by handshake".into(),
        )),
        Some(other) => Err(ParseError::Unexpected(format!("Slack request type `{other}`"))),
        None => Err(ParseError::Malformed("missing `type`".into())),
    }
}

fn event_callback(root: &Value, bot_user_id: Option<&str>) -> Result<Vec<InboundEvent>, ParseError> {
    let event_id = str_at(root, "event_id")
        .ok_or_else(|| ParseError::Malformed("event_callback without `event_id`".into()))?;
    let event = root
        .get("event")
        .filter(|e| e.is_object())
        .ok_or_else(|| ParseError::Malformed("event_callback without `event`".into()))?;
    let kind = str_at(event, "type").unwrap_or("");
    let channel = str_at(event, "channel")
        .or_else(|| event.pointer("/item/channel").and_then(Value::as_str))
        .unwrap_or("");
    match kind {
        "message" | "app_mention" => {
            if is_own(event, bot_user_id) {
                return Ok(Vec::new());
            }
            let subtype = str_at(event, "subtype");
            if subtype.is_some_and(|s| !USER_MESSAGE_SUBTYPES.contains(&s)) {
                return Ok(vec![unsupported(event_id, channel, root)]);
            }
            Ok(vec![message_event(event_id, kind, channel, event, root)])
        }
        "reaction_added" | "reaction_removed" => {
            let added = kind == "reaction_added";
            let reaction = str_at(event, "reaction").map(str::to_string);
            let payload = json!({
                "type": "reaction",
                "reaction": {
                    "name": reaction,
                    "removed": !added,
                    "item": event.get("item"),
                    "item_user": event.get("item_user"),
                },
                "raw": root,
            });
            Ok(vec![InboundEvent {
                provider_event_id: event_id.to_string(),
                kind: EventKind::Reaction,
                conversation: channel.to_string(),
                sender: str_at(event, "user").map(str::to_string),
                text: if added { reaction } else { None },
                timestamp_ms: str_at(event, "event_ts").and_then(ts_ms),
                status: None,
                payload: payload.to_string(),
            }])
        }
        _ => Ok(vec![unsupported(event_id, channel, root)]),
    }
}

/// The bot's own messages: `bot_id`, subtype `bot_message`, or the configured bot user.
fn is_own(event: &Value, bot_user_id: Option<&str>) -> bool {
    event.get("bot_id").is_some_and(|b| !b.is_null())
        || str_at(event, "subtype") == Some("bot_message")
        || bot_user_id
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .is_some_and(|b| str_at(event, "user") == Some(b))
}

fn message_event(event_id: &str, kind: &str, channel: &str, event: &Value, root: &Value) -> InboundEvent {
    let text = str_at(event, "text").map(str::to_string);
    let mut payload = json!({
        "type": kind,
        "channel": channel,
        "ts": event.get("ts"),
        "raw": root,
    });
    for key in ["channel_type", "thread_ts", "team", "user", "files", "blocks", "subtype"] {
        if let Some(v) = event.get(key) {
            payload[key] = v.clone();
        }
    }
    if let Some(t) = &text {
        payload["text"] = json!(t);
    }
    InboundEvent {
        provider_event_id: event_id.to_string(),
        kind: EventKind::Message,
        conversation: channel.to_string(),
        sender: str_at(event, "user").map(str::to_string),
        text,
        timestamp_ms: str_at(event, "ts").and_then(ts_ms),
        status: None,
        payload: payload.to_string(),
    }
}

fn unsupported(id: &str, conversation: &str, raw: &Value) -> InboundEvent {
    InboundEvent {
        provider_event_id: id.to_string(),
        kind: EventKind::Unsupported,
        conversation: conversation.to_string(),
        sender: None,
        text: None,
        timestamp_ms: None,
        status: None,
        payload: raw.to_string(),
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Slack `ts` ("1749416383.000200", seconds with microseconds) → Unix milliseconds.
pub fn ts_ms(ts: &str) -> Option<u64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs: u64 = secs.parse().ok()?;
    let millis: u64 = format!("{:0<3}", frac.get(..3.min(frac.len()))?).parse().ok()?;
    secs.checked_mul(1000)?.checked_add(millis)
}
