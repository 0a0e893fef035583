//! Twilio webhook form posts → Switchboard inbound events. Pure: no host calls.
//!
//! Two kinds of POST arrive on the same URL:
//! * an **incoming message** (`MessageSid`, `From`, `To`, `Body`, `NumMedia`, `MediaUrl{i}`,
//!   `MediaContentType{i}`, and for WhatsApp `ProfileName`, `WaId`, `ButtonText`, `Latitude`…;
//!   `SmsStatus=received`, no `MessageStatus`) → one `message` event, id = `MessageSid`,
//!   conversation = `From`;
//! * a **status callback** for a message we sent (`MessageSid`, `MessageStatus`, `ErrorCode`…)
//!   → one `status` event, id = `{MessageSid}:{MessageStatus}`, conversation = `To`.
//!   `sent`/`delivered`/`read` map to their states, `failed`/`undelivered` (and `canceled`) to
//!   `failed` with the error code; intermediate statuses (`queued`, `accepted`, `sending`,
//!   `scheduled`, …) are kept as `unsupported` events, never dropped.
//!
//! The form is decoded strictly: a broken `%` escape or bytes that are not UTF-8 make the
//! body `malformed` (Twilio never sends either).

use serde_json::{Map, Value, json};
use switchboard_sdk::http::decode_form_strict;
use switchboard_sdk::{DeliveryState, EventKind, Failure, InboundEvent, ParseError, StatusUpdate};

use crate::errors;

/// The form parameters, first value per key, in a lookup-friendly shape.
struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
    /// Every parameter as a JSON object (the raw payload).
    fn raw(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.0 {
            m.entry(k.clone()).or_insert_with(|| json!(v));
        }
        Value::Object(m)
    }
}

/// Parses a verified Twilio webhook body (`application/x-www-form-urlencoded`).
pub fn parse(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    if body.first() == Some(&b'{') {
        return Err(ParseError::Unexpected(
            "a JSON body: Twilio Messaging webhooks are form posts".into(),
        ));
    }
    // Strict: Twilio always sends well-formed UTF-8 forms. A broken escape or bytes that are
    // not UTF-8 are refused rather than read as `%zz` or U+FFFD (the host's signature check
    // decodes leniently, as Twilio's SDK does, so it cannot tell those apart).
    let params = Params(decode_form_strict(body)?);
    let sid = params
        .get("MessageSid")
        .or_else(|| params.get("SmsMessageSid"))
        .or_else(|| params.get("SmsSid"))
        .ok_or_else(|| {
            ParseError::Unexpected("no MessageSid: not a Twilio Messaging webhook".into())
        })?;
    match params.get("MessageStatus") {
        Some(status) if status != "received" && status != "receiving" => {
            Ok(vec![status_event(&params, sid, status)])
        }
        _ => message_event(&params, sid).map(|e| vec![e]),
    }
}

fn message_event(p: &Params, sid: &str) -> Result<InboundEvent, ParseError> {
    let from = p
        .get("From")
        .ok_or_else(|| ParseError::Malformed("incoming message without `From`".into()))?;
    let body = p.get("Body");
    let num_media: usize = p.get("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0);
    let media: Vec<Value> = (0..num_media.min(10))
        .filter_map(|i| {
            let url = p.get(&format!("MediaUrl{i}"))?;
            Some(json!({"url": url, "content_type": p.get(&format!("MediaContentType{i}"))}))
        })
        .collect();

    let mut payload = Map::new();
    let (kind, text) = if !media.is_empty() {
        ("media", body.map(str::to_string))
    } else if let Some(b) = body {
        ("text", Some(b.to_string()))
    } else if let Some(button) = p.get("ButtonText") {
        payload.insert(
            "button".into(),
            json!({"text": button, "payload": p.get("ButtonPayload")}),
        );
        ("button", Some(button.to_string()))
    } else if let (Some(lat), Some(lon)) = (p.get("Latitude"), p.get("Longitude")) {
        payload.insert(
            "location".into(),
            json!({"latitude": lat, "longitude": lon, "address": p.get("Address"), "label": p.get("Label")}),
        );
        ("location", None)
    } else {
        ("empty", None)
    };
    payload.insert("type".into(), json!(kind));
    if let Some(t) = &text {
        payload.insert("text".into(), json!(t));
    }
    if !media.is_empty() {
        payload.insert("media".into(), Value::Array(media));
    }
    payload.insert("channel".into(), json!(channel_of(from)));
    payload.insert("from".into(), json!(from));
    payload.insert("to".into(), json!(p.get("To")));
    for (key, param) in [
        ("profile_name", "ProfileName"),
        ("wa_id", "WaId"),
        ("messaging_service_sid", "MessagingServiceSid"),
        ("original_replied_message_sid", "OriginalRepliedMessageSid"),
    ] {
        if let Some(v) = p.get(param) {
            payload.insert(key.into(), json!(v));
        }
    }
    payload.insert("raw".into(), p.raw());
    Ok(InboundEvent {
        provider_event_id: sid.to_string(),
        kind: EventKind::Message,
        conversation: from.to_string(),
        sender: Some(from.to_string()),
        text,
        // Twilio webhooks carry no timestamp.
        timestamp_ms: None,
        status: None,
        payload: Value::Object(payload).to_string(),
    })
}

fn status_event(p: &Params, sid: &str, status: &str) -> InboundEvent {
    let to = p.get("To").unwrap_or("");
    let event_id = format!("{sid}:{status}");
    let state = match status {
        "sent" => Some(DeliveryState::Sent),
        "delivered" => Some(DeliveryState::Delivered),
        "read" => Some(DeliveryState::Read),
        "failed" | "undelivered" | "canceled" => Some(DeliveryState::Failed),
        _ => None,
    };
    let error = match state {
        Some(DeliveryState::Failed) => Some(failure(p, status)),
        _ => None,
    };
    let mut payload = Map::new();
    payload.insert("type".into(), json!("status"));
    payload.insert("status".into(), json!(status));
    payload.insert("message_id".into(), json!(sid));
    payload.insert("to".into(), json!(to));
    payload.insert("from".into(), json!(p.get("From")));
    if let Some(e) = &error {
        payload.insert("error".into(), json!({"code": e.code, "reason": e.reason}));
    }
    payload.insert("raw".into(), p.raw());
    let Some(state) = state else {
        // queued, accepted, sending, scheduled, partially_delivered, ...: kept, not a state change.
        return InboundEvent {
            provider_event_id: event_id,
            kind: EventKind::Unsupported,
            conversation: to.to_string(),
            sender: None,
            text: None,
            timestamp_ms: None,
            status: None,
            payload: Value::Object(payload).to_string(),
        };
    };
    InboundEvent {
        provider_event_id: event_id,
        kind: EventKind::Status,
        conversation: to.to_string(),
        sender: None,
        text: None,
        timestamp_ms: None,
        status: Some(StatusUpdate {
            provider_message_id: sid.to_string(),
            state,
            error,
        }),
        payload: Value::Object(payload).to_string(),
    }
}

/// The failure of a `failed`/`undelivered`/`canceled` callback: `ErrorCode` with
/// `ErrorMessage` when Twilio sends one, else the table's meaning.
fn failure(p: &Params, status: &str) -> Failure {
    let code = p.get("ErrorCode");
    let reason = p
        .get("ErrorMessage")
        .map(str::to_string)
        .or_else(|| {
            code.and_then(|c| c.parse().ok())
                .and_then(errors::meaning)
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("message {status}"));
    Failure::new(code.unwrap_or(status), reason)
}

/// `whatsapp:+1…` → "whatsapp"; `messenger:…` → "messenger"; a bare number → "sms".
fn channel_of(address: &str) -> &str {
    match address.split_once(':') {
        Some((prefix, _)) if !prefix.is_empty() && !prefix.starts_with('+') => prefix,
        _ => "sms",
    }
}
