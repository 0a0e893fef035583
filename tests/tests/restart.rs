//! Restarting on the same redb file keeps inbox, outbox and dedupe state.

use serde_json::json;
use switchboard::clock::ManualClock;
use switchboard_tests::*;

#[tokio::test]
async fn inbox_outbox_and_dedupe_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let clock = ManualClock::new(T0);
    let body = fixture("text.json");

    let d = TestDaemon::start_at(dir.path(), &mock.base_url(), clock.clone()).await;
    assert_eq!(d.signed_webhook(&body).await.status(), 200);
    mock.respond_next(500, r#"{"error":{"code":131000,"message":"Something went wrong"}}"#);
    let (_, a) = d.api_with_key("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "hi" }), Some("k1")).await;
    let id = a["id"].as_str().unwrap().to_string();
    d.message_until(&id, |m| m["status"] == "retrying").await;
    d.stop().await;

    let d = TestDaemon::start_at(dir.path(), &mock.base_url(), clock.clone()).await;
    let again: serde_json::Value = d.signed_webhook(&body).await.json().await.unwrap();
    assert_eq!(again["duplicates"], 1, "dedupe keys survived");
    assert_eq!(again["stored"], 0);
    let claim = d.claim(10, 30_000).await;
    assert_eq!(claim["events"].as_array().unwrap().len(), 1, "inbox survived");
    let (_, same) = d.api_with_key("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "hi" }), Some("k1")).await;
    assert_eq!(same["id"], id.as_str(), "idempotency keys survived");
    clock.advance_ms(600_000);
    let m = d.message_until(&id, |m| m["status"] == "sent").await;
    assert_eq!(m["attempts"].as_array().unwrap().len(), 2, "the outbox row and its attempts survived");
    assert_eq!(mock.requests().len(), 2);
    d.stop().await;
}
