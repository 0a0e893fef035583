//! A verified Standard Webhooks POST → one `message` event. Pure: no host calls.
//!
//! The body must be a JSON object; these fields are understood, all optional, and the whole
//! object is kept as the event payload:
//!
//! ```json
//! {"from": "user-42", "conversation": "ticket-7", "text": "Hello"}
//! ```
//!
//! id = the `webhook-id` header; conversation = `conversation`, else `from`, else `"default"`;
//! sender = `from`; timestamp = `webhook-timestamp` (seconds) in milliseconds.

use serde_json::Value;
use switchboard_sdk::{EventKind, HttpRequest, InboundEvent, ParseError};

pub fn parse(req: &HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
    let id = req
        .header("webhook-id")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ParseError::Malformed("missing webhook-id header".into()))?;
    let body: Value = req.json()?;
    if !body.is_object() {
        return Err(ParseError::Malformed("the body must be a JSON object".into()));
    }
    let field = |name: &str| match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let sender = field("from");
    let conversation = field("conversation")
        .or_else(|| sender.clone())
        .unwrap_or_else(|| "default".to_string());
    let timestamp_ms = req
        .header("webhook-timestamp")
        .and_then(|t| t.parse::<u64>().ok())
        .and_then(|s| s.checked_mul(1000));
    Ok(vec![InboundEvent {
        provider_event_id: id.to_string(),
        kind: EventKind::Message,
        conversation,
        sender,
        text: field("text"),
        timestamp_ms,
        status: None,
        payload: body.to_string(),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::http::Request;

    fn req(id: Option<&str>, body: &str) -> HttpRequest {
        let mut r = Request::post("/webhooks/hooks").header("webhook-timestamp", "1749416383");
        if let Some(id) = id {
            r = r.header("webhook-id", id);
        }
        r.body(body).build()
    }

    #[test]
    fn one_event_keyed_on_the_webhook_id() {
        let body = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/message.json")).unwrap();
        let e = parse(&req(Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"), &body)).unwrap().remove(0);
        assert_eq!(e.provider_event_id, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
        assert_eq!(e.kind, EventKind::Message);
        assert_eq!(e.conversation, "ticket-7");
        assert_eq!(e.sender.as_deref(), Some("user-42"));
        assert_eq!(e.text.as_deref(), Some("Is my order on its way?"));
        assert_eq!(e.timestamp_ms, Some(1_749_416_383_000));
        let payload: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(payload, serde_json::from_str::<Value>(&body).unwrap());
    }

    #[test]
    fn defaults_and_errors() {
        let e = parse(&req(Some("a"), r#"{"from":42,"event":"ping"}"#)).unwrap().remove(0);
        assert_eq!((e.conversation.as_str(), e.sender.as_deref(), e.text), ("42", Some("42"), None));
        let e = parse(&req(Some("b"), "{}")).unwrap().remove(0);
        assert_eq!(e.conversation, "default");
        assert!(matches!(parse(&req(None, "{}")), Err(ParseError::Malformed(_))));
        assert!(matches!(parse(&req(Some("c"), "[1]")), Err(ParseError::Malformed(_))));
        assert!(matches!(parse(&req(Some("c"), "hi")), Err(ParseError::Malformed(_))));
    }
}

// ---- Hostile input: never a panic, refused unless it is a delivery ----

#[cfg(test)]
mod hostile {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use switchboard_sdk::http::Request;

/// Arbitrary JSON whose keys (and some string values) come from `words`, so nested shapes
/// reach the parser's branches; other strings are arbitrary Unicode.
fn arb_json(words: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let word = prop::sample::select(words.to_vec()).prop_map(String::from);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        prop_oneof![3 => word.clone(), 1 => any::<String>()].prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Every event's payload is JSON; ids and conversations are what the host can store.
fn well_formed(events: &[InboundEvent]) -> Result<(), TestCaseError> {
    for e in events {
        prop_assert!(serde_json::from_str::<Value>(&e.payload).is_ok(), "{:?}", e.payload);
    }
    Ok(())
}

/// Bytes 0x80..=0xFF spliced into `body`: never UTF-8 there (the fixtures are ASCII).
fn with_invalid_utf8(body: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<prop::sample::Index>(), 0x80u8..=0xFF), 1..4).prop_map(move |ins| {
        let mut b = body.clone();
        for (at, byte) in ins {
            b.insert(at.index(b.len() + 1), byte);
        }
        b
    })
}

fn trimmed(body: &[u8]) -> usize {
    body.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1)
}

    fn fixture() -> Vec<u8> {
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/message.json")).unwrap()
    }

    fn req(id: &str, ts: &str, body: Vec<u8>) -> HttpRequest {
        Request::post("/webhooks/hooks").header("webhook-id", id).header("webhook-timestamp", ts).body(body).build()
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_and_headers_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048), id in any::<String>(), ts in any::<String>()) {
            if let Ok(events) = parse(&req(&id, &ts, body)) {
                well_formed(&events)?;
            }
        }

        #[test]
        fn only_json_objects_are_messages(v in arb_json(&["from", "conversation", "text", "type", "data"]), ts in "[0-9]{0,25}") {
            let got = parse(&req("msg_1", &ts, v.to_string().into_bytes()));
            prop_assert_eq!(got.is_ok(), v.is_object());
            if let Ok(events) = got {
                well_formed(&events)?;
            }
        }

        #[test]
        fn truncated_or_invalid_utf8_deliveries_are_malformed(cut in any::<prop::sample::Index>(), bytes in with_invalid_utf8(fixture())) {
            let f = fixture();
            let cut = cut.index(trimmed(&f));
            prop_assert!(matches!(parse(&req("msg_1", "1", f[..cut].to_vec())), Err(ParseError::Malformed(_))));
            prop_assert!(matches!(parse(&req("msg_1", "1", bytes)), Err(ParseError::Malformed(_))));
        }
    }
}
