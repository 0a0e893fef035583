use serde_json::{Value, json};
use switchboard_sdk::testing::{MockHost, permanent, retried};
use switchboard_sdk::{DeliveryOutcome, HttpError, HttpResponse, Media, MessageBody, OutboundMessage, Template};

use super::fixture;
use crate::outbound::{Config, build_request, classify_response, deliver, message_body};

fn host() -> MockHost {
    MockHost::new().secret("bot_token", "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy").setting("api_base", "https://slack.com")
}

fn msg(body: MessageBody, metadata: Option<&str>) -> OutboundMessage {
    OutboundMessage {
        id: "msg_1".into(),
        account: "slack".into(),
        to: "D0PNCRP9N".into(),
        conversation: None,
        body,
        metadata: metadata.map(Into::into),
        attempt: 1,
        idempotency_key: None,
    }
}

fn resp(status: u16, body: &[u8]) -> HttpResponse {
    HttpResponse::new(status, body)
}

#[test]
fn post_message_request() {
    let cfg = Config::from_host(&host()).unwrap();
    let m = msg(MessageBody::Text("Yes, in blue.".into()), Some(r#"{"thread_ts":"1749416383.000200","other":1}"#));
    let req = build_request(&cfg, &m).unwrap();
    assert_eq!(req.url, "https://slack.com/api/chat.postMessage");
    assert_eq!(req.header("authorization"), Some("Bearer xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"));
    assert_eq!(req.header("content-type"), Some("application/json; charset=utf-8"));
    let b: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(b, json!({"channel": "D0PNCRP9N", "text": "Yes, in blue.", "thread_ts": "1749416383.000200"}));
}

#[test]
fn media_and_templates() {
    let img = msg(MessageBody::Media(Media { kind: "image".into(), url: "https://cdn.example.com/a.png".into(), caption: Some("Blue".into()) }), None);
    let b = message_body(&img).unwrap();
    assert_eq!(b["text"], "Blue");
    assert_eq!(b["blocks"][0]["image_url"], "https://cdn.example.com/a.png");
    let doc = msg(MessageBody::Media(Media { kind: "document".into(), url: "https://cdn.example.com/a.pdf".into(), caption: Some("Invoice".into()) }), None);
    assert_eq!(message_body(&doc).unwrap()["text"], "<https://cdn.example.com/a.pdf|Invoice>");
    let t = msg(MessageBody::Template(Template { name: "x".into(), language: "en".into(), components: None }), None);
    let h = host();
    assert_eq!(permanent(deliver(&h, &t)).code, "unsupported-template");
    assert!(h.requests().is_empty());
}

#[test]
fn answers() {
    assert_eq!(classify_response(&resp(200, &fixture("post_message_ok.json"))), DeliveryOutcome::Delivered("D0PNCRP9N:1749416900.006600".into()));
    let mut r = resp(429, &fixture("error_ratelimited.json"));
    r.headers.push(("retry-after".into(), "1".into()));
    assert_eq!(classify_response(&r), DeliveryOutcome::RateLimited(1_000));
    assert_eq!(classify_response(&resp(429, b"")), DeliveryOutcome::RateLimited(0));
    assert_eq!(classify_response(&resp(200, &fixture("error_ratelimited.json"))), DeliveryOutcome::RateLimited(0));
    let f = permanent(classify_response(&resp(200, &fixture("error_channel_not_found.json"))));
    assert_eq!(f.code, "channel_not_found");
    let f = permanent(classify_response(&resp(200, &fixture("error_missing_scope.json"))));
    assert_eq!(f.code, "missing_scope");
    assert!(f.reason.contains("chat:write"), "{}", f.reason);
    let t = retried(classify_response(&resp(200, &fixture("error_internal.json"))));
    assert_eq!((t.code.as_str(), t.after_ms), ("internal_error", None));
    assert_eq!(t.reason, "The server could not complete the operation");
    assert_eq!(retried(classify_response(&resp(503, b"<html>"))).code, "http-503");
    assert_eq!(retried(classify_response(&resp(500, br#"{"ok":false,"error":"brand_new"}"#))).code, "brand_new");
    assert_eq!(permanent(classify_response(&resp(200, br#"{"ok":false,"error":"brand_new"}"#))).code, "brand_new");
    assert_eq!(permanent(classify_response(&resp(404, b"Not Found"))).code, "http-404");
    assert_eq!(permanent(classify_response(&resp(200, br#"{"ok":true}"#))).code, "no-message-id");
}

#[test]
fn deliver_through_the_host() {
    let h = host().respond(Ok(resp(200, &fixture("post_message_ok.json"))));
    let m = msg(MessageBody::Text("hi".into()), None);
    assert_eq!(deliver(&h, &m), DeliveryOutcome::Delivered("D0PNCRP9N:1749416900.006600".into()));
    let h = host().respond(Err(HttpError::Timeout));
    assert_eq!(retried(deliver(&h, &m)).code, "timeout");
    assert_eq!(permanent(deliver(&MockHost::new(), &m)).code, "config");
}
