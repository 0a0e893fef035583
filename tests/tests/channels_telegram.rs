//! The `telegram` plugin (webhook mode) through the real binary: updates with the right secret
//! token stored once per `update_id`, a wrong or missing token refused, `sendMessage` to a mock
//! Bot API, 429 `retry_after` honoured, a group migrated to a supergroup re-sent there, a
//! blocked bot (403) dead-lettered, and the bot token (part of every Bot API URL) never logged.

mod channels_support;

use channels_support::*;
use serde_json::json;
use switchboard_tests::MockProvider;
use switchboard_tests::process::terminate;

const BOT_TOKEN: &str = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const SECRET_TOKEN: &str = "tg-secret-token_9f8e7d";
const CHAT: &str = "5123456789";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(switchboard_tests::repo_root().join("plugins/channels/telegram/fixtures").join(name)).unwrap()
}

#[tokio::test]
async fn telegram_end_to_end_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    mock.set_default(|req, n| {
        let chat = req.body["chat_id"].clone();
        (200, json!({"ok": true, "result": {"message_id": 1000 + n, "chat": {"id": chat}, "date": 1749416900, "text": req.body["text"]}}).to_string())
    });
    let account = format!(
        r#"
[accounts.tg]
plugin = "telegram"
secrets = {{ bot_token = "{BOT_TOKEN}", secret_token = "{SECRET_TOKEN}" }}
settings = {{ api_base = "{api}" }}
"#,
        api = mock.base_url()
    );
    let (d, _cfg) = start_with_account(dir.path(), &account);
    let api = Api::new(&d);

    let body = fixture("update_text.json");
    let good = [("x-telegram-bot-api-secret-token", SECRET_TOKEN.to_string()), ("content-type", "application/json".into())];
    let (s, v) = api.webhook("tg", &good, &body).await;
    assert_eq!((s, v["stored"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = api.webhook("tg", &good, &body).await;
    assert_eq!((s, v["duplicates"].as_u64()), (200, Some(1)), "{v}");
    let events = api.claim().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["conversation"], CHAT);
    assert_eq!(events[0]["text"], "Does it come in another color?");

    let wrong = [("x-telegram-bot-api-secret-token", "tg-secret-token_9f8e7D".to_string())];
    assert_eq!(api.webhook("tg", &wrong, &fixture("update_edited.json")).await.0, 401);
    assert_eq!(api.webhook("tg", &[], &fixture("update_edited.json")).await.0, 401);
    assert!(api.claim().await.is_empty());

    // sendMessage, no parse_mode, chat id as a JSON integer.
    let id = api.send(json!({"account": "tg", "to": CHAT, "text": "Yes, in *blue*."})).await;
    let m = api.message_until(&id, |m| m["status"] == "sent").await;
    assert_eq!(m["provider_message_id"], format!("{CHAT}:1001"));
    let reqs = mock.requests();
    assert_eq!(reqs[0].path, format!("/bot{BOT_TOKEN}/sendMessage"));
    assert_eq!(reqs[0].body, json!({"chat_id": 5123456789i64, "text": "Yes, in *blue*."}));

    // 429 with parameters.retry_after = 1.
    mock.respond_next(429, String::from_utf8(fixture("error_429.json")).unwrap());
    let id = api.send(json!({"account": "tg", "to": CHAT, "text": "second"})).await;
    let m = api.message_until(&id, |m| m["status"] == "sent").await;
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_retried_after_provider_delay(&m, 1_000, reqs[1].at, reqs[2].at);

    // A group upgraded to a supergroup: re-sent to the new id in the same attempt.
    mock.respond_next(400, String::from_utf8(fixture("error_400_migrated.json")).unwrap());
    let id = api.send(json!({"account": "tg", "to": "-4012345678", "text": "to the group"})).await;
    let m = api.message_until(&id, |m| m["status"] == "sent").await;
    assert_eq!(m["attempts"].as_array().unwrap().len(), 1);
    assert!(m["provider_message_id"].as_str().unwrap().starts_with("-1002233445566:"), "{m}");
    let reqs = mock.requests();
    assert_eq!(reqs[3].body["chat_id"], -4_012_345_678i64);
    assert_eq!(reqs[4].body["chat_id"], -1_002_233_445_566i64);

    // 403 blocked → failed, dead-lettered, not retried.
    mock.respond_next(403, String::from_utf8(fixture("error_403_blocked.json")).unwrap());
    let id = api.send(json!({"account": "tg", "to": CHAT, "text": "third"})).await;
    let m = api.message_until(&id, |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], "403");
    assert!(m["error"]["reason"].as_str().unwrap().contains("blocked"));
    assert!(api.dlq_ids().await.contains(&format!("out:{id}")));
    assert_eq!(mock.requests().len(), 6);

    let logs = terminate(d);
    assert_no_secrets(&logs, &[BOT_TOKEN, SECRET_TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"]);
}
