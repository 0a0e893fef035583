//! The generic `webhook` plugin through the real binary: Standard Webhooks in (stored once per
//! `webhook-id`; forged, unsigned and stale deliveries refused), Standard Webhooks out (the
//! receiver checks the signature the way any Standard Webhooks library does), 429 Retry-After
//! honoured, a 410 Gone dead-lettered.

mod channels_support;

use base64::Engine as _;
use channels_support::*;
use hmac::{Hmac, Mac};
use serde_json::json;
use switchboard_tests::MockProvider;
use switchboard_tests::process::terminate;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn key() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap()
}

fn signature(key: &[u8], id: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn headers(id: &str, ts: u64, sig: String) -> Vec<(&'static str, String)> {
    vec![("webhook-id", id.to_string()), ("webhook-timestamp", ts.to_string()), ("webhook-signature", sig), ("content-type", "application/json".into())]
}

#[tokio::test]
async fn webhook_end_to_end_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = MockProvider::start().await;
    receiver.set_default(|_, _| (204, String::new()));
    let account = format!(
        r#"
[accounts.hooks]
plugin = "webhook"
secrets = {{ webhook_secret = "{SECRET}" }}
settings = {{ url = "{url}/agent/inbound" }}
"#,
        url = receiver.base_url()
    );
    let (d, _cfg) = start_with_account(dir.path(), &account);
    let api = Api::new(&d);

    let body = std::fs::read(switchboard_tests::repo_root().join("plugins/channels/webhook/fixtures/message.json")).unwrap();
    let ts = now_secs();
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    // Several signatures, one of them right (key rotation), as the spec allows.
    let sig = format!("v1,Zm9yZ2VkLXNpZ25hdHVyZS1wYWRkaW5nLXRvLTMyLWI= {}", signature(&key(), id, ts, &body));
    let (s, v) = api.webhook("hooks", &headers(id, ts, sig.clone()), &body).await;
    assert_eq!((s, v["stored"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = api.webhook("hooks", &headers(id, ts, sig), &body).await;
    assert_eq!((s, v["duplicates"].as_u64()), (200, Some(1)), "{v}");
    let events = api.claim().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["conversation"], "ticket-7");
    assert_eq!(events[0]["text"], "Is my order on its way?");
    assert_eq!(events[0]["payload"]["order"]["id"], "A-1009");

    let other = "msg_other";
    assert_eq!(api.webhook("hooks", &headers(other, ts, signature(b"wrong key", other, ts, &body)), &body).await.0, 401);
    assert_eq!(api.webhook("hooks", &headers(other, ts - 600, signature(&key(), other, ts - 600, &body)), &body).await.0, 401);
    assert_eq!(api.webhook("hooks", &[], &body).await.0, 401);
    assert!(api.claim().await.is_empty());

    // Outbound: POST {url}, signed; the receiver verifies it.
    let mid = api.send(json!({"account": "hooks", "to": "user-42", "conversation": "ticket-7", "text": "On its way."})).await;
    let m = api.message_until(&mid, |m| m["status"] == "sent").await;
    assert_eq!(m["provider_message_id"], mid.as_str());
    let reqs = receiver.requests();
    let r = &reqs[0];
    assert_eq!(r.path, "/agent/inbound");
    assert_eq!(r.header("webhook-id"), Some(mid.as_str()));
    let sent_ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(sent_ts.abs_diff(now_secs()) < 60, "signed with the host's clock");
    assert_eq!(r.header("webhook-signature").unwrap(), signature(&key(), &mid, sent_ts, &r.raw_body));
    assert_eq!(r.body["text"], "On its way.");
    assert_eq!(r.body["to"], "user-42");
    assert_eq!(r.body["conversation"], "ticket-7");

    // 429 + Retry-After: 1; the retry carries the same webhook-id.
    receiver.respond_next_with(429, "", &[("retry-after", "1")]);
    let mid = api.send(json!({"account": "hooks", "to": "user-42", "text": "second"})).await;
    let m = api.message_until(&mid, |m| m["status"] == "sent").await;
    let reqs = receiver.requests();
    assert_eq!(reqs.len(), 3);
    assert_retried_after_provider_delay(&m, 1_000, reqs[1].at, reqs[2].at);
    assert_eq!(reqs[1].header("webhook-id"), reqs[2].header("webhook-id"));

    // 410 Gone: permanent, dead-lettered.
    receiver.respond_next(410, "");
    let mid = api.send(json!({"account": "hooks", "to": "user-42", "text": "third"})).await;
    let m = api.message_until(&mid, |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], "http-410");
    assert!(api.dlq_ids().await.contains(&format!("out:{mid}")));

    let logs = terminate(d);
    assert_no_secrets(&logs, &[SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
}
