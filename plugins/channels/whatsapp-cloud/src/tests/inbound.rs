use serde_json::{Value, json};
use switchboard_sdk::{DeliveryState, EventKind, InboundEvent, ParseError, StatusUpdate};

use super::{fixture, fixture_json, json};
use crate::inbound::parse;

const OUT_WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";

fn parse_fixture(name: &str) -> Vec<InboundEvent> {
    parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn one(name: &str) -> InboundEvent {
    let mut events = parse_fixture(name);
    assert_eq!(events.len(), 1, "{name}: {events:?}");
    events.remove(0)
}

fn payload(ev: &InboundEvent) -> Value {
    serde_json::from_str(&ev.payload).unwrap()
}

/// The first message of a fixture, to build variants of it.
fn first_message(name: &str) -> Value {
    fixture_json(name)["entry"][0]["changes"][0]["value"]["messages"][0].clone()
}

/// A webhook body around the given `value.messages`.
fn with_messages(messages: Value) -> Vec<u8> {
    let mut body = fixture_json("text.json");
    body["entry"][0]["changes"][0]["value"]["messages"] = messages;
    body.to_string().into_bytes()
}

fn with_change(change: Value) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [change]}]})
        .to_string()
        .into_bytes()
}

#[test]
fn text_message() {
    let ev = one("text.json");
    assert_eq!(ev.kind, EventKind::Message);
    assert_eq!(
        ev.provider_event_id,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    );
    assert_eq!(ev.conversation, "16505551234");
    assert_eq!(ev.sender.as_deref(), Some("16505551234"));
    assert_eq!(ev.text.as_deref(), Some("Does it come in another color?"));
    assert_eq!(ev.timestamp_ms, Some(1_749_416_383_000));
    assert_eq!(ev.status, None);
    let p = payload(&ev);
    assert_eq!(p["type"], "text");
    assert_eq!(p["text"], "Does it come in another color?");
    assert_eq!(p["contact_name"], "Sheena Nelson");
    assert_eq!(p["raw"], first_message("text.json"));
    assert!(p.get("context").is_none());
}

#[test]
fn image_message() {
    let ev = one("image.json");
    assert_eq!(ev.kind, EventKind::Message);
    assert_eq!(
        ev.provider_event_id,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUIyRjE0NTg1QzU0RTI3RjcxRgA="
    );
    assert_eq!(ev.text.as_deref(), Some("This is how it looks"));
    assert_eq!(ev.timestamp_ms, Some(1_744_344_496_000));
    let p = payload(&ev);
    assert_eq!(p["type"], "image");
    assert_eq!(
        p["media"],
        json!({
            "kind": "image",
            "id": "1003383421387256",
            "mime_type": "image/jpeg",
            "sha256": "SfInY0gHMlFMJSVZUGbVCXhU0lVS6YQ6/eSZVNDAwQs=",
            "caption": "This is how it looks"
        })
    );
    assert_eq!(p["raw"], first_message("image.json"));
}

#[test]
fn other_media_types_like_image() {
    let cases = [
        (
            "audio",
            json!({"mime_type": "audio/ogg; codecs=opus", "sha256": "a2V5", "id": "1234567890", "voice": true}),
            None,
        ),
        (
            "video",
            json!({"mime_type": "video/mp4", "sha256": "dmlk", "id": "2345678901", "caption": "Unboxing"}),
            Some("Unboxing"),
        ),
        (
            "document",
            json!({"caption": "Invoice", "filename": "invoice.pdf", "mime_type": "application/pdf", "sha256": "ZG9j", "id": "3456789012"}),
            Some("Invoice"),
        ),
        (
            "sticker",
            json!({"mime_type": "image/webp", "sha256": "c3Rp", "id": "4567890123", "animated": false}),
            None,
        ),
    ];
    for (kind, media, caption) in cases {
        let mut msg = first_message("text.json");
        let obj = msg.as_object_mut().unwrap();
        obj.remove("text");
        obj.insert("type".into(), json!(kind));
        obj.insert(kind.into(), media.clone());
        let events = parse(&with_messages(json!([msg]))).unwrap();
        assert_eq!(events.len(), 1);
        let ev = &events[0];
        assert_eq!(ev.kind, EventKind::Message, "{kind}");
        assert_eq!(ev.text.as_deref(), caption, "{kind}");
        let p = payload(ev);
        assert_eq!(p["type"], kind);
        assert_eq!(p["media"]["kind"], kind);
        assert_eq!(p["media"]["id"], media["id"]);
        assert_eq!(p["media"]["mime_type"], media["mime_type"]);
        for extra in ["filename", "voice", "animated"] {
            assert_eq!(p["media"].get(extra), media.get(extra), "{kind}.{extra}");
        }
    }
}

#[test]
fn interactive_button_reply() {
    let ev = one("interactive_button_reply.json");
    assert_eq!(ev.kind, EventKind::Message);
    assert_eq!(
        ev.provider_event_id,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUI4MDVDQzJGMTc2NEJDMEI5NgA="
    );
    assert_eq!(ev.text.as_deref(), Some("Change"));
    let p = payload(&ev);
    assert_eq!(p["type"], "interactive");
    assert_eq!(
        p["reply"],
        json!({"type": "button_reply", "id": "change-button", "title": "Change"})
    );
    assert_eq!(
        p["context"]["id"],
        "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1QjJGRjI2RDRCMzlCQTcwMTMA"
    );
    assert_eq!(p["context"]["from"], "15550783881");
}

#[test]
fn interactive_list_reply() {
    let ev = one("interactive_list_reply.json");
    assert_eq!(ev.kind, EventKind::Message);
    assert_eq!(ev.text.as_deref(), Some("Express Shipping"));
    assert_eq!(ev.timestamp_ms, Some(1_712_595_443_000));
    let p = payload(&ev);
    assert_eq!(
        p["reply"],
        json!({"type": "list_reply", "id": "priority_express", "title": "Express Shipping", "description": "Next Day to 2 Days"})
    );
}

#[test]
fn template_quick_reply_button() {
    let ev = one("button.json");
    assert_eq!(ev.kind, EventKind::Message);
    assert_eq!(
        ev.provider_event_id,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUQ0RjJFMkIzOTJFM0Y1NkY2QQA="
    );
    assert_eq!(ev.text.as_deref(), Some("Unsubscribe from Promos"));
    let p = payload(&ev);
    assert_eq!(p["type"], "button");
    assert_eq!(
        p["reply"],
        json!({"type": "button", "payload": "Unsubscribe from Promos", "text": "Unsubscribe from Promos"})
    );
    assert!(p["context"].is_object());
}

#[test]
fn reaction() {
    let ev = one("reaction.json");
    assert_eq!(ev.kind, EventKind::Reaction);
    assert_eq!(
        ev.provider_event_id,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTk3NTg1MDU4QjYwRjZBRjQ0OAA="
    );
    assert_eq!(ev.conversation, "16505551234");
    // Meta sends the emoji as \ud83d\udc4d escapes.
    assert_eq!(ev.text.as_deref(), Some("👍"));
    let p = payload(&ev);
    assert_eq!(
        p["reaction"],
        json!({"message_id": "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1QjJGRjI2RDRCMzlCQTcwMTMA", "emoji": "👍"})
    );

    // Removing a reaction: no emoji.
    let mut msg = first_message("reaction.json");
    msg["reaction"].as_object_mut().unwrap().remove("emoji");
    let ev = parse(&with_messages(json!([msg]))).unwrap().remove(0);
    assert_eq!(ev.kind, EventKind::Reaction);
    assert_eq!(ev.text, None);
    assert_eq!(payload(&ev)["reaction"]["emoji"], Value::Null);
}

#[test]
fn location_is_unsupported_with_raw_payload() {
    let ev = one("location_unsupported.json");
    assert_eq!(ev.kind, EventKind::Unsupported);
    assert_eq!(
        ev.provider_event_id,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUMyRkI3OUIzNzA4RTU0RjA3QwA="
    );
    assert_eq!(ev.conversation, "16505551234");
    assert_eq!(ev.sender.as_deref(), Some("16505551234"));
    assert_eq!(ev.timestamp_ms, Some(1_744_344_496_000));
    assert_eq!(payload(&ev), first_message("location_unsupported.json"));
    assert_eq!(payload(&ev)["location"]["name"], "Main Street Café");
}

#[test]
fn every_unknown_message_type_is_kept_as_unsupported() {
    let base = first_message("text.json");
    let variants = [
        json!({"type": "contacts", "contacts": [{"name": {"formatted_name": "Barbara Johnson", "first_name": "Barbara"}, "phones": [{"phone": "+1 (940) 555-1234", "type": "HOME"}]}]}),
        json!({"type": "order", "order": {"catalog_id": "194836987003835", "product_items": [{"product_retailer_id": "di9ozbzfi4", "quantity": 1, "item_price": 30, "currency": "USD"}]}}),
        json!({"type": "system", "system": {"body": "User A changed from 16505551234 to 16505550000", "wa_id": "16505550000", "type": "user_changed_number"}}),
        json!({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown", "message": "Message type unknown", "error_data": {"details": "Message type is currently not supported."}}]}),
        json!({"type": "interactive", "interactive": {"type": "nfm_reply", "nfm_reply": {"response_json": "{\"flow_token\":\"t\"}", "body": "Sent", "name": "flow"}}}),
        json!({"type": "brand_new_type", "brand_new_type": {"x": 1}}),
        json!({"type": "text"}), // text without a body
        json!({"type": "image", "image": {"caption": "no id"}}),
    ];
    for (i, extra) in variants.iter().enumerate() {
        let mut msg = base.clone();
        let obj = msg.as_object_mut().unwrap();
        obj.remove("text");
        obj.insert(
            "id".into(),
            json!(format!(
                "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUZBQ0VGMDAwMDAwMDAwMDA{i}AA=="
            )),
        );
        for (k, v) in extra.as_object().unwrap() {
            obj.insert(k.clone(), v.clone());
        }
        let events = parse(&with_messages(json!([msg.clone()]))).unwrap();
        assert_eq!(events.len(), 1, "{extra}");
        assert_eq!(events[0].kind, EventKind::Unsupported, "{extra}");
        assert_eq!(
            events[0].provider_event_id,
            msg["id"].as_str().unwrap(),
            "{extra}"
        );
        assert_eq!(events[0].conversation, "16505551234");
        assert_eq!(payload(&events[0]), msg, "{extra}");
    }
}

#[test]
fn message_without_id_gets_a_stable_content_id() {
    let mut msg = first_message("text.json");
    msg.as_object_mut().unwrap().remove("id");
    let body = with_messages(json!([msg.clone()]));
    let a = parse(&body).unwrap();
    let b = parse(&body).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, EventKind::Unsupported);
    assert!(a[0].provider_event_id.starts_with("sha256:"));
    assert_eq!(a[0].provider_event_id.len(), "sha256:".len() + 64);
    assert_eq!(a[0].provider_event_id, b[0].provider_event_id);
    assert_eq!(payload(&a[0]), msg);
}

fn status_of(name: &str) -> (InboundEvent, StatusUpdate) {
    let ev = one(name);
    assert_eq!(ev.kind, EventKind::Status, "{name}");
    assert_eq!(ev.conversation, "16505551234", "{name}");
    assert_eq!(ev.sender, None);
    assert_eq!(ev.text, None);
    let st = ev.status.clone().expect("status");
    (ev, st)
}

#[test]
fn status_sent_delivered_read() {
    for (name, state, label, ts) in [
        (
            "status_sent.json",
            DeliveryState::Sent,
            "sent",
            1_750_263_773_000u64,
        ),
        (
            "status_delivered.json",
            DeliveryState::Delivered,
            "delivered",
            1_750_263_775_000,
        ),
        (
            "status_read.json",
            DeliveryState::Read,
            "read",
            1_750_263_790_000,
        ),
    ] {
        let (ev, st) = status_of(name);
        assert_eq!(ev.provider_event_id, format!("{OUT_WAMID}:{label}"));
        assert_eq!(ev.timestamp_ms, Some(ts));
        assert_eq!(
            st,
            StatusUpdate {
                provider_message_id: OUT_WAMID.into(),
                state,
                error: None
            }
        );
        let p = payload(&ev);
        assert_eq!(p["type"], "status");
        assert_eq!(p["status"], label);
        assert_eq!(p["message_id"], OUT_WAMID);
        assert_eq!(p["raw"]["id"], OUT_WAMID);
    }
    let p = payload(&status_of("status_sent.json").0);
    assert_eq!(p["conversation"]["origin"]["type"], "service");
    assert_eq!(p["pricing"]["billable"], true);
}

#[test]
fn status_failed_carries_the_error() {
    let (ev, st) = status_of("status_failed.json");
    let wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBJBNDJFRDNDRjgyOUJBNDY2RjcA";
    assert_eq!(ev.provider_event_id, format!("{wamid}:failed"));
    assert_eq!(st.provider_message_id, wamid);
    assert_eq!(st.state, DeliveryState::Failed);
    let err = st.error.expect("failure");
    assert_eq!(err.code, "131047");
    assert!(
        err.reason.starts_with(
            "Re-engagement message: Message failed to send because more than 24 hours"
        ),
        "{}",
        err.reason
    );
    assert!(
        err.reason.contains("template message is required"),
        "{}",
        err.reason
    );
    assert_eq!(payload(&ev)["error"]["code"], "131047");
}

#[test]
fn status_failed_uses_title_when_there_is_no_message() {
    let mut body = fixture_json("status_failed.json");
    let status = &mut body["entry"][0]["changes"][0]["value"]["statuses"][0];
    status["errors"] =
        json!([{"code": 131026, "title": "Message undeliverable"}, {"code": 1, "title": "second"}]);
    let ev = parse(body.to_string().as_bytes()).unwrap().remove(0);
    let err = ev.status.unwrap().error.unwrap();
    assert_eq!(
        (err.code.as_str(), err.reason.as_str()),
        ("131026", "Message undeliverable")
    );
}

#[test]
fn unknown_status_is_unsupported() {
    let mut body = fixture_json("status_read.json");
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = json!("deleted");
    let ev = parse(body.to_string().as_bytes()).unwrap().remove(0);
    assert_eq!(ev.kind, EventKind::Unsupported);
    assert_eq!(ev.provider_event_id, format!("{OUT_WAMID}:deleted"));
    assert_eq!(ev.conversation, "16505551234");
    assert_eq!(ev.status, None);
    assert_eq!(payload(&ev)["status"], "deleted");
}

#[test]
fn multi_keeps_order_and_contacts() {
    let events = parse_fixture("multi.json");
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].provider_event_id,
        "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUY1QzA3RDA4MkY0RTFGRjc5MgA="
    );
    assert_eq!(events[0].conversation, "16505551234");
    assert_eq!(payload(&events[0])["contact_name"], "Sheena Nelson");
    assert_eq!(
        events[1].provider_event_id,
        "wamid.HBgLMTY1MDU1NTk4NzYVAgASGBQzQTBFOEQ1NzFCMzI1RjYxQzVCMwA="
    );
    assert_eq!(events[1].conversation, "16505559876");
    assert_eq!(events[1].text.as_deref(), Some("¿Tienen envío a España?"));
    assert_eq!(payload(&events[1])["contact_name"], "José García");
    assert!(events.iter().all(|e| e.kind == EventKind::Message));
}

#[test]
fn messages_and_statuses_across_entries_and_changes() {
    let msg_change = fixture_json("text.json")["entry"][0]["changes"][0].clone();
    let status_change = fixture_json("status_read.json")["entry"][0]["changes"][0].clone();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "102290129340398", "changes": [msg_change, status_change]},
            {"id": "102290129340399", "changes": [fixture_json("reaction.json")["entry"][0]["changes"][0].clone()]}
        ]
    });
    let kinds: Vec<_> = parse(body.to_string().as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [EventKind::Message, EventKind::Status, EventKind::Reaction]
    );
}

#[test]
fn rejects_bodies_that_are_not_whatsapp_webhooks() {
    assert!(matches!(
        parse(b"hub.mode=subscribe"),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(parse(b""), Err(ParseError::Malformed(_))));
    assert!(matches!(parse(b"[1,2]"), Err(ParseError::Malformed(_))));
    assert!(matches!(
        parse(br#"{"entry":[]}"#),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse(br#"{"object":"whatsapp_business_account"}"#),
        Err(ParseError::Malformed(_))
    ));
    assert!(matches!(
        parse(br#"{"object":"page","entry":[]}"#),
        Err(ParseError::Unexpected(_))
    ));
    assert!(matches!(
        parse(br#"{"object":"instagram","entry":[]}"#),
        Err(ParseError::Unexpected(_))
    ));
    assert_eq!(
        parse(br#"{"object":"whatsapp_business_account","entry":[]}"#).unwrap(),
        vec![]
    );
}

#[test]
fn other_fields_are_unsupported_with_a_stable_content_id() {
    let change = json!({
        "value": {"event": "APPROVED", "message_template_id": 594425479261596u64, "message_template_name": "order_confirmation", "message_template_language": "en_US", "reason": "NONE"},
        "field": "message_template_status_update"
    });
    let a = parse(&with_change(change.clone())).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, EventKind::Unsupported);
    assert_eq!(a[0].conversation, "102290129340398");
    assert_eq!(payload(&a[0]), change);
    let id = &a[0].provider_event_id;
    assert!(
        id.starts_with("sha256:")
            && id[7..].chars().all(|c| c.is_ascii_hexdigit())
            && id.len() == 71,
        "{id}"
    );

    // Same content with another key order: same id. Different content: another id.
    let reordered = br#"{"entry":[{"changes":[{"field":"message_template_status_update","value":{"reason":"NONE","message_template_language":"en_US","message_template_name":"order_confirmation","message_template_id":594425479261596,"event":"APPROVED"}}],"id":"102290129340398"}],"object":"whatsapp_business_account"}"#;
    assert_eq!(&parse(reordered).unwrap()[0].provider_event_id, id);
    let mut other = change;
    other["value"]["event"] = json!("REJECTED");
    assert_ne!(
        &parse(&with_change(other)).unwrap()[0].provider_event_id,
        id
    );
}

#[test]
fn value_level_errors_are_unsupported() {
    let change = json!({
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "errors": [{"code": 131008, "title": "Required parameter is missing", "message": "Required parameter is missing", "error_data": {"details": "Parameter 'to' is required"}}]
        },
        "field": "messages"
    });
    let a = parse(&with_change(change.clone())).unwrap();
    let b = parse(&with_change(change.clone())).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].kind, EventKind::Unsupported);
    assert_eq!(a[0].conversation, "106540352242922");
    assert!(a[0].provider_event_id.starts_with("sha256:"));
    assert_eq!(a[0].provider_event_id, b[0].provider_event_id);
    assert_eq!(payload(&a[0]), change);
}

#[test]
fn empty_or_odd_changes_are_not_dropped() {
    for change in [
        json!({"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"}}}),
        json!({"field": "messages", "value": {"messages": {"not": "an array"}}}),
        json!({"field": "messages"}),
        json!({"value": {}}),
    ] {
        let events = parse(&with_change(change.clone())).unwrap();
        assert_eq!(events.len(), 1, "{change}");
        assert_eq!(events[0].kind, EventKind::Unsupported, "{change}");
        assert_eq!(payload(&events[0]), change);
    }
    // An entry without changes is kept too.
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "time": 1700000000}]});
    let events = parse(body.to_string().as_bytes()).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, EventKind::Unsupported);
}

#[test]
fn numeric_and_bad_timestamps() {
    let mut msg = first_message("text.json");
    msg["timestamp"] = json!(1749416383u64);
    assert_eq!(
        parse(&with_messages(json!([msg.clone()]))).unwrap()[0].timestamp_ms,
        Some(1_749_416_383_000)
    );
    msg["timestamp"] = json!("soon");
    let ev = parse(&with_messages(json!([msg]))).unwrap().remove(0);
    assert_eq!(ev.timestamp_ms, None);
    assert_eq!(ev.kind, EventKind::Message);
}

#[test]
fn every_fixture_payload_is_json() {
    for name in [
        "text.json",
        "image.json",
        "interactive_button_reply.json",
        "interactive_list_reply.json",
        "button.json",
        "reaction.json",
        "location_unsupported.json",
        "status_sent.json",
        "status_delivered.json",
        "status_read.json",
        "status_failed.json",
        "multi.json",
    ] {
        for ev in parse_fixture(name) {
            assert!(
                serde_json::from_str::<Value>(&ev.payload)
                    .unwrap()
                    .is_object(),
                "{name}"
            );
            assert!(!ev.provider_event_id.is_empty(), "{name}");
        }
    }
    let _ = json("{}");
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
    "object", "whatsapp_business_account", "entry", "id", "changes", "field", "messages", "value",
    "statuses", "metadata", "phone_number_id", "contacts", "wa_id", "profile", "name", "from",
    "type", "text", "body", "timestamp", "errors", "image", "audio", "video", "document", "sticker",
    "caption", "context", "status", "sent", "delivered", "read", "failed", "recipient_id",
    "interactive", "button_reply", "list_reply", "title", "reaction", "emoji", "message_id",
    "location", "latitude", "button", "payload", "code", "mime_type", "sha256",
];
const FIXTURES: &[&str] = &["text.json", "image.json", "multi.json", "status_failed.json", "interactive_list_reply.json", "reaction.json"];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(events) = parse(&body) {
            well_formed(&events)?;
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json(WORDS), wrap in any::<bool>(), changes in arb_json(WORDS)) {
        let v = if wrap { json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": v}, changes]}]}) } else { v };
        if let Ok(events) = parse(v.to_string().as_bytes()) {
            well_formed(&events)?;
        }
    }

    #[test]
    fn truncated_or_invalid_utf8_deliveries_are_malformed(
        name in prop::sample::select(FIXTURES),
        cut in any::<prop::sample::Index>(),
        bytes in with_invalid_utf8(fixture("text.json")),
    ) {
        let f = fixture(name);
        let cut = cut.index(trimmed(&f));
        prop_assert!(matches!(parse(&f[..cut]), Err(ParseError::Malformed(_))));
        prop_assert!(matches!(parse(&bytes), Err(ParseError::Malformed(_))));
    }
}
}

// ---- The fast path and the general parser agree ----

mod fast_path {
use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_sdk::InboundEvent;

use super::super::{fixture, fixture_json};
use crate::inbound::{fast, parse_general};

/// The same events, payloads compared as JSON values (the fast path's `raw` is the provider's
/// own bytes, the general parser's a reprint of them).
fn same(fast: &[InboundEvent], general: &[InboundEvent]) -> Result<(), String> {
    let norm = |events: &[InboundEvent]| -> Vec<(InboundEvent, Value)> {
        events
            .iter()
            .map(|e| (InboundEvent { payload: String::new(), ..e.clone() }, serde_json::from_str(&e.payload).unwrap()))
            .collect()
    };
    let (f, g) = (norm(fast), norm(general));
    if f == g { Ok(()) } else { Err(format!("fast {f:#?}\ngeneral {g:#?}")) }
}

fn check(body: &[u8]) -> Result<bool, String> {
    match fast::parse(body) {
        Some(events) => {
            let general = parse_general(body).map_err(|e| format!("fast path accepted what the general parser refuses: {e:?}"))?;
            same(&events, &general).map(|()| true)
        }
        None => Ok(false),
    }
}

#[test]
fn common_deliveries_take_the_fast_path_with_the_same_events() {
    for name in ["text.json", "multi.json", "image.json", "reaction.json", "status_sent.json", "status_failed.json", "button.json"] {
        assert_eq!(check(&fixture(name)), Ok(true), "{name}");
    }
    // Other message types go through the general message parser, one by one.
    check(&fixture("location_unsupported.json")).unwrap();
    let mut v = fixture_json("text.json");
    v["entry"][0]["changes"][0]["value"]["errors"] = json!([{"code": 1}]);
    assert_eq!(check(v.to_string().as_bytes()), Ok(false), "value-level errors");
    v["entry"][0]["changes"][0]["value"]["errors"] = Value::Null;
    assert_eq!(check(v.to_string().as_bytes()), Ok(true), "a null `errors` is no error");
    v["entry"][0]["changes"][0]["value"]["messages"] = Value::Null;
    assert_eq!(check(v.to_string().as_bytes()), Ok(false), "a null list");
}

/// A field of a message: absent, or a value of any JSON type.
fn arb_field(strings: &'static [&'static str]) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        prop::sample::select(strings).prop_map(|s| Some(json!(s))),
        any::<u32>().prop_map(|n| Some(json!(n))),
        Just(Some(json!({"body": "hi \"there\"\n\u{1F600}"}))),
        Just(Some(json!({"body": 7}))),
        Just(Some(json!({"message_id": "wamid.X", "from": "1"}))),
        Just(Some(json!([]))),
    ]
}

fn arb_message() -> impl Strategy<Value = Value> {
    (
        arb_field(&["16505551234", "", "1 650"]),
        arb_field(&["wamid.A", "", "wamid.\\u0041"]),
        arb_field(&["text", "image", "reaction", "location"]),
        arb_field(&["x"]),
        arb_field(&["1749416383", " 12 ", "-1", "nope"]),
        arb_field(&["ctx"]),
    )
        .prop_map(|(from, id, kind, text, timestamp, context)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [("from", from), ("id", id), ("type", kind), ("text", text), ("timestamp", timestamp), ("context", context)] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

proptest! {
    #[test]
    fn fast_and_general_agree_on_any_message(
        messages in prop::collection::vec(arb_message(), 0..4),
        statuses in prop::option::of(prop::collection::vec(arb_field(&["sent", "x"]), 0..2)),
        contacts in arb_field(&["c"]),
        wa_id in prop::sample::select(&["16505551234", "other"][..]),
    ) {
        let mut v = fixture_json("text.json");
        let value = &mut v["entry"][0]["changes"][0]["value"];
        value["messages"] = Value::Array(messages);
        if let Some(s) = statuses {
            value["statuses"] = Value::Array(s.into_iter().map(|s| json!({"id": "wamid.S", "status": s, "recipient_id": "1"})).collect());
        }
        match contacts {
            Some(Value::String(_)) => value["contacts"] = json!([{"wa_id": wa_id, "profile": {"name": "N"}}, {"wa_id": "2", "profile": {"name": "M"}}]),
            Some(c) => value["contacts"] = c,
            None => { value.as_object_mut().unwrap().remove("contacts"); }
        }
        check(v.to_string().as_bytes()).map_err(TestCaseError::fail)?;
        // The same JSON with a key duplicated or spaces around: never accepted differently.
        let spaced = serde_json::to_string_pretty(&v).unwrap();
        check(spaced.as_bytes()).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn fast_and_general_agree_on_mangled_fixtures(
        name in prop::sample::select(&["text.json", "multi.json", "status_failed.json", "reaction.json"][..]),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut f = fixture(name);
        let i = cut.index(f.len());
        f[i] = byte;
        check(&f).map_err(TestCaseError::fail)?;
    }
}
}
