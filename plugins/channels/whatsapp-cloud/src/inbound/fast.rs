//! The common delivery, read without building a JSON tree.
//!
//! Almost every webhook Meta sends is one `messages` change carrying text messages and/or
//! statuses. The general parser ([`super::parse_general`]) turns the whole body into a
//! `serde_json::Value`, clones each message into its payload and prints it again; on a 1 KiB
//! text webhook that was most of the plugin's time per call. Here the envelope is read into
//! borrowed structs, a text message is read in place and its `raw` is the provider's own bytes
//! (the same JSON value), and only other message types and statuses go through a `Value`, one
//! item at a time.
//!
//! Whatever this path does not recognise makes it return `None` and the general parser
//! handles the whole body, so every odd shape (unknown fields, value-level errors, missing
//! ids, other objects, malformed JSON) keeps exactly its old treatment. A property test holds
//! the two paths to the same events.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use switchboard_sdk::{EventKind, InboundEvent};

use super::{OBJECT, contact_names, message_event, status_event, timestamp_of};

#[derive(Deserialize)]
struct Root<'a> {
    #[serde(borrow)]
    object: Cow<'a, str>,
    #[serde(borrow)]
    entry: Vec<Entry<'a>>,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow)]
    changes: Vec<Change<'a>>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(borrow)]
    field: Cow<'a, str>,
    #[serde(borrow)]
    value: ChangeValue<'a>,
}

/// `Some` whenever the key is present, `null` included (the general parser tells a `null`
/// list from a missing one).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct ChangeValue<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    messages: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    statuses: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    contacts: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    errors: Option<&'a RawValue>,
}

/// A `type: "text"` message, in place.
#[derive(Deserialize)]
struct TextMessage<'a> {
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    text: TextBody<'a>,
    #[serde(default, borrow, deserialize_with = "present")]
    context: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    timestamp: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct TextBody<'a> {
    #[serde(borrow)]
    body: Cow<'a, str>,
}

/// The payload the general parser builds for a text message, keys in the same order.
#[derive(Serialize)]
struct TextPayload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    contact_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a RawValue>,
    raw: &'a RawValue,
    text: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The events of a common delivery, or `None`: let the general parser decide.
pub fn parse(body: &[u8]) -> Option<Vec<InboundEvent>> {
    // Validated up front: the general parser refuses invalid UTF-8 anywhere in the body.
    let body = std::str::from_utf8(body).ok()?;
    let root: Root<'_> = serde_json::from_str(body).ok()?;
    if root.object != OBJECT {
        return None;
    }
    let mut events = Vec::new();
    for change in root.entry.iter().flat_map(|e| &e.changes) {
        let v = &change.value;
        if change.field != "messages" || v.errors.is_some_and(|e| e.get() != "null") {
            return None;
        }
        let messages = list(v.messages)?;
        let statuses = list(v.statuses)?;
        if messages.is_none() && statuses.is_none() {
            return None;
        }
        let contacts = match v.contacts {
            Some(c) => contact_names(&serde_json::from_str::<Value>(c.get()).ok()?),
            None => Vec::new(),
        };
        for msg in messages.into_iter().flatten() {
            events.push(match text_event(msg, &contacts) {
                Some(e) => e,
                None => message_event(&serde_json::from_str(msg.get()).ok()?, &contacts),
            });
        }
        for status in statuses.into_iter().flatten() {
            events.push(status_event(&serde_json::from_str(status.get()).ok()?));
        }
    }
    Some(events)
}

/// A present list's items (`Some(None)` when absent); `None` when present but not a list.
#[allow(clippy::option_option)]
fn list(raw: Option<&RawValue>) -> Option<Option<Vec<&RawValue>>> {
    match raw {
        None => Some(None),
        Some(r) if r.get().starts_with('[') => serde_json::from_str(r.get()).ok().map(Some),
        Some(_) => None,
    }
}

/// A well-formed text message; `None` sends it through the general message parser.
fn text_event(raw: &RawValue, contacts: &[(String, String)]) -> Option<InboundEvent> {
    let m: TextMessage<'_> = serde_json::from_str(raw.get()).ok()?;
    if m.kind != "text" || m.from.is_empty() || m.id.is_empty() {
        return None;
    }
    let timestamp_ms = match m.timestamp {
        Some(t) => timestamp_of(&serde_json::from_str(t.get()).ok()?),
        None => None,
    };
    let contact_name = contacts
        .iter()
        .find(|(wa_id, _)| *wa_id == m.from)
        .or_else(|| (contacts.len() == 1).then(|| &contacts[0]))
        .map(|(_, name)| name.as_str());
    let payload = TextPayload { contact_name, context: m.context, raw, text: &m.text.body, kind: "text" };
    Some(InboundEvent {
        provider_event_id: m.id.into_owned(),
        kind: EventKind::Message,
        conversation: m.from.to_string(),
        sender: Some(m.from.into_owned()),
        text: Some(m.text.body.to_string()),
        timestamp_ms,
        status: None,
        payload: serde_json::to_string(&payload).ok()?,
    })
}
