//! Push delivery to a local agent endpoint: signed with Standard Webhooks (checked with the
//! host's own verifier, the equivalent of the `standardwebhooks` library), retried with
//! backoff on the daemon's clock, in order per conversation, not served by pull claims unless
//! `pull_and_push`, dead-lettered after the account's attempts.

mod agent_support;

use agent_support::*;
use serde_json::json;
use switchboard::model::HttpRequest;
use switchboard::redact::Secret;
use switchboard_tests::*;

fn push_keys(agent: &MockProvider, extra: &str) -> String {
    format!("deliver_to = \"{}/agent/events\"\ndeliver_secret = \"{WHSEC}\"\n{extra}", agent.base_url())
}

/// Verifies one received push the way a Standard Webhooks library does, at its own timestamp.
fn verify(r: &mock::Recorded) {
    let ts: u64 = r.header("webhook-timestamp").unwrap().parse().unwrap();
    let req = HttpRequest {
        method: "POST".into(),
        url: r.path.clone(),
        headers: r.headers.clone(),
        body: r.raw_body.clone(),
        timeout_ms: None,
    };
    switchboard::verify::verify_standard_webhooks(&Secret::new(WHSEC), ts * 1000, &req).expect("the push signature verifies");
}

#[tokio::test]
async fn an_endpoint_that_fails_twice_gets_the_event_three_times_each_signed() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let agent = endpoint(200, "").await;
    agent.respond_next(500, "");
    agent.respond_next(503, "");
    let d = start(dir.path(), &mock, &push_keys(&agent, ""), "").await;
    assert_eq!(d.signed_webhook(&fixture("text.json")).await.status(), 200);

    eventually("the first attempt", || agent.requests().len() == 1).await;
    // Past any backoff (full jitter, ceiling 1 s after attempt 1).
    past_backoff(&d, "the second attempt", || agent.requests().len() == 2).await;
    past_backoff(&d, "the third attempt", || agent.requests().len() == 3).await;
    let app = d.daemon.app().clone();
    eventually_async("the event is settled", || async { app.store.push_len().await.unwrap() == 0 }).await;
    d.clock.advance_ms(600_000);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let reqs = agent.requests();
    assert_eq!(reqs.len(), 3, "two failures + one success, nothing after");
    let id = reqs[0].header("webhook-id").unwrap().to_string();
    for (n, r) in reqs.iter().enumerate() {
        assert_eq!(r.path, "/agent/events");
        assert_eq!(r.header("webhook-id"), Some(id.as_str()), "the same id on every retry");
        assert_eq!(r.body["id"], id.as_str());
        assert_eq!(r.body["text"], "Does it come in another color?");
        assert_eq!(r.body["account"], "wa-main");
        assert_eq!(r.body["deliveries"], n as u64 + 1);
        verify(r);
    }
    let mut forged = reqs[2].clone();
    forged.raw_body[2] ^= 1;
    let ok = std::panic::catch_unwind(|| verify(&forged)).is_ok();
    assert!(!ok, "a changed body does not verify");

    assert!(d.claim(10, 60_000).await["events"].as_array().unwrap().is_empty(), "pushed events are not pulled");
    d.stop().await;
}

#[tokio::test]
async fn a_conversations_events_arrive_in_order_and_filters_and_pull_and_push_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let agent = endpoint(200, "").await;
    agent.respond_next(500, "");
    let keys = push_keys(&agent, "deliver_events = [\"message\"]\npull_and_push = true\n");
    let d = start(dir.path(), &mock, &keys, "").await;
    d.signed_webhook(&wa_text("wamid.one", USER, "one")).await;
    d.signed_webhook(&wa_text("wamid.two", USER, "two")).await;
    d.signed_webhook(&fixture("status_delivered.json")).await; // not a message: pull only

    eventually("the first attempt failed", || agent.requests().len() == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(agent.requests().len(), 1, "`two` waits behind `one`");
    d.clock.advance_ms(600_000);
    eventually("both delivered", || agent.requests().len() == 3).await;
    let texts: Vec<_> = agent.requests().iter().map(|r| r.body["text"].clone()).collect();
    assert_eq!(texts, [json!("one"), json!("one"), json!("two")]);

    let claimed = d.claim(10, 60_000).await;
    let kinds: Vec<_> = claimed["events"].as_array().unwrap().iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(kinds, [json!("message"), json!("message"), json!("status")], "pull_and_push: all are pullable too");
    d.stop().await;
}

#[tokio::test]
async fn an_event_the_endpoint_keeps_refusing_is_dead_lettered_and_redrivable() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let agent = endpoint(500, "").await;
    let d = start(dir.path(), &mock, &push_keys(&agent, ""), "[accounts.wa-main.retry]\nmax_attempts = 2\n").await;
    d.signed_webhook(&fixture("text.json")).await;
    eventually("first attempt", || agent.requests().len() == 1).await;
    past_backoff(&d, "second attempt", || agent.requests().len() == 2).await;
    let mut dlq = serde_json::Value::Null;
    for _ in 0..500 {
        dlq = d.get("/v1/dlq").await.1;
        if dlq["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let item = &dlq["items"][0];
    assert_eq!(item["kind"], "push", "{dlq}");
    assert!(item["reason"].as_str().unwrap().contains("gave up after 2 attempts"), "{item}");

    agent.respond_next(200, "");
    let (s, v) = d.api("/v1/dlq/redrive", json!({"ids": [item["id"]]})).await;
    assert_eq!(s, 200, "{v}");
    // The redrive wakes the push worker: it sleeps up to 5 s (`idle::IDLE_CAP`) otherwise.
    let woken = eventually("the redriven event is delivered", || agent.requests().len() == 3);
    tokio::time::timeout(std::time::Duration::from_secs(4), woken).await.expect("the redrive woke the push worker");
    d.stop().await;
}

/// Moves the clock 10 minutes on (past any backoff) until `f` holds. Once more if need be: the
/// endpoint saw the attempt before the daemon recorded its outcome, so the retry may have been
/// scheduled from the already advanced clock.
async fn past_backoff(d: &switchboard_tests::TestDaemon, what: &str, f: impl Fn() -> bool) {
    for _ in 0..50 {
        d.clock.advance_ms(600_000);
        for _ in 0..40 {
            if f() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    panic!("timed out waiting for: {what}");
}
