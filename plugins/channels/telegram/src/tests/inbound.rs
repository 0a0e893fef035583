use serde_json::Value;
use switchboard_sdk::{EventKind, InboundEvent, ParseError};

use super::fixture;
use crate::inbound::parse;

fn one(name: &str) -> InboundEvent {
    let mut events = parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(events.len(), 1);
    events.remove(0)
}

fn payload(e: &InboundEvent) -> Value {
    serde_json::from_str(&e.payload).unwrap()
}

#[test]
fn private_text_message() {
    let e = one("update_text.json");
    assert_eq!(e.kind, EventKind::Message);
    assert_eq!(e.provider_event_id, "718245931");
    assert_eq!(e.conversation, "5123456789");
    assert_eq!(e.sender.as_deref(), Some("5123456789"));
    assert_eq!(e.text.as_deref(), Some("Does it come in another color?"));
    assert_eq!(e.timestamp_ms, Some(1_749_416_383_000));
    let p = payload(&e);
    assert_eq!(p["type"], "text");
    assert_eq!(p["message_id"], 1427);
    assert_eq!(p["chat"]["type"], "private");
    assert_eq!(p["from"]["username"], "sheena_n");
    assert_eq!(p["raw"]["update_id"], 718245931);
}

#[test]
fn supergroup_photo_keeps_the_i64_chat_id_and_largest_size() {
    let e = one("update_group_photo.json");
    assert_eq!(e.conversation, "-1002233445566");
    assert_eq!(e.text.as_deref(), Some("This is how it looks"));
    let p = payload(&e);
    assert_eq!(p["type"], "photo");
    assert_eq!(p["media"]["file_id"], "AgACAgQAAxkBAAIBZ2ZmAAFlarge");
    assert_eq!(p["media"]["width"], 1280);
    assert_eq!(p["message_thread_id"], 12);
    assert_eq!(p["chat"]["id"].as_i64(), Some(-1_002_233_445_566));
}

#[test]
fn edited_message_is_a_new_event_marked_edited() {
    let e = one("update_edited.json");
    assert_eq!(e.provider_event_id, "718245933");
    assert_eq!(e.text.as_deref(), Some("Does it come in another colour?"));
    assert_eq!(e.timestamp_ms, Some(1_749_416_420_000));
    assert_eq!(payload(&e)["edited"], true);
}

#[test]
fn callback_query_is_a_message_with_the_button_data() {
    let e = one("update_callback_query.json");
    assert_eq!(e.kind, EventKind::Message);
    assert_eq!(e.conversation, "5123456789");
    assert_eq!(e.text.as_deref(), Some("express:yes"));
    let p = payload(&e);
    assert_eq!(p["type"], "callback_query");
    assert_eq!(p["callback_query_id"], "2200117722364283541");
    assert_eq!(p["message_id"], 1430);
}

#[test]
fn reaction() {
    let e = one("update_reaction.json");
    assert_eq!(e.kind, EventKind::Reaction);
    assert_eq!(e.conversation, "-1002233445566");
    assert_eq!(e.text.as_deref(), Some("👍"));
    assert_eq!(payload(&e)["reaction"]["message_id"], 90);
}

#[test]
fn everything_else_is_unsupported_and_kept() {
    for (name, chat) in [("update_my_chat_member.json", "5123456789"), ("update_location.json", "5123456789")] {
        let e = one(name);
        assert_eq!(e.kind, EventKind::Unsupported, "{name}");
        assert_eq!(e.conversation, chat);
        let raw: Value = serde_json::from_slice(&fixture(name)).unwrap();
        assert_eq!(payload(&e), raw);
        assert_eq!(e.provider_event_id, raw["update_id"].to_string());
    }
    let e = parse(br#"{"update_id":5,"poll":{"id":"1"}}"#).unwrap().remove(0);
    assert_eq!((e.kind, e.conversation.as_str()), (EventKind::Unsupported, ""));
}

#[test]
fn malformed_bodies() {
    assert!(matches!(parse(b"nope"), Err(ParseError::Malformed(_))));
    assert!(matches!(parse(b"[1]"), Err(ParseError::Malformed(_))));
    assert!(matches!(parse(br#"{"message":{}}"#), Err(ParseError::Malformed(_))));
}

// ---- Hostile input: never a panic, refused unless it is a delivery ----

mod hostile {
use proptest::prelude::*;
use switchboard_sdk::hostile::{arb_json, well_formed, with_invalid_utf8, trimmed};
use serde_json::json;
use switchboard_sdk::ParseError;

use super::super::fixture;
use crate::inbound::parse;





const WORDS: &[&str] = &[
    "update_id", "message", "edited_message", "channel_post", "edited_channel_post",
    "business_message", "callback_query", "message_reaction", "my_chat_member", "chat", "id",
    "from", "sender_chat", "text", "caption", "photo", "document", "video", "audio", "voice",
    "sticker", "animation", "video_note", "file_id", "date", "edit_date", "data", "new_reaction",
    "emoji", "user", "reply_to_message", "message_id", "entities", "type", "title",
];
const FIXTURES: &[&str] = &["update_text.json", "update_group_photo.json", "update_callback_query.json", "update_reaction.json", "update_edited.json"];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(events) = parse(&body) {
            well_formed(&events)?;
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json(WORDS), field in prop::sample::select(WORDS), id in any::<i64>(), wrap in any::<bool>()) {
        let v = if wrap { json!({"update_id": id, field: v}) } else { v };
        if let Ok(events) = parse(v.to_string().as_bytes()) {
            well_formed(&events)?;
            prop_assert_eq!(events.len(), 1);
        }
    }

    #[test]
    fn truncated_or_invalid_utf8_deliveries_are_malformed(
        name in prop::sample::select(FIXTURES),
        cut in any::<prop::sample::Index>(),
        bytes in with_invalid_utf8(fixture("update_text.json")),
    ) {
        let f = fixture(name);
        let cut = cut.index(trimmed(&f));
        prop_assert!(matches!(parse(&f[..cut]), Err(ParseError::Malformed(_))));
        prop_assert!(matches!(parse(&bytes), Err(ParseError::Malformed(_))));
    }
}
}
