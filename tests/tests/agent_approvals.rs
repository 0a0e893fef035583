//! Human approval through the channel: a tool that needs approval does not run on invoke; the
//! prompt goes out through the conversation's channel (the mock provider receives it); an
//! authorized sender's signed YES runs it exactly once; a stranger's YES is ignored; silence
//! until the timeout fails it; a restart keeps it pending.

mod agent_support;

use agent_support::*;
use serde_json::json;
use std::time::Duration;
use switchboard_tests::*;

const APPROVER: &str = "approvers = [\"+16505551234\"]";

/// `http-get` forced to need approval, allowed to reach `site`.
fn tools(site: &MockProvider) -> String {
    format!("[tools.http-get]\nrequires_approval = true\nallowed_hosts = [\"{}\"]\n", site.base_url())
}

fn fetch(site: &MockProvider) -> serde_json::Value {
    json!({ "args": { "url": format!("{}/stock", site.base_url()) }, "account": "wa-main", "conversation": USER })
}

/// The prompts the mock Graph API received (text messages asking for YES or NO).
fn prompts(mock: &MockProvider) -> Vec<serde_json::Value> {
    mock.requests()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b["text"]["body"].as_str().is_some_and(|t| t.contains("Reply YES or NO")))
        .collect()
}

#[tokio::test]
async fn a_yes_from_an_approver_runs_the_tool_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let site = endpoint(200, "{\"in_stock\":true}").await;
    let d = start(dir.path(), &mock, APPROVER, &tools(&site)).await;
    d.signed_webhook(&wa_text("wamid.first", USER, "hi")).await; // opens the 24 h window

    // The invoke long-polls while the human decides.
    let (http, base) = (d.http.clone(), d.base.clone());
    let mut body = fetch(&site);
    body["wait_ms"] = json!(20_000);
    let waiting = tokio::spawn(async move {
        let r = http.post(format!("{base}/v1/tools/http-get/invoke")).bearer_auth(API_TOKEN).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().await.unwrap())
    });
    eventually("the prompt reaches the provider", || prompts(&mock).len() == 1).await;
    let prompt = &prompts(&mock)[0];
    assert_eq!(prompt["to"], USER);
    assert!(prompt["text"]["body"].as_str().unwrap().contains("`http-get`"), "{prompt}");
    assert!(site.requests().is_empty(), "nothing runs before the YES");

    let r = d.signed_webhook(&wa_text("wamid.yes", USER, "  yes ")).await;
    assert_eq!(r.status(), 200);
    let (s, call) = waiting.await.unwrap();
    assert_eq!(s, 200, "{call}");
    assert_eq!(call["status"], "succeeded", "{call}");
    assert_eq!(call["result"]["text"], "{\"in_stock\":true}");
    assert_eq!(call["approval"]["resolved_by"], USER);
    assert!(call["approval"]["prompt_message_id"].as_str().unwrap().starts_with("msg_"));

    // The same YES redelivered, and another YES: nothing is pending, nothing runs again.
    d.signed_webhook(&wa_text("wamid.yes", USER, "  yes ")).await;
    d.signed_webhook(&wa_text("wamid.yes2", USER, "YES")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(site.requests().len(), 1, "the tool ran exactly once");

    // The reply is still an ordinary inbox event for the agent.
    let claimed = d.claim(10, 60_000).await;
    let texts: Vec<_> = claimed["events"].as_array().unwrap().iter().map(|e| e["text"].clone()).collect();
    assert!(texts.contains(&json!("  yes ")), "{texts:?}");
    d.stop().await;
}

#[tokio::test]
async fn a_yes_from_a_stranger_is_ignored_and_a_no_denies_every_pending_call() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let receiver = endpoint(204, "").await; // the generic channel's outbound endpoint
    let site = endpoint(200, "data").await;
    let tables = format!(
        "{}\n[accounts.hooks]\nplugin = \"webhook\"\napprovers = [\"alice\"]\nsecrets = {{ webhook_secret = \"{WHSEC}\" }}\nsettings = {{ url = \"{}/inbound\" }}\n",
        tools(&site),
        receiver.base_url()
    );
    let d = start(dir.path(), &mock, "", &tables).await;
    let call = |n: u32| json!({ "args": { "url": format!("{}/{n}", site.base_url()) }, "account": "hooks", "conversation": "ticket-7", "to": "alice" });
    let (s, first) = invoke(&d, "http-get", call(1)).await;
    assert_eq!((s, &first["status"]), (202, &json!("awaiting_approval")), "{first}");
    let (_, second) = invoke(&d, "http-get", call(2)).await;
    eventually("both prompts were delivered", || receiver.requests().len() == 2).await;
    let prompt = &receiver.requests()[0].body;
    assert_eq!(prompt["conversation"], "ticket-7");
    assert!(prompt["text"].as_str().unwrap().ends_with("Reply YES or NO."), "{prompt}");

    let (s, _) = sw_webhook(&d, "hooks", "evt-mallory", &json!({"from": "mallory", "conversation": "ticket-7", "text": "YES"})).await;
    assert_eq!(s, 200);
    let (_, still) = d.get(&format!("/v1/approvals/{}?wait_ms=200", first["id"].as_str().unwrap())).await;
    assert_eq!(still["status"], "awaiting_approval", "a stranger's YES changes nothing: {still}");

    let (s, _) = sw_webhook(&d, "hooks", "evt-alice", &json!({"from": "alice", "conversation": "ticket-7", "text": "No"})).await;
    assert_eq!(s, 200);
    for c in [&first, &second] {
        let (s, v) = d.get(&format!("/v1/approvals/{}?wait_ms=5000", c["id"].as_str().unwrap())).await;
        assert_eq!((s, &v["status"]), (200, &json!("denied")), "{v}");
        assert_eq!(v["approval"]["resolved_by"], "alice");
    }
    assert!(site.requests().is_empty(), "a denied call never runs");
    d.stop().await;
}

#[tokio::test]
async fn an_approval_nobody_answers_expires_on_the_daemons_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let site = endpoint(200, "data").await;
    let d = start(dir.path(), &mock, APPROVER, &tools(&site)).await;
    let (s, call) = invoke(&d, "http-get", fetch(&site)).await;
    assert_eq!(s, 202, "{call}");
    let id = call["id"].as_str().unwrap().to_string();
    assert_eq!(call["approval"]["expires_at_ms"], T0 + 600_000, "the default timeout is 10 minutes");

    d.clock.advance_ms(599_999);
    let (_, v) = d.get(&format!("/v1/approvals/{id}?wait_ms=250")).await;
    assert_eq!(v["status"], "awaiting_approval");
    d.clock.advance_ms(1);
    let (s, v) = d.get(&format!("/v1/approvals/{id}?wait_ms=5000")).await;
    assert_eq!((s, &v["status"]), (200, &json!("expired")), "{v}");
    assert_eq!(v["error"]["code"], "approval_expired");

    d.signed_webhook(&wa_text("wamid.late", USER, "yes")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(site.requests().is_empty(), "a late YES runs nothing");
    d.stop().await;
}

#[tokio::test]
async fn a_pending_approval_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let site = endpoint(200, "data").await;
    let d = start(dir.path(), &mock, APPROVER, &tools(&site)).await;
    let (_, call) = invoke(&d, "http-get", fetch(&site)).await;
    let id = call["id"].as_str().unwrap().to_string();
    eventually("the prompt reaches the provider", || prompts(&mock).len() == 1).await;
    let clock = d.clock.clone();
    d.stop().await;

    let d = TestDaemon::start_with(config(dir.path(), &mock, APPROVER, &tools(&site)), clock).await;
    let (s, v) = d.get(&format!("/v1/approvals/{id}")).await;
    assert_eq!((s, &v["status"]), (202, &json!("awaiting_approval")), "{v}");
    d.signed_webhook(&wa_text("wamid.after-restart", USER, "Yes")).await;
    let (_, v) = d.get(&format!("/v1/approvals/{id}?wait_ms=5000")).await;
    assert_eq!(v["status"], "succeeded", "{v}");
    assert_eq!(site.requests().len(), 1);
    assert_eq!(prompts(&mock).len(), 1, "the prompt is not sent again");
    d.stop().await;
}
