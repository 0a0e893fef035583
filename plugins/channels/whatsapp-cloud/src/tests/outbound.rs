use serde_json::{Value, json};
use switchboard_sdk::testing::{MockHost, permanent, retried};
use switchboard_sdk::{
    DeliveryOutcome, HttpError, HttpResponse, Media, MessageBody, OutboundMessage,
    Template,
};

use super::fixture;
use crate::outbound::{Config, build_request, classify, classify_response, deliver, message_body};

const PHONE_ID: &str = "106540352242922";
const OUT_WAMID: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";

fn msg(body: MessageBody) -> OutboundMessage {
    OutboundMessage {
        id: "01J9Z3M7Q6TWQ3R5B8ZJ5S9K2H".into(),
        account: "wa-main".into(),
        to: "16505551234".into(),
        conversation: Some("16505551234".into()),
        body,
        metadata: None,
        attempt: 1,
        idempotency_key: Some("order-42".into()),
    }
}

fn text(s: &str) -> OutboundMessage {
    msg(MessageBody::Text(s.into()))
}

fn media(kind: &str, caption: Option<&str>) -> OutboundMessage {
    msg(MessageBody::Media(Media {
        kind: kind.into(),
        url: "https://cdn.example.com/files/a.bin".into(),
        caption: caption.map(Into::into),
    }))
}

fn template(components: Option<&str>) -> OutboundMessage {
    msg(MessageBody::Template(Template {
        name: "order_confirmation".into(),
        language: "en_US".into(),
        components: components.map(Into::into),
    }))
}

fn host() -> MockHost {
    MockHost::new()
        .secret("access_token", "EAAJB...token")
        .setting("phone_number_id", PHONE_ID)
        .setting("api_base", "https://graph.facebook.com")
        .setting("api_version", "v21.0")
}

fn resp(status: u16, body: &[u8]) -> HttpResponse {
    HttpResponse::new(status, body)
}

fn resp_with(status: u16, body: &[u8], headers: &[(&str, &str)]) -> HttpResponse {
    let mut r = resp(status, body);
    r.headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r
}

/// A Graph API error body with the given code.
fn graph_error(code: i64) -> Vec<u8> {
    json!({"error": {"message": format!("(#{code}) Something"), "type": "OAuthException", "code": code, "fbtrace_id": "Abc"}})
        .to_string()
        .into_bytes()
}


// ---- request building ----

#[test]
fn text_request() {
    let cfg = Config::from_host(&host()).unwrap();
    let req = build_request(&cfg, &text("Your order shipped 🚚")).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.url,
        "https://graph.facebook.com/v21.0/106540352242922/messages"
    );
    assert_eq!(req.header("authorization"), Some("Bearer EAAJB...token"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(
        req.headers
            .iter()
            .all(|(k, _)| k.chars().all(|c| !c.is_ascii_uppercase()))
    );
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "text",
            "text": {"body": "Your order shipped 🚚", "preview_url": false}
        })
    );
}

#[test]
fn url_uses_api_base_and_version_settings() {
    let h = MockHost::new()
        .secret("access_token", "t")
        .setting("phone_number_id", PHONE_ID)
        .setting("api_base", "http://127.0.0.1:41234/")
        .setting("api_version", "v19.0");
    assert_eq!(
        Config::from_host(&h).unwrap().messages_url(),
        "http://127.0.0.1:41234/v19.0/106540352242922/messages"
    );
    // A host that does not apply manifest defaults still gets Meta's.
    let h = MockHost::new()
        .secret("access_token", "t")
        .setting("phone_number_id", PHONE_ID);
    assert_eq!(
        Config::from_host(&h).unwrap().messages_url(),
        "https://graph.facebook.com/v21.0/106540352242922/messages"
    );
}

#[test]
fn template_body() {
    let components = r##"[{"type":"body","parameters":[{"type":"text","text":"#12345"}]}]"##;
    let body = message_body(&template(Some(components))).unwrap();
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "template",
            "template": {
                "name": "order_confirmation",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "#12345"}]}]
            }
        })
    );
    let body = message_body(&template(None)).unwrap();
    assert_eq!(
        body["template"],
        json!({"name": "order_confirmation", "language": {"code": "en_US"}})
    );
}

#[test]
fn bad_template_components_are_permanent() {
    let f = message_body(&template(Some("{not json"))).unwrap_err();
    assert_eq!(f.code, "invalid-template");
    let f = message_body(&template(Some(r#"{"type":"body"}"#))).unwrap_err();
    assert_eq!(f.code, "invalid-template");
    let h = host();
    let f = permanent(deliver(&h, &template(Some("nope"))));
    assert_eq!(f.code, "invalid-template");
    assert!(h.requests().is_empty());
}

#[test]
fn media_bodies() {
    let url = "https://cdn.example.com/files/a.bin";
    for kind in ["image", "video", "document"] {
        let body = message_body(&media(kind, Some("Look"))).unwrap();
        assert_eq!(body["type"], kind);
        assert_eq!(
            body[kind],
            json!({"link": url, "caption": "Look"}),
            "{kind}"
        );
        assert_eq!(body["to"], "16505551234");
        assert_eq!(body["messaging_product"], "whatsapp");
        let body = message_body(&media(kind, None)).unwrap();
        assert_eq!(body[kind], json!({"link": url}), "{kind}");
    }
    for kind in ["audio", "sticker"] {
        let body = message_body(&media(kind, Some("ignored"))).unwrap();
        assert_eq!(body["type"], kind);
        assert_eq!(body[kind], json!({"link": url}), "{kind} takes no caption");
    }
    let body = message_body(&media("IMAGE", None)).unwrap();
    assert_eq!(body["type"], "image");
    let f = message_body(&media("gif", None)).unwrap_err();
    assert_eq!(f.code, "unsupported-media");
}

// ---- response classification ----

#[test]
fn send_ok_is_delivered() {
    assert_eq!(
        classify_response(&resp(200, &fixture("send_ok.json"))),
        DeliveryOutcome::Delivered(OUT_WAMID.into())
    );
}

#[test]
fn success_without_message_id_is_not_retried() {
    let f = permanent(classify_response(&resp(
        200,
        br#"{"messaging_product":"whatsapp","messages":[]}"#,
    )));
    assert_eq!(f.code, "no-message-id");
    let f = permanent(classify_response(&resp(200, b"")));
    assert_eq!(f.code, "no-message-id");
}

#[test]
fn pair_rate_limit_fixture() {
    let body = fixture("error_131056.json");
    assert_eq!(
        classify_response(&resp(400, &body)),
        DeliveryOutcome::RateLimited(0)
    );
    assert_eq!(
        classify_response(&resp_with(400, &body, &[("retry-after", "60")])),
        DeliveryOutcome::RateLimited(60_000)
    );
}

#[test]
fn rate_limit_codes_ignore_http_status() {
    for code in [130429, 131056, 80007, 4] {
        for status in [400, 403, 429, 500] {
            assert_eq!(
                classify_response(&resp(status, &graph_error(code))),
                DeliveryOutcome::RateLimited(0),
                "{code}/{status}"
            );
        }
        let r = resp_with(400, &graph_error(code), &[("Retry-After", "2")]);
        assert_eq!(
            classify_response(&r),
            DeliveryOutcome::RateLimited(2_000),
            "{code}"
        );
    }
}

#[test]
fn retryable_codes() {
    for code in [1, 2, 131000, 131016, 131057] {
        for status in [400, 500, 503] {
            let t = retried(classify_response(&resp(status, &graph_error(code))));
            assert_eq!(t.code, code.to_string(), "{status}");
            assert_eq!(t.reason, format!("(#{code}) Something"));
            assert_eq!(t.after_ms, None);
        }
    }
}

#[test]
fn undeliverable_fixture_is_permanent() {
    let f = permanent(classify_response(&resp(400, &fixture("error_131026.json"))));
    assert_eq!(f.code, "131026");
    assert_eq!(
        f.reason,
        "(#131026) Message undeliverable: Message Undeliverable."
    );
}

#[test]
fn outside_window_fixture_names_the_template_requirement() {
    let f = permanent(classify_response(&resp(400, &fixture("error_131047.json"))));
    assert_eq!(f.code, "131047");
    assert!(
        f.reason.starts_with(
            "(#131047) Re-engagement message: Message failed to send because more than 24 hours"
        ),
        "{}",
        f.reason
    );
    assert!(
        f.reason.contains("template message is required"),
        "{}",
        f.reason
    );
}

#[test]
fn expired_token_fixture_is_permanent() {
    let f = permanent(classify_response(&resp(401, &fixture("error_190.json"))));
    assert_eq!(f.code, "190");
    assert!(
        f.reason
            .starts_with("Error validating access token: Session has expired"),
        "{}",
        f.reason
    );
}

#[test]
fn permanent_codes_even_on_5xx() {
    for code in [
        131047, 131026, 100, 190, 0, 10, 368, 131031, 131048, 131049, 131051, 131052, 132000,
        132001, 132015, 132068,
    ] {
        for status in [400, 500] {
            let f = permanent(classify_response(&resp(status, &graph_error(code))));
            assert_eq!(f.code, code.to_string());
            assert!(
                f.reason.starts_with(&format!("(#{code}) Something")),
                "{}",
                f.reason
            );
        }
    }
}

#[test]
fn unknown_codes_fall_back_to_http_status() {
    for status in [500, 503, 429] {
        let t = retried(classify_response(&resp(status, &graph_error(999_999))));
        assert_eq!((t.code.as_str(), t.after_ms), ("999999", None), "{status}");
    }
    let t = retried(classify_response(&resp_with(
        503,
        &graph_error(999_999),
        &[("retry-after", "5")],
    )));
    assert_eq!((t.code.as_str(), t.after_ms), ("999999", Some(5_000)));
    let f = permanent(classify_response(&resp(400, &graph_error(999_999))));
    assert_eq!(f.code, "999999");
    // An error object without a code.
    let f = permanent(classify_response(&resp(
        400,
        br#"{"error":{"message":"Bad"}}"#,
    )));
    assert_eq!((f.code.as_str(), f.reason.as_str()), ("unknown", "Bad"));
}

#[test]
fn non_json_bodies() {
    let t = retried(classify_response(&resp(502, b"<html>Bad Gateway</html>")));
    assert_eq!(t.code, "http-502");
    assert!(t.reason.contains("Bad Gateway"), "{}", t.reason);
    assert_eq!(retried(classify_response(&resp(500, b""))).code, "http-500");
    assert_eq!(retried(classify_response(&resp(429, b"slow down"))).code, "http-429");
    let f = permanent(classify_response(&resp(404, b"Not Found")));
    assert_eq!(f.code, "http-404");
    assert!(f.reason.contains("Not Found"));
    let long = "x".repeat(10_000);
    let f = permanent(classify_response(&resp(400, long.as_bytes())));
    assert!(f.reason.len() < 300);
}

#[test]
fn http_fetch_errors() {
    assert_eq!(retried(classify(Err(HttpError::Timeout))).code, "timeout");
    let t = retried(classify(Err(HttpError::Transport("connection reset".into()))));
    assert_eq!((t.code.as_str(), t.reason.as_str()), ("transport", "connection reset"));
    assert_eq!(retried(classify(Err(HttpError::TooLarge))).code, "too-large");
    assert_eq!(
        permanent(classify(Err(HttpError::Denied(
            "graph.facebook.com".into()
        ))))
        .code,
        "denied"
    );
    assert_eq!(
        permanent(classify(Err(HttpError::InvalidRequest("bad url".into())))).code,
        "invalid-request"
    );
}

// ---- deliver through a scripted host ----

#[test]
fn deliver_posts_and_returns_the_wamid() {
    let h = host().respond(Ok(resp(200, &fixture("send_ok.json"))));
    assert_eq!(
        deliver(&h, &text("hi")),
        DeliveryOutcome::Delivered(OUT_WAMID.into())
    );
    let reqs = h.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].url,
        "https://graph.facebook.com/v21.0/106540352242922/messages"
    );
    assert_eq!(
        reqs[0].header("authorization"),
        Some("Bearer EAAJB...token")
    );
}

#[test]
fn deliver_without_config_is_permanent_and_sends_nothing() {
    let no_token = MockHost::new().setting("phone_number_id", PHONE_ID);
    let f = permanent(deliver(&no_token, &text("hi")));
    assert_eq!(f.code, "config");
    assert!(f.reason.contains("access_token"), "{}", f.reason);
    assert!(no_token.requests().is_empty());

    let no_phone = MockHost::new().secret("access_token", "t");
    let f = permanent(deliver(&no_phone, &text("hi")));
    assert_eq!(f.code, "config");
    assert!(f.reason.contains("phone_number_id"), "{}", f.reason);
    assert!(no_phone.requests().is_empty());

    let empty_token = MockHost::new()
        .secret("access_token", "")
        .setting("phone_number_id", PHONE_ID);
    assert_eq!(permanent(deliver(&empty_token, &text("hi"))).code, "config");
}

#[test]
fn deliver_classifies_host_errors_and_logs() {
    let h = host().respond(Err(HttpError::Timeout));
    assert_eq!(retried(deliver(&h, &text("hi"))).code, "timeout");
    let h = host().respond(Ok(resp(400, &fixture("error_131047.json"))));
    assert_eq!(permanent(deliver(&h, &text("hi"))).code, "131047");
    assert!(h.logs().iter().any(|(_, m)| m.contains("131047")));
}

#[test]
fn a_text_body_is_written_as_message_body_builds_it() {
    let cfg = Config::from_host(&host()).unwrap();
    for s in ["", "plain", "quotes \" and \\ backslash", "line\nbreak\ttab", "emoji 🚚 and \u{0001}", "  padded  "] {
        let mut m = text(s);
        m.to = " 16505551234 ".into();
        let req = build_request(&cfg, &m).unwrap();
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body, message_body(&m).unwrap(), "{s:?}");
        assert_eq!(req.header("content-type"), Some("application/json"));
    }
}

#[test]
fn the_in_place_read_of_a_send_agrees_with_the_full_one() {
    // Each of these is answered by the in-place read or falls through to the full one; the
    // outcome is what the full read alone gives.
    let cases: [&[u8]; 7] = [
        br#"{"messaging_product":"whatsapp","contacts":[{"input":"1","wa_id":"1"}],"messages":[{"id":"wamid.A"}]}"#,
        br#"{"messages":[{"id":"wamid.A","message_status":"accepted"}],"error":null}"#,
        br#"{"messages":[{"id":""}]}"#,
        br#"{"messages":[]}"#,
        br#"{"messages":[{"id":7}]}"#,
        br#"{"messages":[{"id":"wamid.A"}],"error":{"code":131047,"message":"x"}}"#,
        br#"{"messages":[{"id":"wamid.\u0041"}]}"#,
    ];
    for body in cases {
        let r = resp(200, body);
        assert_eq!(
            format!("{:?}", classify_response(&r)),
            format!("{:?}", crate::outbound::classify_response_in_full(&r)),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}
