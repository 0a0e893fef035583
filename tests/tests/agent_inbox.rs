//! The pull inbox for agents: long-poll claims woken by ingest, filtering by conversation,
//! the per-consumer cap, conversation history with retention and sessions, the session cap.

mod agent_support;

use agent_support::*;
use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_tests::*;

#[tokio::test]
async fn a_long_poll_claim_returns_as_soon_as_an_event_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = start(dir.path(), &mock, "", "").await;
    let started = Instant::now();
    let (_, empty) = d.api("/v1/inbox/claim", json!({"max": 5, "wait_ms": 150, "consumer": "a"})).await;
    assert!(empty["events"].as_array().unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(150), "an empty long-poll waits its wait_ms");

    let (http, base) = (d.http.clone(), d.base.clone());
    let waiting = tokio::spawn(async move {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/inbox/claim"))
            .bearer_auth(API_TOKEN)
            .json(&json!({"max": 5, "wait_ms": 20_000, "consumer": "a"}))
            .send()
            .await
            .unwrap();
        (r.json::<serde_json::Value>().await.unwrap(), t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    d.signed_webhook(&fixture("text.json")).await;
    let (claim, took) = waiting.await.unwrap();
    assert_eq!(claim["events"][0]["text"], "Does it come in another color?", "{claim}");
    assert!(took < Duration::from_secs(5), "woken by the ingest, not by the timeout ({took:?})");
    d.stop().await;
}

#[tokio::test]
async fn claims_filter_by_conversation_and_a_consumer_may_hold_only_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = start(dir.path(), &mock, "", "[inbox]\nmax_per_consumer = 2\n").await;
    for (i, user) in ["111", "222", "111", "111"].iter().enumerate() {
        d.signed_webhook(&wa_text(&format!("wamid.{i}"), user, &format!("m{i}"))).await;
    }
    let (_, c) = d.api("/v1/inbox/claim", json!({"max": 10, "consumer": "x", "conversation": "222"})).await;
    let events = c["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["conversation"], "222");

    let (s, c) = d.api("/v1/inbox/claim", json!({"max": 10, "consumer": "x"})).await;
    assert_eq!(s, 200);
    assert_eq!(c["events"].as_array().unwrap().len(), 1, "x holds 1 + 1 = its cap of 2");
    let lease = c["lease"].as_str().unwrap().to_string();
    let held = c["events"][0]["id"].clone();
    let (s, v) = d.api("/v1/inbox/claim", json!({"max": 10, "consumer": "x"})).await;
    assert_eq!(s, 429, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("holds 2 unacknowledged events"), "{v}");
    let (s, _) = d.api("/v1/inbox/claim", json!({"max": 10, "consumer": "y"})).await;
    assert_eq!(s, 200, "the cap is per consumer");

    d.api("/v1/inbox/ack", json!({"ids": [held], "lease": lease})).await;
    let (s, _) = d.api("/v1/inbox/claim", json!({"max": 10, "consumer": "x"})).await;
    assert_eq!(s, 200, "an ack makes room");
    d.clock.advance_ms(60_000); // leases (30 s default) expire: x holds nothing any more
    let (s, c) = d.api("/v1/inbox/claim", json!({"max": 10, "consumer": "x"})).await;
    assert_eq!(s, 200, "{c}");
    d.stop().await;
}

#[tokio::test]
async fn history_is_newest_first_bounded_and_split_into_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = start(dir.path(), &mock, "", "[inbox]\nhistory_limit = 3\n").await;
    for i in 0..3 {
        d.signed_webhook(&wa_text(&format!("wamid.h{i}"), USER, &format!("in {i}"))).await;
    }
    let (s, _) = d.api("/v1/messages", json!({"account": "wa-main", "to": USER, "text": "out 0"})).await;
    assert_eq!(s, 202);
    d.clock.advance_ms(31 * 60_000);
    d.signed_webhook(&wa_text("wamid.h3", USER, "after a break")).await;

    let (s, v) = d.get(&format!("/v1/conversations/{USER}/messages")).await;
    assert_eq!(s, 200, "{v}");
    let m = v["messages"].as_array().unwrap();
    let texts: Vec<_> = m.iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["after a break", "out 0", "in 2"], "newest first, the last 3 kept");
    let dirs: Vec<_> = m.iter().map(|e| e["direction"].as_str().unwrap()).collect();
    assert_eq!(dirs, ["inbound", "outbound", "inbound"]);
    assert_eq!(m[0]["session"], 2, "31 quiet minutes start a new session");
    assert_eq!(m[1]["session"], 1);
    let (_, v) = d.get(&format!("/v1/conversations/{USER}/messages?limit=1")).await;
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn an_account_at_its_open_session_cap_refuses_new_conversations_with_429() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = start(dir.path(), &mock, "", "[inbox]\nmax_open_sessions = 1\n").await;
    assert_eq!(d.signed_webhook(&wa_text("wamid.a", "111", "hi")).await.status(), 200);
    assert_eq!(d.signed_webhook(&wa_text("wamid.a2", "111", "again")).await.status(), 200, "the open session continues");
    let r = d.signed_webhook(&wa_text("wamid.b", "222", "hello")).await;
    assert_eq!(r.status(), 429);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("1 open sessions"), "{v}");
    let (s, v) = d.api("/v1/messages", json!({"account": "wa-main", "to": "333", "text": "new"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (429, Some("session_limit")), "{v}");
    assert_eq!(d.claim(10, 60_000).await["events"].as_array().unwrap().len(), 2, "nothing of the refused webhook was stored");

    d.clock.advance_ms(31 * 60_000); // the first session closed
    assert_eq!(d.signed_webhook(&wa_text("wamid.b", "222", "hello")).await.status(), 200);
    d.stop().await;
}
