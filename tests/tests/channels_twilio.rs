//! The `twilio` plugin through the real binary: signed form posts in (once), forged ones
//! refused, messages out to a mock Twilio API (Basic auth, form body), status callbacks applied,
//! 429 + Retry-After retried after exactly that delay, a permanent error dead-lettered.

mod channels_support;

use base64::Engine as _;
use channels_support::*;
use hmac::{Hmac, Mac};
use serde_json::json;
use switchboard_tests::MockProvider;
use switchboard_tests::process::terminate;

const AUTH_TOKEN: &str = "twilio-auth-token-4c1d9e";
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const PUBLIC_URL: &str = "https://hooks.example.com/webhooks/sms";
const FROM: &str = "+15550001111";
const USER: &str = "+14155551234";

/// `X-Twilio-Signature` as Twilio computes it: base64 HMAC-SHA1 over the URL followed by every
/// form parameter sorted by key, key then value.
fn twilio_signature(url: &str, body: &[u8]) -> String {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    params.sort();
    let mut signed = url.to_string();
    for (k, v) in params {
        signed.push_str(&k);
        signed.push_str(&v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(AUTH_TOKEN.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(switchboard_tests::repo_root().join("plugins/channels/twilio/fixtures").join(name)).unwrap()
}

#[tokio::test]
async fn twilio_end_to_end_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    // Twilio answers a message create with 201 and the message resource.
    mock.set_default(|req, n| {
        let to = req.form_value("To").unwrap_or_default();
        (201, json!({"sid": format!("SM{n:032}"), "status": "queued", "to": to}).to_string())
    });
    let account = format!(
        r#"
[accounts.sms]
plugin = "twilio"
public_url = "{PUBLIC_URL}"
secrets = {{ auth_token = "{AUTH_TOKEN}" }}
settings = {{ account_sid = "{ACCOUNT_SID}", from = "{FROM}", api_base = "{api}" }}
"#,
        api = mock.base_url()
    );
    let (d, _cfg) = start_with_account(dir.path(), &account);
    let api = Api::new(&d);

    // Signed inbound: stored once; the same delivery again stores nothing.
    let body = fixture("sms_text.form");
    let sig = twilio_signature(PUBLIC_URL, &body);
    let headers = [("x-twilio-signature", sig.clone()), ("content-type", "application/x-www-form-urlencoded".to_string())];
    let (s, v) = api.webhook("sms", &headers, &body).await;
    assert_eq!((s, v["stored"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = api.webhook("sms", &headers, &body).await;
    assert_eq!((s, v["stored"].as_u64(), v["duplicates"].as_u64()), (200, Some(0), Some(1)), "{v}");
    let events = api.claim().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["text"], "Is my order on its way?");
    assert_eq!(events[0]["conversation"], USER);

    // Forged: a changed body under the old signature, or a signature over another URL.
    let mut forged = body.clone();
    forged.extend_from_slice(b"&Extra=1");
    assert_eq!(api.webhook("sms", &headers, &forged).await.0, 401);
    let other_url = [("x-twilio-signature", twilio_signature("https://evil.example.com/webhooks/sms", &forged))];
    assert_eq!(api.webhook("sms", &other_url, &forged).await.0, 401);
    assert_eq!(api.webhook("sms", &[], &body).await.0, 401);
    assert!(api.claim().await.is_empty(), "nothing stored by forged requests");

    // Outbound: form-encoded, Basic auth, to the account's Messages resource.
    let id = api.send(json!({"account": "sms", "to": USER, "text": "Yes, it shipped today."})).await;
    let m = api.message_until(&id, |m| m["status"] == "sent").await;
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    assert_eq!(reqs[0].authorization.as_deref(), Some(format!("Basic {basic}").as_str()));
    assert_eq!(reqs[0].form_value("To").as_deref(), Some(USER));
    assert_eq!(reqs[0].form_value("From").as_deref(), Some(FROM));
    assert_eq!(reqs[0].form_value("Body").as_deref(), Some("Yes, it shipped today."));
    let sid = m["provider_message_id"].as_str().unwrap().to_string();
    assert_eq!(sid, format!("SM{:032}", 1));

    // Its status callback moves it to delivered.
    let cb = format!("SmsSid={sid}&SmsStatus=delivered&MessageStatus=delivered&To=%2B14155551234&MessageSid={sid}&AccountSid={ACCOUNT_SID}&From=%2B15550001111&ApiVersion=2010-04-01");
    let (s, v) = api.webhook("sms", &[("x-twilio-signature", twilio_signature(PUBLIC_URL, cb.as_bytes()))], cb.as_bytes()).await;
    assert_eq!((s, v["status_updates"].as_u64()), (200, Some(1)), "{v}");
    api.message_until(&id, |m| m["status"] == "delivered").await;

    // 429 with Retry-After: 1 → retried after exactly 1 s.
    mock.respond_next_with(429, String::from_utf8(fixture("error_20429.json")).unwrap(), &[("retry-after", "1")]);
    let id = api.send(json!({"account": "sms", "to": USER, "text": "second"})).await;
    let m = api.message_until(&id, |m| m["status"] == "sent").await;
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_retried_after_provider_delay(&m, 1_000, reqs[1].at, reqs[2].at);

    // 21211 (invalid To) is permanent: failed at once and dead-lettered.
    mock.respond_next(400, String::from_utf8(fixture("error_21211.json")).unwrap());
    let id = api.send(json!({"account": "sms", "to": "+1415555", "text": "third"})).await;
    let m = api.message_until(&id, |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], "21211");
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1);
    assert!(api.dlq_ids().await.contains(&format!("out:{id}")));
    assert_eq!(mock.requests().len(), 4);

    let logs = terminate(d);
    assert_no_secrets(&logs, &[AUTH_TOKEN, &basic]);
}
