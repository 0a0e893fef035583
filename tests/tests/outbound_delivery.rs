//! Outbound: idempotent enqueue, delivery through the real plugin to a mock Graph API,
//! retry classification, and status webhooks.

use serde_json::json;
use switchboard_tests::*;

fn text_message(text: &str) -> serde_json::Value {
    json!({ "account": "wa-main", "to": USER, "text": text })
}

/// Opens the 24-hour window the way a real conversation does: the user writes first.
async fn user_writes(d: &TestDaemon) {
    assert_eq!(d.signed_webhook(&fixture("text.json")).await.status(), 200);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_id_and_sends_once() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    user_writes(&d).await;

    let (s1, a) = d.api_with_key("/v1/messages", text_message("Yes, in blue."), Some("reply-1")).await;
    let (s2, b) = d.api_with_key("/v1/messages", text_message("Yes, in blue."), Some("reply-1")).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a["id"], b["id"]);
    let id = a["id"].as_str().unwrap();
    let msg = d.message_until(id, |m| m["status"] == "sent").await;
    assert_eq!(msg["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(msg["provider_message_id"], "wamid.MOCK000001");

    // Give a (wrong) second send every chance to happen before counting.
    let (_, again) = d.api_with_key("/v1/messages", text_message("Yes, in blue."), Some("reply-1")).await;
    assert_eq!(again["id"], id);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].path, format!("/v21.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(reqs[0].authorization.as_deref(), Some(format!("Bearer {ACCESS_TOKEN}").as_str()));
    assert_eq!(reqs[0].body["text"]["body"], "Yes, in blue.");
    assert_eq!(reqs[0].body["to"], USER);

    let (s3, conflict) = d.api_with_key("/v1/messages", text_message("Something else"), Some("reply-1")).await;
    assert_eq!(s3, 422, "{conflict}");
    d.stop().await;
}

#[tokio::test]
async fn a_131056_pair_rate_limit_is_retried_after_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    user_writes(&d).await;
    mock.respond_next(400, String::from_utf8(fixture("error_131056.json")).unwrap());

    let (_, a) = d.api("/v1/messages", text_message("hello")).await;
    let id = a["id"].as_str().unwrap();
    let m = d.message_until(id, |m| m["status"] == "retrying").await;
    assert_eq!(m["attempts"][0]["outcome"], "rate_limited");
    let next = m["attempts"][0]["next_attempt_at_ms"].as_u64().unwrap();
    assert!(next <= T0 + 1_000, "first retry within the 1 s base backoff");

    d.clock.set_ms(next);
    let m = d.message_until(id, |m| m["status"] == "sent").await;
    assert_eq!(m["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(mock.requests().len(), 2);
    d.stop().await;
}

#[tokio::test]
async fn a_131026_undeliverable_answer_ends_as_failed_without_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    user_writes(&d).await;
    mock.respond_next(400, String::from_utf8(fixture("error_131026.json")).unwrap());

    let (_, a) = d.api("/v1/messages", text_message("hello")).await;
    let m = d.message_until(a["id"].as_str().unwrap(), |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], "131026");
    assert_eq!(m["attempts"][0]["outcome"], "permanent");
    d.clock.advance_ms(3_600_000);
    d.daemon.app().outbox_wake.notify_one();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(mock.requests().len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn status_webhooks_move_the_message_forward_and_never_back() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    user_writes(&d).await;
    // The fixture's send_ok wamid is the one the status fixtures refer to.
    mock.respond_next(200, String::from_utf8(fixture("send_ok.json")).unwrap());
    let (_, a) = d.api("/v1/messages", text_message("on its way")).await;
    let id = a["id"].as_str().unwrap();
    d.message_until(id, |m| m["status"] == "sent").await;

    for f in ["status_delivered.json", "status_read.json", "status_sent.json"] {
        let r = d.signed_webhook(&fixture(f)).await;
        assert_eq!(r.status(), 200, "{f}");
    }
    let (_, m) = d.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(m["status"], "read", "a late `sent` does not move read back: {m}");
    d.stop().await;
}

#[tokio::test]
async fn free_form_text_outside_a_known_closed_window_is_refused_with_the_template_hint() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    user_writes(&d).await;
    d.clock.advance_ms(24 * 3_600_000);
    let (s, v) = d.api("/v1/messages", text_message("late reply")).await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("template"), "{v}");
    let tpl = json!({ "account": "wa-main", "to": USER, "template": { "name": "order_update", "language": "en_US" } });
    let (s, _) = d.api("/v1/messages", tpl).await;
    assert_eq!(s, 202);
    d.stop().await;
}
