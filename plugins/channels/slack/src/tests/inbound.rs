use serde_json::Value;
use switchboard_sdk::http::Request;
use switchboard_sdk::{EventKind, InboundEvent, ParseError};

use super::fixture;
use crate::inbound::{parse, ts_ms, url_verification};

fn one(name: &str) -> InboundEvent {
    let mut events = parse(&fixture(name), Some("U0BOTUSER")).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(events.len(), 1, "{name}");
    events.remove(0)
}

fn payload(e: &InboundEvent) -> Value {
    serde_json::from_str(&e.payload).unwrap()
}

#[test]
fn url_verification_is_answered_with_the_challenge() {
    let req = Request::post("/webhooks/slack").body(fixture("url_verification.json")).build();
    let resp = url_verification(&req).expect("a handshake");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["challenge"], "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    // Anything else goes on to parse-inbound.
    let req = Request::post("/webhooks/slack").body(fixture("message_im.json")).build();
    assert_eq!(url_verification(&req), None);
    let req = Request::get("/webhooks/slack").body(fixture("url_verification.json")).build();
    assert_eq!(url_verification(&req), None);
    assert_eq!(url_verification(&Request::post("/x").body("not json").build()), None);
    assert!(matches!(parse(&fixture("url_verification.json"), None), Err(ParseError::Unexpected(_))));
}

#[test]
fn direct_message() {
    let e = one("message_im.json");
    assert_eq!(e.kind, EventKind::Message);
    assert_eq!(e.provider_event_id, "Ev0PV52K25");
    assert_eq!(e.conversation, "D0PNCRP9N");
    assert_eq!(e.sender.as_deref(), Some("U061F7AUR"));
    assert_eq!(e.text.as_deref(), Some("Does it come in another color?"));
    assert_eq!(e.timestamp_ms, Some(1_749_416_383_000));
    let p = payload(&e);
    assert_eq!(p["type"], "message");
    assert_eq!(p["ts"], "1749416383.000200");
    assert_eq!(p["channel_type"], "im");
    assert_eq!(p["raw"]["event_id"], "Ev0PV52K25");
}

#[test]
fn thread_reply_and_app_mention() {
    let e = one("message_thread_reply.json");
    assert_eq!(e.conversation, "C024BE91L");
    assert_eq!(payload(&e)["thread_ts"], "1749416383.000200");
    let e = one("app_mention.json");
    assert_eq!(e.kind, EventKind::Message);
    assert_eq!(e.text.as_deref(), Some("<@U0BOTUSER> where is my order?"));
    assert_eq!(payload(&e)["type"], "app_mention");
}

#[test]
fn the_bots_own_messages_are_ignored() {
    assert!(parse(&fixture("message_from_bot.json"), None).unwrap().is_empty(), "bot_id");
    // A message by the bot user without bot_id (e.g. posted as the bot user).
    let mut v: Value = serde_json::from_slice(&fixture("message_im.json")).unwrap();
    v["event"]["user"] = "U0BOTUSER".into();
    let body = v.to_string().into_bytes();
    assert!(parse(&body, Some("U0BOTUSER")).unwrap().is_empty(), "bot_user_id");
    assert_eq!(parse(&body, None).unwrap().len(), 1, "no bot_user_id configured");
    assert_eq!(parse(&body, Some(" ")).unwrap().len(), 1);
    v["event"]["user"] = "U061F7AUR".into();
    v["event"]["subtype"] = "bot_message".into();
    assert!(parse(v.to_string().as_bytes(), None).unwrap().is_empty(), "bot_message subtype");
}

#[test]
fn reactions_and_everything_else() {
    let e = one("reaction_added.json");
    assert_eq!(e.kind, EventKind::Reaction);
    assert_eq!(e.conversation, "C024BE91L");
    assert_eq!(e.text.as_deref(), Some("thumbsup"));
    assert_eq!(payload(&e)["reaction"]["item"]["ts"], "1749416500.002100");

    let e = one("message_changed.json");
    assert_eq!(e.kind, EventKind::Unsupported);
    assert_eq!(e.provider_event_id, "Ev0PV56D44");
    assert_eq!(e.conversation, "D0PNCRP9N");
    let raw: Value = serde_json::from_slice(&fixture("message_changed.json")).unwrap();
    assert_eq!(payload(&e), raw);

    let e = parse(br#"{"type":"event_callback","event_id":"Ev1","event":{"type":"channel_created","channel":{"id":"C1"}}}"#, None).unwrap().remove(0);
    assert_eq!(e.kind, EventKind::Unsupported);
    let e = parse(br#"{"token":"t","type":"app_rate_limited","team_id":"T123","minute_rate_limited":1518467820,"api_app_id":"A1"}"#, None).unwrap().remove(0);
    assert_eq!(e.provider_event_id, "app_rate_limited:T123:1518467820");
}

#[test]
fn malformed_and_unexpected() {
    assert!(matches!(parse(b"nope", None), Err(ParseError::Malformed(_))));
    assert!(matches!(parse(br#"{"type":"event_callback","event":{}}"#, None), Err(ParseError::Malformed(_))));
    assert!(matches!(parse(br#"{"type":"block_actions"}"#, None), Err(ParseError::Unexpected(_))));
    assert!(matches!(parse(b"payload=%7B%7D", None), Err(ParseError::Unexpected(_))));
}

#[test]
fn slack_timestamps() {
    assert_eq!(ts_ms("1749416383.000200"), Some(1_749_416_383_000));
    assert_eq!(ts_ms("1749416383.123456"), Some(1_749_416_383_123));
    assert_eq!(ts_ms("1749416383.5"), Some(1_749_416_383_500));
    assert_eq!(ts_ms("1749416383"), Some(1_749_416_383_000));
    assert_eq!(ts_ms("x.1"), None);
}

// ---- Hostile input: never a panic, refused unless it is a delivery ----

mod hostile {
use proptest::prelude::*;
use switchboard_sdk::hostile::{arb_json, well_formed, with_invalid_utf8, trimmed};
use serde_json::json;
use switchboard_sdk::http::Request;
use switchboard_sdk::ParseError;

use super::super::fixture;
use crate::inbound::{parse, ts_ms, url_verification};





const WORDS: &[&str] = &[
    "type", "event_callback", "url_verification", "app_rate_limited", "challenge", "event_id",
    "event", "message", "app_mention", "reaction_added", "reaction_removed", "subtype",
    "bot_message", "file_share", "thread_broadcast", "me_message", "message_changed", "bot_id",
    "user", "U0BOTUSER", "channel", "item", "text", "ts", "event_ts", "thread_ts", "team",
    "team_id", "files", "blocks", "reaction", "item_user", "minute_rate_limited", "1749416383.000200",
];
const FIXTURES: &[&str] = &["message_im.json", "app_mention.json", "reaction_added.json", "message_changed.json", "url_verification.json"];

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(events) = parse(&body, Some("U0BOTUSER")) {
            well_formed(&events)?;
        }
        let _ = url_verification(&Request::post("/webhooks/slack").body(body).build());
    }

    #[test]
    fn arbitrary_json_never_panics(event in arb_json(WORDS), root in arb_json(WORDS), wrap in any::<bool>()) {
        let v = if wrap { json!({"type": "event_callback", "event_id": "Ev1", "event": event}) } else { root };
        let body = v.to_string().into_bytes();
        for bot in [None, Some("U0BOTUSER"), Some(" ")] {
            if let Ok(events) = parse(&body, bot) {
                well_formed(&events)?;
            }
        }
        let _ = url_verification(&Request::post("/webhooks/slack").body(body).build());
    }

    #[test]
    fn arbitrary_timestamps_never_panic(ts in any::<String>(), digits in "[0-9]{0,25}(\\.[0-9]{0,8})?") {
        let _ = ts_ms(&ts);
        let _ = ts_ms(&digits);
    }

    #[test]
    fn truncated_or_invalid_utf8_deliveries_are_malformed(
        name in prop::sample::select(FIXTURES),
        cut in any::<prop::sample::Index>(),
        bytes in with_invalid_utf8(fixture("message_im.json")),
    ) {
        let f = fixture(name);
        let cut = cut.index(trimmed(&f));
        prop_assert!(matches!(parse(&f[..cut], None), Err(ParseError::Malformed(_))));
        prop_assert!(matches!(parse(&bytes, None), Err(ParseError::Malformed(_))));
    }
}
}
