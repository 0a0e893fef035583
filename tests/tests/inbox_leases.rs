//! The agent's pull inbox: claim, ack, nack, and leases that expire on the (manual) clock.

use switchboard_tests::*;

#[tokio::test]
async fn claim_then_ack_removes_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    d.signed_webhook(&fixture("text.json")).await;
    let claim = d.claim(10, 30_000).await;
    let id = claim["events"][0]["id"].as_str().unwrap().to_string();
    let lease = claim["lease"].as_str().unwrap().to_string();

    let (s, v) = d.api("/v1/inbox/ack", serde_json::json!({ "ids": [id], "lease": lease })).await;
    assert_eq!(s, 200);
    assert_eq!(v["acked"].as_array().unwrap().len(), 1);
    assert_eq!(d.daemon.app().store.inbox_len().await.unwrap(), 0);
    d.clock.advance_ms(3_600_000);
    assert_eq!(d.claim(10, 30_000).await["events"].as_array().unwrap().len(), 0);
    d.stop().await;
}

#[tokio::test]
async fn an_expired_lease_makes_the_event_claimable_again_and_fences_the_old_holder() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    d.signed_webhook(&fixture("text.json")).await;

    let first = d.claim(10, 30_000).await;
    let id = first["events"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(d.claim(10, 30_000).await["events"].as_array().unwrap().len(), 0, "leased events are hidden");

    d.clock.advance_ms(29_999);
    assert_eq!(d.claim(10, 30_000).await["events"].as_array().unwrap().len(), 0, "lease not yet expired");
    d.clock.advance_ms(1);
    let second = d.claim(10, 30_000).await;
    assert_eq!(second["events"][0]["id"], id.as_str());
    assert_eq!(second["events"][0]["deliveries"], 2);

    let (_, stale) = d.api("/v1/inbox/ack", serde_json::json!({ "ids": [id], "lease": first["lease"] })).await;
    assert_eq!(stale["rejected"].as_array().unwrap().len(), 1, "the expired holder's ack is refused");
    let (_, fresh) = d.api("/v1/inbox/ack", serde_json::json!({ "ids": [id], "lease": second["lease"] })).await;
    assert_eq!(fresh["acked"].as_array().unwrap().len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn nack_returns_the_event_after_its_delay() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    d.signed_webhook(&fixture("text.json")).await;
    let c = d.claim(10, 30_000).await;
    let id = c["events"][0]["id"].clone();
    let (s, v) = d.api("/v1/inbox/nack", serde_json::json!({ "ids": [id], "lease": c["lease"], "delay_ms": 5_000 })).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(d.claim(10, 30_000).await["events"].as_array().unwrap().len(), 0);
    d.clock.advance_ms(5_000);
    assert_eq!(d.claim(10, 30_000).await["events"][0]["id"], id);
    d.stop().await;
}

#[tokio::test]
async fn the_api_refuses_requests_without_the_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = TestDaemon::start(dir.path(), &mock.base_url()).await;
    let r = d.http.post(format!("{}/v1/inbox/claim", d.base)).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = d.http.post(format!("{}/v1/inbox/claim", d.base)).bearer_auth("wrong").json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    d.stop().await;
}
