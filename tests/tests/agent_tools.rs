//! Agent tools with the real `http-get` and `kv-note` plugins: listed with their schemas,
//! arguments validated before anything runs (400, 413), run in the sandbox, every call
//! recorded with its correlation id.

mod agent_support;

use agent_support::*;
use serde_json::json;
use switchboard_tests::*;

fn tools_table(site: &MockProvider) -> String {
    format!("[tools.http-get]\nallowed_hosts = [\"{}\"]\n", site.base_url())
}

#[tokio::test]
async fn tools_are_listed_with_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = start(dir.path(), &mock, "", "[tools.kv-note]\nrequires_approval = true\n").await;
    let (s, v) = d.get("/v1/tools").await;
    assert_eq!(s, 200, "{v}");
    let tools = v["tools"].as_array().unwrap();
    let names: Vec<_> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["http-get", "kv-note"]);
    assert_eq!(tools[0]["schema"]["required"], json!(["url"]));
    assert_eq!(tools[0]["requires_approval"], false);
    assert!(tools[0]["description"].as_str().unwrap().contains("allowlisted"));
    assert_eq!(tools[1]["requires_approval"], true, "forced by [tools.kv-note]");
    assert_eq!(tools[1]["schema"]["properties"]["action"]["enum"], json!(["remember", "recall", "forget"]));
    d.stop().await;
}

#[tokio::test]
async fn arguments_are_validated_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let site = endpoint(200, "hello").await;
    let d = start(dir.path(), &mock, "", &tools_table(&site)).await;

    let (s, v) = invoke(&d, "http-get", json!({"args": {"url": 5, "extra": true}})).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_args");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("/url: expected string, found integer") && msg.contains("unknown property `extra`"), "{msg}");

    let (s, v) = invoke(&d, "http-get", json!({"args": {}})).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("missing required property `url`"), "{v}");

    let big = "x".repeat(11 * 1024);
    let (s, v) = invoke(&d, "kv-note", json!({"args": {"action": "remember", "key": "k", "text": big}, "conversation": "c"})).await;
    assert_eq!(s, 413, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("10240"), "{v}");

    let (s, v) = invoke(&d, "no-such-tool", json!({"args": {}})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("unknown_tool")));
    assert!(site.requests().is_empty(), "nothing ran");
    d.stop().await;
}

#[tokio::test]
async fn http_get_fetches_only_allowlisted_urls_and_every_call_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let site = endpoint(200, "{\"greeting\":\"hello from the site\"}").await;
    let elsewhere = endpoint(200, "secret").await;
    let d = start(dir.path(), &mock, "", &tools_table(&site)).await;

    let resp = d
        .http
        .post(format!("{}/v1/tools/http-get/invoke", d.base))
        .bearer_auth(API_TOKEN)
        .header("x-correlation-id", "agent-run-42")
        .json(&json!({"args": {"url": format!("{}/page", site.base_url()), "max_bytes": 10}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-correlation-id"], "agent-run-42");
    let call: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(call["status"], "succeeded", "{call}");
    assert_eq!(call["result"]["status"], 200);
    assert_eq!(call["result"]["text"], "{\"greeting");
    assert_eq!(call["result"]["truncated"], true);
    assert_eq!(site.requests()[0].path, "/page");

    let (s, recorded) = d.get(&format!("/v1/approvals/{}", call["id"].as_str().unwrap())).await;
    assert_eq!(s, 200);
    assert_eq!(recorded["correlation_id"], "agent-run-42");
    assert_eq!(recorded["tool"], "http-get");
    assert_eq!(recorded["args"]["max_bytes"], 10);

    let (s, denied) = invoke(&d, "http-get", json!({"args": {"url": format!("{}/x", elsewhere.base_url())}})).await;
    assert_eq!(s, 200, "{denied}");
    assert_eq!(denied["status"], "failed");
    assert_eq!(denied["error"]["code"], "tool_failed");
    assert!(denied["error"]["message"].as_str().unwrap().contains("not allowlisted"), "{denied}");
    assert!(elsewhere.requests().is_empty(), "the host refused before any request");
    d.stop().await;
}

#[tokio::test]
async fn kv_note_remembers_per_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockProvider::start().await;
    let d = start(dir.path(), &mock, "", "").await;
    let remember = json!({"args": {"action": "remember", "key": "size", "text": "M"}, "account": "wa-main", "conversation": "c1"});
    let (s, v) = invoke(&d, "kv-note", remember).await;
    assert_eq!((s, &v["status"]), (200, &json!("succeeded")), "{v}");
    let (_, v) = invoke(&d, "kv-note", json!({"args": {"action": "recall", "key": "size"}, "account": "wa-main", "conversation": "c1"})).await;
    assert_eq!(v["result"]["text"], "M");
    let (_, v) = invoke(&d, "kv-note", json!({"args": {"action": "recall", "key": "size"}, "account": "wa-main", "conversation": "c2"})).await;
    assert_eq!(v["result"]["text"], serde_json::Value::Null, "another conversation's notes are not visible");
    let (_, v) = invoke(&d, "kv-note", json!({"args": {"action": "recall"}})).await;
    assert_eq!(v["status"], "failed");
    assert_eq!(v["error"]["code"], "invalid_args", "{v}");
    d.stop().await;
}
