//! The `slack` plugin through the real binary: the signed `url_verification` POST answered by
//! the plugin's handshake (nothing stored), message events stored once per `event_id` (Slack's
//! `X-Slack-Retry-Num` retries are duplicates), the bot's own messages ignored, forged and
//! stale signatures refused, `chat.postMessage` with the bot token, 429 `Retry-After` honoured,
//! `ok:false` `channel_not_found` dead-lettered.

mod channels_support;

use channels_support::*;
use hmac::{Hmac, Mac};
use serde_json::json;
use switchboard_tests::MockProvider;
use switchboard_tests::process::terminate;

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(switchboard_tests::repo_root().join("plugins/channels/slack/fixtures").join(name)).unwrap()
}

/// The one account these tests run, its API at `api_base` when given (else Slack's).
fn slack_account(api_base: Option<&str>) -> String {
    let api = api_base.map(|a| format!(", api_base = \"{a}\"")).unwrap_or_default();
    format!(
        "[accounts.slack]\nplugin = \"slack\"\nsecrets = {{ signing_secret = \"{SIGNING_SECRET}\", bot_token = \"{BOT_TOKEN}\" }}\nsettings = {{ bot_user_id = \"U0BOTUSER\"{api} }}\n"
    )
}

/// The headers Slack sends: `v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`.
fn signed(secret: &str, ts: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:").as_bytes());
    mac.update(body);
    vec![
        ("x-slack-request-timestamp", ts.to_string()),
        ("x-slack-signature", format!("v0={}", hex::encode(mac.finalize().into_bytes()))),
        ("content-type", "application/json".to_string()),
    ]
}

#[tokio::test]
async fn slack_end_to_end_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    mock.set_default(|req, n| {
        let channel = req.body["channel"].as_str().unwrap_or("").to_string();
        (200, json!({"ok": true, "channel": channel, "ts": format!("1749416900.{n:06}"), "message": {"text": req.body["text"]}}).to_string())
    });
    let (d, _cfg) = start_with_account(dir.path(), &slack_account(Some(&mock.base_url())));
    let api = Api::new(&d);

    // url_verification: a signed POST answered synchronously with the challenge.
    let challenge = fixture("url_verification.json");
    let (s, v) = api.webhook("slack", &signed(SIGNING_SECRET, now_secs(), &challenge), &challenge).await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}));
    // Unsigned, it is refused like any other request.
    assert_eq!(api.webhook("slack", &[], &challenge).await.0, 401);
    assert!(api.claim().await.is_empty(), "a handshake stores nothing");

    // A message event, then Slack's retry of it (new timestamp, X-Slack-Retry-Num).
    let body = fixture("message_im.json");
    let (s, v) = api.webhook("slack", &signed(SIGNING_SECRET, now_secs(), &body), &body).await;
    assert_eq!((s, v["stored"].as_u64()), (200, Some(1)), "{v}");
    let mut retry = signed(SIGNING_SECRET, now_secs(), &body);
    retry.push(("x-slack-retry-num", "1".into()));
    retry.push(("x-slack-retry-reason", "http_timeout".into()));
    let (s, v) = api.webhook("slack", &retry, &body).await;
    assert_eq!((s, v["stored"].as_u64(), v["duplicates"].as_u64()), (200, Some(0), Some(1)), "{v}");
    // The bot's own message: accepted, nothing stored.
    let own = fixture("message_from_bot.json");
    let (s, v) = api.webhook("slack", &signed(SIGNING_SECRET, now_secs(), &own), &own).await;
    assert_eq!((s, v["stored"].as_u64(), v["duplicates"].as_u64()), (200, Some(0), Some(0)), "{v}");
    let events = api.claim().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["conversation"], "D0PNCRP9N");
    assert_eq!(events[0]["sender"], "U061F7AUR");

    // Forged (wrong secret) and stale (6 minutes old, correctly signed).
    let other = fixture("app_mention.json");
    assert_eq!(api.webhook("slack", &signed("not-the-secret", now_secs(), &other), &other).await.0, 401);
    assert_eq!(api.webhook("slack", &signed(SIGNING_SECRET, now_secs() - 360, &other), &other).await.0, 401);
    assert!(api.claim().await.is_empty());

    // chat.postMessage with the bot token.
    let id = api.send(json!({"account": "slack", "to": "D0PNCRP9N", "text": "Yes, in blue.", "metadata": {"thread_ts": "1749416383.000200"}})).await;
    let m = api.message_until(&id, |m| m["status"] == "sent").await;
    assert_eq!(m["provider_message_id"], "D0PNCRP9N:1749416900.000001");
    let reqs = mock.requests();
    assert_eq!(reqs[0].path, "/api/chat.postMessage");
    assert_eq!(reqs[0].authorization.as_deref(), Some(format!("Bearer {BOT_TOKEN}").as_str()));
    assert_eq!(reqs[0].body, json!({"channel": "D0PNCRP9N", "text": "Yes, in blue.", "thread_ts": "1749416383.000200"}));

    // HTTP 429 with Retry-After: 1.
    mock.respond_next_with(429, String::from_utf8(fixture("error_ratelimited.json")).unwrap(), &[("retry-after", "1")]);
    let id = api.send(json!({"account": "slack", "to": "D0PNCRP9N", "text": "second"})).await;
    let m = api.message_until(&id, |m| m["status"] == "sent").await;
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_retried_after_provider_delay(&m, 1_000, reqs[1].at, reqs[2].at);

    // ok:false channel_not_found (HTTP 200) is permanent.
    mock.respond_next(200, String::from_utf8(fixture("error_channel_not_found.json")).unwrap());
    let id = api.send(json!({"account": "slack", "to": "C0NOSUCH", "text": "third"})).await;
    let m = api.message_until(&id, |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], "channel_not_found");
    assert!(api.dlq_ids().await.contains(&format!("out:{id}")));
    assert_eq!(mock.requests().len(), 4);

    let logs = terminate(d);
    assert_no_secrets(&logs, &[SIGNING_SECRET, BOT_TOKEN]);
}

/// A channel that says `signed_handshakes = false` in its manifest is not asked to answer
/// POSTs: Slack's plugin with that line gets the `url_verification` in `parse-inbound`
/// (which has no challenge to answer), while messages are stored as before.
#[tokio::test]
async fn a_manifest_without_signed_handshakes_sends_posts_straight_to_parse() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(switchboard_tests::plugins_dir().join("slack.wasm"), plugins.join("slack.wasm")).unwrap();
    let manifest = std::fs::read_to_string(switchboard_tests::plugins_dir().join("slack.toml")).unwrap();
    assert!(manifest.contains("\nverify = "), "{manifest}");
    std::fs::write(plugins.join("slack.toml"), manifest.replacen("\nverify = ", "\nsigned_handshakes = false\nverify = ", 1)).unwrap();
    let (d, _cfg) = start_with_account_and_plugins(dir.path(), &slack_account(None), &plugins);
    let api = Api::new(&d);
    let challenge = fixture("url_verification.json");
    let (s, v) = api.webhook("slack", &signed(SIGNING_SECRET, now_secs(), &challenge), &challenge).await;
    assert!(v.get("challenge").is_none(), "{s} {v}: handshake was called");
    let body = fixture("message_im.json");
    let (s, v) = api.webhook("slack", &signed(SIGNING_SECRET, now_secs(), &body), &body).await;
    assert_eq!((s, v["stored"].as_u64()), (200, Some(1)), "{v}");
    terminate(d);
}

