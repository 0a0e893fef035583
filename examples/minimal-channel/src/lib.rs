//! A minimal Switchboard channel: how to write one.
//!
//! Inbound: the provider POSTs `{"id": "...", "from": "...", "text": "..."}` to
//! `/webhooks/{account}`. The host has already checked its Standard Webhooks signature when
//! `parse_inbound` runs, and it dedupes on `(account, provider_event_id)`, stores the events
//! and answers the provider. The plugin only translates.
//!
//! Outbound: `deliver` POSTs `{"id", "to", "text"}` to the account's `url` setting through the
//! host's `http-fetch` (the only way out of the sandbox) and says what happened.

use serde::Deserialize;
use switchboard_sdk::http::{self, Request};
use switchboard_sdk::serde_json::json;
use switchboard_sdk::{
    Channel, ChannelInfo, DeliveryOutcome, EventKind, Host, HttpRequest, HttpResponse,
    InboundEvent, MessageBody, OutboundMessage, ParseError, WasmHost, config,
};

/// The body this provider sends; serde rejects anything else as `malformed`.
#[derive(Deserialize)]
struct Incoming {
    id: String,
    from: String,
    text: String,
}

pub struct Minimal;

impl Channel for Minimal {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "minimal-channel".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            verify_scheme: "standard-webhooks".into(), // must match `verify` in plugin.toml
            capabilities: vec!["text".into()],
        }
    }

    /// No GET handshake for this provider.
    fn handshake(_request: HttpRequest) -> Option<HttpResponse> {
        None
    }

    fn parse_inbound(request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
        parse(&request.body)
    }

    fn deliver(message: OutboundMessage) -> DeliveryOutcome {
        deliver(&WasmHost, &message)
    }
}

/// Pure, so it is unit-testable natively.
pub fn parse(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let msg: Incoming = http::parse_json(body)?;
    Ok(vec![InboundEvent {
        provider_event_id: msg.id, // the dedupe key: must be stable across redeliveries
        kind: EventKind::Message,
        conversation: msg.from.clone(),
        sender: Some(msg.from),
        text: Some(msg.text.clone()),
        timestamp_ms: None,
        status: None,
        payload: json!({"type": "text", "text": msg.text}).to_string(),
    }])
}

/// Takes the host as a parameter so tests can pass `switchboard_sdk::testing::MockHost`.
pub fn deliver(host: &impl Host, message: &OutboundMessage) -> DeliveryOutcome {
    // A missing setting can never succeed: `permanent` with code "config".
    let url = match config::require_setting(host, "url") {
        Ok(url) => url,
        Err(failure) => return DeliveryOutcome::Permanent(failure),
    };
    let MessageBody::Text(text) = &message.body else {
        return DeliveryOutcome::permanent("unsupported", "this channel only sends text");
    };
    let mut request = Request::post(url);
    if let Some(token) = host.secret("api_token") {
        request = request.bearer(&token);
    }
    let request = request
        .json(&json!({"id": message.id, "to": message.to, "text": text}))
        .build();

    match host.http_fetch(&request) {
        // Timeouts and transport errors retry; a denied host is permanent.
        Err(err) => DeliveryOutcome::from_http_error(&err),
        Ok(resp) if resp.is_success() => {
            // The provider's id for the message if it returns one, else ours.
            let id = resp
                .json::<switchboard_sdk::serde_json::Value>()
                .ok()
                .and_then(|v| v["id"].as_str().map(String::from));
            DeliveryOutcome::Delivered(id.unwrap_or_else(|| message.id.clone()))
        }
        Ok(resp) if resp.status == 429 => {
            DeliveryOutcome::RateLimited(resp.retry_after_ms().unwrap_or(0))
        }
        Ok(resp) if resp.status >= 500 => DeliveryOutcome::retry_http(&resp),
        Ok(resp) => DeliveryOutcome::permanent(
            format!("http-{}", resp.status),
            String::from_utf8_lossy(&resp.body),
        ),
    }
}

// Generates the component exports; only in the wasm build (natively this is a test rlib).
#[cfg(target_arch = "wasm32")]
switchboard_sdk::export!(Minimal);

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::testing::MockHost;

    #[test]
    fn parses_one_message() {
        let events = parse(br#"{"id":"evt_1","from":"alice","text":"hi"}"#).unwrap();
        assert_eq!(
            (
                events[0].provider_event_id.as_str(),
                events[0].text.as_deref()
            ),
            ("evt_1", Some("hi"))
        );
        assert!(matches!(parse(b"{}"), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn delivers_text() {
        let host = MockHost::new()
            .setting("url", "http://127.0.0.1:9/in")
            .respond(Ok(HttpResponse::new(200, r#"{"id":"r1"}"#)));
        let msg = OutboundMessage {
            id: "m1".into(),
            account: "a".into(),
            to: "bob".into(),
            conversation: None,
            body: MessageBody::Text("hello".into()),
            metadata: None,
            attempt: 1,
            idempotency_key: None,
        };
        assert_eq!(
            deliver(&host, &msg),
            DeliveryOutcome::Delivered("r1".into())
        );
        assert_eq!(
            host.requests()[0].body,
            br#"{"id":"m1","text":"hello","to":"bob"}"#
        );
    }
}
