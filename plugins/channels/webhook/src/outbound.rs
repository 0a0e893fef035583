//! Outbound: `POST {url}` with a JSON body signed with Standard Webhooks.
//!
//! ```json
//! {"type":"message","id":"msg_…","account":"hooks","to":"user-42","conversation":"ticket-7",
//!  "text":"Hello","attempt":1}
//! ```
//! (`media` / `template` objects instead of `text`; `metadata` when the caller gave some.)
//! `webhook-id` is the Switchboard message id, the same on every retry so the receiver can
//! dedupe; `webhook-timestamp` is the host's clock (`now-ms` / 1000).
//!
//! The receiver's answer, by HTTP status (there is no provider error body to read):
//!
//! | status | outcome |
//! |---|---|
//! | 2xx | delivered (provider id = the message id) |
//! | 429 | rate-limited (`Retry-After`) |
//! | 408, 425, 5xx | retry (`Retry-After` if given) |
//! | 410 Gone | permanent: the endpoint is gone |
//! | other 4xx, 3xx | permanent |

use serde_json::{Value, json};
use switchboard_sdk::http::Request;
use switchboard_sdk::{
    DeliveryOutcome, Failure, Host, HttpRequest, HttpResponse, LogLevel, MessageBody,
    OutboundMessage, config,
};

use crate::sign;

/// The JSON body sent for a message.
pub fn body(msg: &OutboundMessage) -> Value {
    let mut b = json!({
        "type": "message",
        "id": msg.id,
        "account": msg.account,
        "to": msg.to,
        "attempt": msg.attempt,
    });
    if let Some(c) = &msg.conversation {
        b["conversation"] = json!(c);
    }
    match &msg.body {
        MessageBody::Text(t) => b["text"] = json!(t),
        MessageBody::Media(m) => b["media"] = json!({"kind": m.kind, "url": m.url, "caption": m.caption}),
        MessageBody::Template(t) => {
            let components = t.components.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok());
            b["template"] = json!({"name": t.name, "language": t.language, "components": components});
        }
    }
    if let Some(meta) = msg.metadata.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok()) {
        b["metadata"] = meta;
    }
    b
}

/// The signed request.
pub fn build_request(url: &str, secret: &str, now_ms: u64, msg: &OutboundMessage) -> Result<HttpRequest, Failure> {
    let key = sign::key(secret)?;
    let payload = body(msg).to_string().into_bytes();
    let ts = now_ms / 1000;
    let signature = sign::signature(&key, &msg.id, ts, &payload);
    Ok(Request::post(url.trim())
        .header("content-type", "application/json")
        .header("webhook-id", msg.id.clone())
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(payload)
        .build())
}

pub fn classify_response(msg_id: &str, resp: &HttpResponse) -> DeliveryOutcome {
    match resp.status {
        200..=299 => DeliveryOutcome::Delivered(msg_id.to_string()),
        429 => DeliveryOutcome::RateLimited(resp.retry_after_ms().unwrap_or(0)),
        408 | 425 | 500..=599 => DeliveryOutcome::retry_http(resp),
        410 => DeliveryOutcome::permanent("http-410", "the endpoint is gone (410): stop sending"),
        s => {
            let text = String::from_utf8_lossy(&resp.body);
            let text: String = text.trim().chars().take(200).collect();
            DeliveryOutcome::permanent(format!("http-{s}"), format!("HTTP {s}: {text}"))
        }
    }
}

pub fn deliver(host: &impl Host, msg: &OutboundMessage) -> DeliveryOutcome {
    let request = config::require_setting(host, "url").and_then(|url| {
        let secret = config::require_secret(host, "webhook_secret")?;
        build_request(&url, &secret, host.now_ms(), msg)
    });
    let outcome = match request {
        Ok(req) => match host.http_fetch(&req) {
            Ok(resp) => classify_response(&msg.id, &resp),
            Err(e) => DeliveryOutcome::from_http_error(&e),
        },
        Err(f) => DeliveryOutcome::Permanent(f),
    };
    if let DeliveryOutcome::Permanent(f) = &outcome {
        host.log(LogLevel::Warn, &format!("message {} failed: {} {}", msg.id, f.code, f.reason));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::testing::{MockHost, retried};
    use switchboard_sdk::HttpError;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn msg() -> OutboundMessage {
        OutboundMessage {
            id: "msg_01J".into(),
            account: "hooks".into(),
            to: "user-42".into(),
            conversation: Some("ticket-7".into()),
            body: MessageBody::Text("Hello".into()),
            metadata: Some(r#"{"k":1}"#.into()),
            attempt: 2,
            idempotency_key: None,
        }
    }

    fn host() -> MockHost {
        MockHost::new().secret("webhook_secret", SECRET).setting("url", "https://agent.example.com/hook").now(1_749_416_383_999)
    }

    #[test]
    fn signed_post() {
        let h = host().respond(Ok(HttpResponse::new(204, "")));
        assert_eq!(deliver(&h, &msg()), DeliveryOutcome::Delivered("msg_01J".into()));
        let req = &h.requests()[0];
        assert_eq!(req.url, "https://agent.example.com/hook");
        assert_eq!(req.header("webhook-id"), Some("msg_01J"));
        assert_eq!(req.header("webhook-timestamp"), Some("1749416383"));
        let key = sign::key(SECRET).unwrap();
        assert_eq!(req.header("webhook-signature").unwrap(), sign::signature(&key, "msg_01J", 1749416383, &req.body));
        let b: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(b, json!({"type":"message","id":"msg_01J","account":"hooks","to":"user-42","attempt":2,"conversation":"ticket-7","text":"Hello","metadata":{"k":1}}));
    }

    #[test]
    fn answers_by_status() {
        let mut r = HttpResponse::new(429, "");
        r.headers.push(("retry-after".into(), "1".into()));
        assert_eq!(classify_response("m", &r), DeliveryOutcome::RateLimited(1_000));
        assert_eq!(classify_response("m", &HttpResponse::new(503, "")), DeliveryOutcome::retry("http-503", "HTTP 503 from the provider"));
        assert_eq!(retried(classify_response("m", &HttpResponse::new(408, ""))).code, "http-408");
        for (s, code) in [(410, "http-410"), (400, "http-400"), (404, "http-404"), (301, "http-301")] {
            assert!(matches!(classify_response("m", &HttpResponse::new(s, "x")), DeliveryOutcome::Permanent(ref f) if f.code == code), "{s}");
        }
        let h = host().respond(Err(HttpError::Timeout));
        assert_eq!(retried(deliver(&h, &msg())).code, "timeout");
    }

    #[test]
    fn config_is_required() {
        let h = MockHost::new().secret("webhook_secret", SECRET);
        assert!(matches!(deliver(&h, &msg()), DeliveryOutcome::Permanent(ref f) if f.code == "config"));
        let h = MockHost::new().setting("url", "https://x").secret("webhook_secret", "whsec_");
        assert!(matches!(deliver(&h, &msg()), DeliveryOutcome::Permanent(ref f) if f.code == "config"));
        assert!(h.requests().is_empty());
    }
}
