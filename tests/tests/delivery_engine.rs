//! The delivery engine with the real plugin against a scripted mock Graph API and a fake
//! clock: concurrent workers, fencing, provider delays, dead letters and redrive, queue caps,
//! and the circuit breaker.

use serde_json::json;
use std::collections::HashMap;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard_tests::*;

/// A daemon on the fake clock at `T0` and a mock Graph API, with the standard test config plus
/// extra `[delivery]` keys and extra tables. The temp dir holds the store: keep it alive.
async fn start(delivery: &str, tables: &str) -> (tempfile::TempDir, MockProvider, TestDaemon) {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let text = config_toml(dir.path(), &mock.base_url()).replace("poll_interval_ms = 5", &format!("poll_interval_ms = 5\n{delivery}"));
    let cfg = Config::parse(&format!("{text}\n{tables}"), "test").unwrap();
    let d = TestDaemon::start_with(cfg, ManualClock::new(T0)).await;
    (dir, mock, d)
}

const UNLIMITED: &str = "[delivery.rate_limits]\naccount_per_sec = 1000000\nrecipient_per_sec = 1000000\nrecipient_burst = 1000\nconversation_per_sec = 1000000\n";

fn to(i: usize) -> String {
    format!("1650{i:07}")
}

#[tokio::test]
async fn two_workers_racing_for_1000_messages_deliver_each_exactly_once() {
    let (_dir, mock, d) = start("workers = 2\nbatch = 16", UNLIMITED).await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..1_000 {
        let (http, base) = (d.http.clone(), d.base.clone());
        set.spawn(async move {
            let r = http
                .post(format!("{base}/v1/messages"))
                .bearer_auth(API_TOKEN)
                .json(&json!({ "account": "wa-main", "to": to(i), "text": format!("m{i}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        });
    }
    set.join_all().await;
    eventually("all 1000 delivered", || mock.requests().len() >= 1_000).await;
    // Give a (wrong) duplicate send every chance to show up.
    d.daemon.app().outbox_wake.notify_waiters();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for r in mock.requests() {
        *per_recipient.entry(r.body["to"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(per_recipient.len(), 1_000);
    assert!(per_recipient.values().all(|n| *n == 1), "a message was sent twice");
    let (_, stats) = d.get("/v1/stats").await;
    assert_eq!(stats["outbox_unfinished_by_account"]["wa-main"], 0, "{stats}");
    d.stop().await;
}

/// One slow provider call does not hold its worker's other slots empty: the worker tops its
/// deliveries up as they finish. (It used to claim a batch and wait for all of it, so the six
/// below waited for the stalled first one, up to the provider timeout.)
#[tokio::test]
async fn a_stalled_delivery_does_not_hold_up_the_rest_of_its_workers_slots() {
    let (_dir, mock, d) = start("workers = 1\nbatch = 4", UNLIMITED).await;
    let release = mock.hold_next(200, r#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.HELD"}]}"#);
    let send = |i: usize| d.api("/v1/messages", json!({ "account": "wa-main", "to": to(i), "text": format!("m{i}") }));
    let (_, first) = send(0).await;
    eventually("the first send reaches the provider", || mock.requests().len() == 1).await;
    for i in 1..=6 {
        send(i).await;
    }
    eventually("the other six are delivered while the first is held", || mock.requests().len() == 7).await;
    let (_, held) = d.get(&format!("/v1/messages/{}", first["id"].as_str().unwrap())).await;
    assert_eq!(held["status"], "sending", "the first is still at the provider");
    release.notify_one();
    let m = d.message_until(first["id"].as_str().unwrap(), |m| m["status"] == "sent").await;
    assert_eq!(m["provider_message_id"], "wamid.HELD");
    let mut to_each: Vec<String> = mock.requests().iter().map(|r| r.body["to"].as_str().unwrap().to_string()).collect();
    to_each.sort();
    to_each.dedup();
    assert_eq!(to_each.len(), 7, "each sent once");
    d.stop().await;
}

#[tokio::test]
async fn a_worker_whose_lease_expired_mid_delivery_cannot_record_its_outcome() {
    let (_dir, mock, d) = start("workers = 2\nlease_ms = 60000", UNLIMITED).await;
    // The first attempt stalls at the provider past its lease, then fails.
    let release = mock.hold_next(500, r#"{"error":{"code":131000,"message":"Something went wrong"}}"#);
    let (_, a) = d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "hello" })).await;
    let id = a["id"].as_str().unwrap().to_string();
    eventually("the first attempt reaches the provider", || mock.requests().len() == 1).await;

    d.clock.advance_ms(60_000); // the first holder's lease expires; the other worker takes over
    let m = d.message_until(&id, |m| m["status"] == "sent").await;
    assert_eq!(mock.requests().len(), 2);

    release.notify_one(); // the stalled worker now learns its (failed) outcome…
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, after) = d.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(after["status"], "sent", "…and cannot overwrite the new holder's result");
    assert_eq!(after["attempts"], m["attempts"]);
    assert_eq!(after["attempts"].as_array().unwrap().len(), 1, "only the holder's attempt is recorded");
    assert_eq!(mock.accepted(), 1, "the provider accepted the message once");
    d.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured_to_the_millisecond() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    d.signed_webhook(&fixture("text.json")).await;
    mock.respond_next_with(429, r#"{"error":{"code":999999,"message":"Too many"}}"#, &[("retry-after", "3")]);
    let (_, a) = d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "hello" })).await;
    let id = a["id"].as_str().unwrap();
    let m = d.message_until(id, |m| m["status"] == "retrying").await;
    assert_eq!(m["attempts"][0]["next_attempt_at_ms"], T0 + 3_000, "the provider's delay wins over backoff");

    d.clock.advance_ms(2_999);
    d.daemon.app().outbox_wake.notify_waiters();
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert_eq!(mock.requests().len(), 1, "no attempt before 3 s");
    d.clock.advance_ms(1);
    d.message_until(id, |m| m["status"] == "sent").await;
    assert_eq!(mock.requests().len(), 2);
    d.stop().await;
}

/// Idle workers do not poll a store only this daemon writes: they sleep until the next message
/// is due (at most `idle::IDLE_CAP`, 5 s), woken by a new message or, in tests, by the clock
/// moving. With the poll interval at a minute, polling cannot be what finds the work here,
/// and each step must happen well inside the 5 s cap.
#[tokio::test]
async fn idle_workers_are_woken_by_a_new_message_and_by_its_retry_coming_due() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let text = config_toml(dir.path(), &mock.base_url()).replace("poll_interval_ms = 5", "poll_interval_ms = 60000
workers = 2");
    let d = TestDaemon::start_with(Config::parse(&text, "test").unwrap(), ManualClock::new(T0)).await;
    let within = |what: &'static str| move |_| panic!("{what} took longer than the idle cap: a worker polled instead of being woken");
    mock.respond_next_with(429, r#"{"error":{"code":999999,"message":"Too many"}}"#, &[("retry-after", "60")]);
    let (_, a) = d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "hello" })).await;
    let id = a["id"].as_str().unwrap();
    let cap = std::time::Duration::from_secs(4);
    tokio::time::timeout(cap, d.message_until(id, |m| m["status"] == "retrying")).await.unwrap_or_else(within("the first attempt"));
    d.clock.advance_ms(60_000); // the worker sleeps at most the 5 s cap of real time: the move must wake it
    tokio::time::timeout(cap, d.message_until(id, |m| m["status"] == "sent")).await.unwrap_or_else(within("the retry"));
    assert_eq!(mock.requests().len(), 2);
    d.stop().await;
}

#[tokio::test]
async fn after_max_attempts_the_message_is_dead_lettered_and_redrive_sends_it_once() {
    let (_dir, mock, d) = start("", "[accounts.wa-main.retry]\nmax_attempts = 2\n").await;
    d.signed_webhook(&fixture("text.json")).await;
    let fail = r#"{"error":{"code":131000,"message":"Something went wrong"}}"#;
    mock.respond_next(500, fail);
    mock.respond_next(500, fail);
    let (_, a) = d.api_with_key("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "hi" }), Some("k-dlq")).await;
    let id = a["id"].as_str().unwrap().to_string();
    let m = d.message_until(&id, |m| m["status"] == "retrying").await;
    // Each attempt says why it is retried, in the provider's words.
    assert_eq!(m["attempts"][0]["outcome"], "retry");
    assert_eq!(m["attempts"][0]["code"], "131000", "{m}");
    assert_eq!(m["attempts"][0]["detail"], "Something went wrong");
    d.clock.set_ms(m["attempts"][0]["next_attempt_at_ms"].as_u64().unwrap());
    let m = d.message_until(&id, |m| m["status"] == "failed").await;
    assert_eq!(m["error"]["code"], "max_attempts");
    let last = "gave up after 2 attempts; the last: 131000: Something went wrong";
    assert_eq!(m["error"]["reason"], last, "{m}");

    let (s, dlq) = d.get("/v1/dlq").await;
    assert_eq!(s, 200);
    assert_eq!(dlq["items"][0]["id"], format!("out:{id}"));
    assert_eq!(dlq["items"][0]["tries"], 2);
    assert_eq!(dlq["items"][0]["reason"], format!("max_attempts: {last}"), "the dead letter says why: {dlq}");

    let (s, r) = d.api("/v1/dlq/redrive", json!({ "all": true })).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["redriven"][0], format!("out:{id}"));
    d.message_until(&id, |m| m["status"] == "sent").await;
    let (_, again) = d.api("/v1/dlq/redrive", json!({ "ids": [id] })).await;
    assert_eq!(again["not_found"].as_array().unwrap().len(), 1, "a delivered message is no dead letter");
    let (_, same) = d.api_with_key("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "hi" }), Some("k-dlq")).await;
    assert_eq!(same["id"], id.as_str(), "the idempotency key still names the redriven message");
    assert_eq!(mock.requests().len(), 3);
    assert_eq!(mock.accepted(), 1);
    assert_eq!(d.get("/v1/dlq").await.1["items"].as_array().unwrap().len(), 0);
    d.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let (_dir, mock, d) = start("max_queued = 1", "").await;
    mock.respond_next(500, r#"{"error":{"code":131000,"message":"Something went wrong"}}"#);
    let (s, a) = d.api("/v1/messages", json!({ "account": "wa-main", "to": USER, "text": "one" })).await;
    assert_eq!(s, 202);
    d.message_until(a["id"].as_str().unwrap(), |m| m["status"] == "retrying").await;
    let resp = d
        .http
        .post(format!("{}/v1/messages", d.base))
        .bearer_auth(API_TOKEN)
        .json(&json!({ "account": "wa-main", "to": USER, "text": "two" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    d.stop().await;
}

#[tokio::test]
async fn an_open_breaker_makes_messages_wait_without_burning_attempts() {
    let tables = format!("{UNLIMITED}[delivery.breaker]\nmin_calls = 2\nfailure_rate_percent = 50\ncooldown_ms = 10000\n");
    let (_dir, mock, d) = start("", &tables).await;
    let fail = r#"{"error":{"code":131000,"message":"Something went wrong"}}"#;
    mock.respond_next(500, fail);
    mock.respond_next(500, fail);
    let mut ids = Vec::new();
    for i in 0..2 {
        let (_, a) = d.api("/v1/messages", json!({ "account": "wa-main", "to": to(i), "text": "x" })).await;
        ids.push(a["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        d.message_until(id, |m| m["status"] == "retrying").await;
    }
    let ready: serde_json::Value = d.http.get(format!("{}/readyz", d.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["accounts"]["wa-main"]["breaker"], "open");

    let (_, c) = d.api("/v1/messages", json!({ "account": "wa-main", "to": to(9), "text": "waits" })).await;
    let cid = c["id"].as_str().unwrap();
    d.clock.advance_ms(5_000); // past both retries' backoff (≤ 1 s), still inside the cool-down
    d.daemon.app().outbox_wake.notify_waiters();
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    assert_eq!(mock.requests().len(), 2, "nothing goes out while the breaker is open");
    let (_, waiting) = d.get(&format!("/v1/messages/{cid}")).await;
    assert_eq!(waiting["attempts"].as_array().unwrap().len(), 0, "waiting burns no attempts");

    d.clock.advance_ms(5_000); // cool-down over: one probe goes out, the rest wait for it
    eventually("the probe is sent", || mock.accepted() == 1).await;
    d.clock.advance_ms(1_000); // the probe succeeded and closed the breaker: the rest follow
    for id in ids.iter().map(String::as_str).chain([cid]) {
        d.message_until(id, |m| m["status"] == "sent").await;
    }
    let ready: serde_json::Value = d.http.get(format!("{}/readyz", d.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["accounts"]["wa-main"]["breaker"], "closed");
    d.stop().await;
}
