use serde_json::{Value, json};
use switchboard_sdk::testing::{MockHost, permanent, retried};
use switchboard_sdk::{DeliveryOutcome, Host, HttpError, HttpResponse, Media, MessageBody, OutboundMessage, Template};

use super::fixture;
use crate::outbound::{Answer, ChatId, Config, build_request, classify_response, deliver};

const TOKEN: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

fn host() -> MockHost {
    MockHost::new().secret("bot_token", TOKEN).setting("api_base", "https://api.telegram.org")
}

fn msg(to: &str, body: MessageBody, metadata: Option<&str>) -> OutboundMessage {
    OutboundMessage {
        id: "msg_1".into(),
        account: "tg".into(),
        to: to.into(),
        conversation: None,
        body,
        metadata: metadata.map(Into::into),
        attempt: 1,
        idempotency_key: None,
    }
}

fn text(to: &str, s: &str) -> OutboundMessage {
    msg(to, MessageBody::Text(s.into()), None)
}

fn resp(status: u16, body: &[u8]) -> HttpResponse {
    HttpResponse::new(status, body)
}

fn body_of(req: &switchboard_sdk::HttpRequest) -> Value {
    serde_json::from_slice(&req.body).unwrap()
}


#[test]
fn send_message_without_parse_mode_and_i64_chat_ids() {
    let cfg = Config::from_host(&host()).unwrap();
    let m = text("-1002233445566", "*not bold*");
    let req = build_request(&cfg, &m, &ChatId::parse(&m.to).unwrap()).unwrap();
    assert_eq!(req.url, format!("https://api.telegram.org/bot{TOKEN}/sendMessage"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let b = body_of(&req);
    assert_eq!(b, json!({"chat_id": -1_002_233_445_566i64, "text": "*not bold*"}));
    assert!(b.get("parse_mode").is_none());
    assert_eq!(ChatId::parse("@mychannel").unwrap(), ChatId::Username("@mychannel".into()));
    assert_eq!(ChatId::parse("+15550001111").unwrap(), ChatId::Id(15550001111));
    assert_eq!(ChatId::parse("sheena").unwrap_err().code, "invalid-recipient");
}

#[test]
fn metadata_asks_for_parse_mode_and_replies() {
    let cfg = Config::from_host(&host()).unwrap();
    let m = msg("5123456789", MessageBody::Text("<b>hi</b>".into()), Some(r#"{"parse_mode":"HTML","reply_to_message_id":1427,"unknown":1}"#));
    let b = body_of(&build_request(&cfg, &m, &ChatId::Id(5123456789)).unwrap());
    assert_eq!(b["parse_mode"], "HTML");
    assert_eq!(b["reply_parameters"], json!({"message_id": 1427}));
    assert!(b.get("unknown").is_none());
}

#[test]
fn media_methods_and_templates() {
    let cfg = Config::from_host(&host()).unwrap();
    for (kind, method, field) in [("image", "sendPhoto", "photo"), ("video", "sendVideo", "video"), ("document", "sendDocument", "document"), ("audio", "sendAudio", "audio"), ("sticker", "sendSticker", "sticker")] {
        let m = msg("1", MessageBody::Media(Media { kind: kind.into(), url: "https://cdn.example.com/f".into(), caption: Some("c".into()) }), None);
        let req = build_request(&cfg, &m, &ChatId::Id(1)).unwrap();
        assert!(req.url.ends_with(method), "{kind}");
        let b = body_of(&req);
        assert_eq!(b[field], "https://cdn.example.com/f");
        assert_eq!(b.get("caption").is_some(), kind != "sticker");
    }
    let t = msg("1", MessageBody::Template(Template { name: "x".into(), language: "en".into(), components: None }), None);
    assert_eq!(permanent(deliver(&host(), &t)).code, "unsupported-template");
}

#[test]
fn answers() {
    let chat = ChatId::Id(5123456789);
    assert_eq!(classify_response(&resp(200, &fixture("send_ok.json")), &chat), Answer::Outcome(DeliveryOutcome::Delivered("5123456789:1432".into())));
    assert_eq!(classify_response(&resp(429, &fixture("error_429.json")), &chat), Answer::Outcome(DeliveryOutcome::RateLimited(1_000)));
    let Answer::Outcome(o) = classify_response(&resp(403, &fixture("error_403_blocked.json")), &chat) else { panic!() };
    let f = permanent(o);
    assert_eq!((f.code.as_str(), f.reason.as_str()), ("403", "Forbidden: bot was blocked by the user"));
    let Answer::Outcome(o) = classify_response(&resp(400, &fixture("error_400_chat_not_found.json")), &chat) else { panic!() };
    assert_eq!(permanent(o).code, "400");
    let Answer::Outcome(o) = classify_response(&resp(502, &fixture("error_502.json")), &chat) else { panic!() };
    let t = retried(o);
    assert_eq!((t.code.as_str(), t.reason.as_str(), t.after_ms), ("502", "Bad Gateway", None));
    let Answer::Outcome(o) = classify_response(&resp(502, b"<html>"), &chat) else { panic!() };
    assert_eq!(retried(o).code, "http-502");
    let mut r = resp(429, b"");
    r.headers.push(("retry-after".into(), "3".into()));
    assert_eq!(classify_response(&r, &chat), Answer::Outcome(DeliveryOutcome::RateLimited(3_000)));
    assert!(matches!(classify_response(&resp(400, &fixture("error_400_migrated.json")), &chat), Answer::Migrated(-1_002_233_445_566, _)));
}

#[test]
fn a_migrated_group_is_resent_to_the_supergroup_and_remembered() {
    let ok = json!({"ok": true, "result": {"message_id": 7, "chat": {"id": -1002233445566i64}}}).to_string();
    let h = host()
        .respond(Ok(resp(400, &fixture("error_400_migrated.json"))))
        .respond(Ok(resp(200, ok.as_bytes())));
    assert_eq!(deliver(&h, &text("-4012345678", "hi")), DeliveryOutcome::Delivered("-1002233445566:7".into()));
    let reqs = h.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(body_of(&reqs[0])["chat_id"], -4_012_345_678i64);
    assert_eq!(body_of(&reqs[1])["chat_id"], -1_002_233_445_566i64);
    assert_eq!(h.kv_get("migrated:tg:-4012345678").as_deref(), Some(&b"-1002233445566"[..]));

    // The next message to the old id goes straight to the new one.
    let h2 = host().respond(Ok(resp(200, ok.as_bytes())));
    h2.kv_set("migrated:tg:-4012345678", Some(b"-1002233445566"));
    deliver(&h2, &text("-4012345678", "again"));
    assert_eq!(body_of(&h2.requests()[0])["chat_id"], -1_002_233_445_566i64);

    // Migrating twice in one attempt is permanent, with the new id in the reason.
    let h3 = host()
        .respond(Ok(resp(400, &fixture("error_400_migrated.json"))))
        .respond(Ok(resp(400, &fixture("error_400_migrated.json"))));
    let f = permanent(deliver(&h3, &text("-4012345678", "hi")));
    assert_eq!(f.code, "migrated");
    assert!(f.reason.contains("-1002233445566"), "{}", f.reason);
}

#[test]
fn the_token_is_never_logged_and_config_is_required() {
    let h = host().respond(Ok(resp(403, &fixture("error_403_blocked.json"))));
    deliver(&h, &text("1", "hi"));
    assert!(!h.logs().is_empty());
    assert!(h.logs().iter().all(|(_, m)| !m.contains(TOKEN)));
    let none = MockHost::new();
    assert_eq!(permanent(deliver(&none, &text("1", "hi"))).code, "config");
    let h = host().respond(Err(HttpError::Timeout));
    assert_eq!(retried(deliver(&h, &text("1", "hi"))).code, "timeout");
}
