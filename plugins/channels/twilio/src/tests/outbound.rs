use switchboard_sdk::testing::{MockHost, permanent, retried};
use switchboard_sdk::{
    DeliveryOutcome, HttpError, HttpResponse, Media, MessageBody, OutboundMessage,
    Template,
};

use super::fixture;
use crate::outbound::{Config, build_request, classify, classify_response, deliver};

const SID: &str = "AC0123456789abcdef0123456789abcdef";

fn host() -> MockHost {
    MockHost::new()
        .secret("auth_token", "tok3n")
        .setting("account_sid", SID)
        .setting("from", "+15550001111")
        .setting("api_base", "https://api.twilio.com")
}

fn msg(body: MessageBody) -> OutboundMessage {
    OutboundMessage {
        id: "msg_1".into(),
        account: "sms".into(),
        to: "+14155551234".into(),
        conversation: None,
        body,
        metadata: None,
        attempt: 1,
        idempotency_key: None,
    }
}

fn text(s: &str) -> OutboundMessage {
    msg(MessageBody::Text(s.into()))
}

fn resp(status: u16, body: &[u8]) -> HttpResponse {
    HttpResponse::new(status, body)
}


fn form(req: &switchboard_sdk::HttpRequest) -> Vec<(String, String)> {
    req.form()
}

#[test]
fn text_request_is_form_encoded_with_basic_auth() {
    let cfg = Config::from_host(&host()).unwrap();
    let req = build_request(&cfg, &text("Your order shipped & more")).unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.url, format!("https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"));
    // base64("AC0123456789abcdef0123456789abcdef:tok3n")
    assert_eq!(
        req.header("authorization"),
        Some("Basic QUMwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjp0b2szbg==")
    );
    assert_eq!(req.header("content-type"), Some("application/x-www-form-urlencoded"));
    assert_eq!(
        form(&req),
        vec![
            ("To".into(), "+14155551234".into()),
            ("From".into(), "+15550001111".into()),
            ("Body".into(), "Your order shipped & more".into()),
        ]
    );
}

#[test]
fn whatsapp_sender_prefixes_the_recipient_and_service_sid_replaces_from() {
    let h = host().setting("from", "whatsapp:+15550001111").setting("status_callback", "https://hooks.example.com/webhooks/sms");
    let cfg = Config::from_host(&h).unwrap();
    let f = form(&build_request(&cfg, &text("hi")).unwrap());
    assert_eq!(f[0], ("To".into(), "whatsapp:+14155551234".into()));
    assert_eq!(f[1], ("From".into(), "whatsapp:+15550001111".into()));
    assert_eq!(f.last().unwrap(), &("StatusCallback".into(), "https://hooks.example.com/webhooks/sms".into()));

    let h = host().setting("messaging_service_sid", "MG9752274e9e519418a7406176694466fa");
    let f = form(&build_request(&Config::from_host(&h).unwrap(), &text("hi")).unwrap());
    assert_eq!(f[1], ("MessagingServiceSid".into(), "MG9752274e9e519418a7406176694466fa".into()));
}

#[test]
fn media_and_content_templates() {
    let cfg = Config::from_host(&host()).unwrap();
    let m = msg(MessageBody::Media(Media { kind: "image".into(), url: "https://cdn.example.com/a.jpg".into(), caption: Some("Look".into()) }));
    let f = form(&build_request(&cfg, &m).unwrap());
    assert!(f.contains(&("Body".into(), "Look".into())));
    assert!(f.contains(&("MediaUrl".into(), "https://cdn.example.com/a.jpg".into())));

    let t = msg(MessageBody::Template(Template { name: "HXb5b62575e6e4ff6129ad7c8efe1f983e".into(), language: "en".into(), components: Some(r#"{"1":"12/1","2":"3pm"}"#.into()) }));
    let f = form(&build_request(&cfg, &t).unwrap());
    assert!(f.contains(&("ContentSid".into(), "HXb5b62575e6e4ff6129ad7c8efe1f983e".into())));
    assert!(f.contains(&("ContentVariables".into(), r#"{"1":"12/1","2":"3pm"}"#.into())));

    let bad = msg(MessageBody::Template(Template { name: "order_update".into(), language: "en".into(), components: None }));
    assert_eq!(build_request(&cfg, &bad).unwrap_err().code, "invalid-template");
    let bad = msg(MessageBody::Template(Template { name: "HX1".into(), language: "en".into(), components: Some("[1]".into()) }));
    assert_eq!(build_request(&cfg, &bad).unwrap_err().code, "invalid-template");
}

#[test]
fn missing_config_is_permanent_and_sends_nothing() {
    let h = MockHost::new().secret("auth_token", "t").setting("account_sid", SID);
    let f = permanent(deliver(&h, &text("hi")));
    assert_eq!(f.code, "config");
    assert!(f.reason.contains("from"), "{}", f.reason);
    assert!(h.requests().is_empty());
    let h = MockHost::new().setting("account_sid", SID).setting("from", "+1");
    assert_eq!(permanent(deliver(&h, &text("hi"))).code, "config");
}

#[test]
fn created_is_delivered_with_the_sid() {
    assert_eq!(
        classify_response(&resp(201, &fixture("send_ok.json")), false),
        DeliveryOutcome::Delivered("SMb7e4c1a0d9f8e7d6c5b4a3928170f6e5".into())
    );
    assert_eq!(permanent(classify_response(&resp(201, b"{}"), false)).code, "no-message-id");
}

#[test]
fn rate_limits_honor_retry_after() {
    let body = fixture("error_20429.json");
    assert_eq!(classify_response(&resp(429, &body), false), DeliveryOutcome::RateLimited(0));
    let mut r = resp(429, &body);
    r.headers.push(("retry-after".into(), "1".into()));
    assert_eq!(classify_response(&r, false), DeliveryOutcome::RateLimited(1_000));
    for code in [63018, 63017, 21611, 63038] {
        let b = format!(r#"{{"code":{code},"message":"x","status":400}}"#);
        assert_eq!(classify_response(&resp(400, b.as_bytes()), true), DeliveryOutcome::RateLimited(0), "{code}");
    }
    // A 429 without a known code is still a rate limit.
    assert_eq!(classify_response(&resp(429, b""), false), DeliveryOutcome::RateLimited(0));
}

#[test]
fn server_errors_retry_unless_at_most_once() {
    let body = fixture("error_20500.json");
    let t = retried(classify_response(&resp(500, &body), false));
    assert_eq!((t.code.as_str(), t.after_ms), ("20500", None));
    assert_eq!(permanent(classify_response(&resp(500, &body), true)).code, "ambiguous");
    let t = retried(classify_response(&resp(400, br#"{"code":30001,"message":"Queue overflow"}"#), true));
    assert_eq!((t.code.as_str(), t.reason.as_str()), ("30001", "Queue overflow"));
    let mut r = resp(503, br#"{"code":20503}"#);
    r.headers.push(("retry-after".into(), "3".into()));
    let t = retried(classify_response(&r, false));
    assert_eq!((t.code.as_str(), t.after_ms), ("20503", Some(3_000)));
    assert_eq!(retried(classify_response(&resp(502, b"<html>bad gateway</html>"), false)).code, "http-502");
    assert_eq!(permanent(classify_response(&resp(502, b""), true)).code, "ambiguous");
    assert_eq!(retried(classify(Err(HttpError::Timeout), false)).code, "timeout");
    assert_eq!(permanent(classify(Err(HttpError::Timeout), true)).code, "ambiguous");
    assert_eq!(permanent(classify(Err(HttpError::Denied("x".into())), false)).code, "denied");
}

#[test]
fn permanent_codes() {
    let f = permanent(classify_response(&resp(400, &fixture("error_21211.json")), false));
    assert_eq!(f.code, "21211");
    assert!(f.reason.starts_with("Invalid 'To' Phone Number"), "{}", f.reason);
    let f = permanent(classify_response(&resp(400, &fixture("error_63016.json")), false));
    assert_eq!(f.code, "63016");
    assert!(f.reason.contains("Message Template"), "{}", f.reason);
    assert_eq!(permanent(classify_response(&resp(401, &fixture("error_20003.json")), false)).code, "20003");
    for code in [21610, 63003] {
        let b = format!(r#"{{"code":{code},"status":400}}"#);
        let f = permanent(classify_response(&resp(400, b.as_bytes()), false));
        assert_eq!(f.code, code.to_string());
        assert!(!f.reason.is_empty());
    }
    // Unknown 4xx: permanent, with the code or the HTTP status.
    assert_eq!(permanent(classify_response(&resp(400, br#"{"code":21606,"message":"From is not valid"}"#), false)).code, "21606");
    assert_eq!(permanent(classify_response(&resp(404, b"Not Found"), false)).code, "http-404");
}

#[test]
fn deliver_posts_once() {
    let h = host().respond(Ok(resp(201, &fixture("send_ok.json"))));
    assert_eq!(deliver(&h, &text("hi")), DeliveryOutcome::Delivered("SMb7e4c1a0d9f8e7d6c5b4a3928170f6e5".into()));
    assert_eq!(h.requests().len(), 1);
    let h = host().respond(Ok(resp(500, &fixture("error_20500.json"))));
    assert_eq!(retried(deliver(&h, &text("hi"))).code, "20500");
    assert!(h.logs().iter().any(|(_, m)| m.contains("not idempotent")));
}
