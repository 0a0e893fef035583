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
        use switchboard_sdk::hostile::{arb_json, well_formed, with_invalid_utf8, trimmed};
    use switchboard_sdk::http::Request;





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
