//! Shared by the `channels_*` end-to-end tests: a config for one account of a bundled plugin,
//! the real binary started on it, and small API helpers. Polling only, never fixed sleeps.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_tests::process::{Running, start};
use switchboard_tests::{API_TOKEN, plugins_dir};

/// Writes `switchboard.toml` with `account_toml` (an `[accounts.x]` table) and starts the daemon.
pub fn start_with_account(dir: &Path, account_toml: &str) -> (Running, PathBuf) {
    start_with_account_and_plugins(dir, account_toml, &plugins_dir())
}

/// [`start_with_account`] loading the plugins in `plugins` (a copy with a changed manifest).
pub fn start_with_account_and_plugins(dir: &Path, account_toml: &str, plugins: &Path) -> (Running, PathBuf) {
    let cfg = dir.join("switchboard.toml");
    let text = format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{data}"
plugins_dir = "{plugins}"
api_tokens = ["{API_TOKEN}"]

[delivery]
poll_interval_ms = 20

{account_toml}
"#,
        data = dir.join("data").display(),
        plugins = plugins.display(),
    );
    std::fs::write(&cfg, text).unwrap();
    (start(&cfg), cfg)
}

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(d: &Running) -> Self {
        Self { base: d.base.clone(), http: reqwest::Client::new() }
    }

    /// POSTs a webhook with these headers; returns (status, JSON body or the raw text as a string).
    pub async fn webhook(&self, account: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        let mut req = self.http.post(format!("{}/webhooks/{account}", self.base)).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.post(format!("{}{path}", self.base)).bearer_auth(API_TOKEN).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).bearer_auth(API_TOKEN).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Claims every ready event (a long lease, so a second claim sees only new ones).
    pub async fn claim(&self) -> Vec<Value> {
        let (s, v) = self.post("/v1/inbox/claim", json!({"max": 100, "lease_ms": 600_000, "consumer": "test"})).await;
        assert_eq!(s, 200, "{v}");
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// Sends a message; returns its id.
    pub async fn send(&self, body: Value) -> String {
        let (s, v) = self.post("/v1/messages", body).await;
        assert_eq!(s, 202, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Polls `GET /v1/messages/{id}` every 5 ms until `pred` holds (at most 15 s).
    pub async fn message_until(&self, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..3_000 {
            let (s, v) = self.get(&format!("/v1/messages/{id}")).await;
            assert_eq!(s, 200, "{v}");
            if pred(&v) {
                return v;
            }
            last = v;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("message {id} never reached the expected state; last seen: {last:#}");
    }

    /// The ids in `GET /v1/dlq`.
    pub async fn dlq_ids(&self) -> Vec<String> {
        let (s, v) = self.get("/v1/dlq").await;
        assert_eq!(s, 200, "{v}");
        v["items"].as_array().unwrap().iter().filter_map(|i| i["id"].as_str().map(str::to_string)).collect()
    }
}

/// Checks a rate-limited first attempt that was retried after exactly the provider's delay,
/// and that the provider saw the second request no sooner than that.
pub fn assert_retried_after_provider_delay(msg: &Value, delay_ms: u64, first: std::time::Instant, second: std::time::Instant) {
    let attempts = msg["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{msg:#}");
    assert_eq!(attempts[0]["outcome"], "rate_limited", "{msg:#}");
    let at = attempts[0]["at_ms"].as_u64().unwrap();
    let next = attempts[0]["next_attempt_at_ms"].as_u64().unwrap();
    assert_eq!(next - at, delay_ms, "the provider's delay wins over the backoff");
    assert_eq!(attempts[1]["outcome"], "delivered");
    let waited = second.duration_since(first);
    assert!(waited >= Duration::from_millis(delay_ms - 50), "retried after only {waited:?}");
}

/// No configured secret appears in the daemon's logs.
pub fn assert_no_secrets(logs: &[String], secrets: &[&str]) {
    let all = logs.join("\n");
    for s in secrets {
        assert!(!all.contains(s), "a secret leaked into the logs");
    }
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}
