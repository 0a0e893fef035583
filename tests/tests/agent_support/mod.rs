//! Shared by the `agent_*` tests: the standard WhatsApp test daemon with agent-side config,
//! WhatsApp and Standard Webhooks inbound bodies, and small API helpers.

#![allow(dead_code)]

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard_tests::*;

/// Standard Webhooks secret of the tests (the spec's example key).
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The standard config (account `wa-main` on `mock`) with `account_keys` added to
/// `[accounts.wa-main]` and `tables` appended.
pub fn config(dir: &std::path::Path, mock: &MockProvider, account_keys: &str, tables: &str) -> Config {
    let text = config_toml(dir, &mock.base_url()).replace("\n[delivery]", &format!("{account_keys}\n\n[delivery]"));
    Config::parse(&format!("{text}\n{tables}"), "test").unwrap_or_else(|e| panic!("{e}"))
}

pub async fn start(dir: &std::path::Path, mock: &MockProvider, account_keys: &str, tables: &str) -> TestDaemon {
    TestDaemon::start_with(config(dir, mock, account_keys, tables), ManualClock::new(T0)).await
}

/// A WhatsApp text webhook (the fixture) with its own message id, sender and text.
pub fn wa_text(id: &str, from: &str, text: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture("text.json")).unwrap();
    let value = &mut v["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["wa_id"] = json!(from);
    let m = &mut value["messages"][0];
    m["id"] = json!(id);
    m["from"] = json!(from);
    m["text"]["body"] = json!(text);
    serde_json::to_vec(&v).unwrap()
}

pub fn whsec_key() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(WHSEC.trim_start_matches("whsec_")).unwrap()
}

/// `webhook-signature` as any Standard Webhooks library computes it.
pub fn sw_signature(id: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&whsec_key()).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// POSTs a Standard Webhooks delivery to the generic `webhook` channel account `account`,
/// signed at the daemon's (manual) clock.
pub async fn sw_webhook(d: &TestDaemon, account: &str, id: &str, body: &Value) -> (u16, Value) {
    let raw = serde_json::to_vec(body).unwrap();
    let ts = d.clock_now_secs();
    let resp = d
        .http
        .post(format!("{}/webhooks/{account}", d.base))
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sw_signature(id, ts, &raw))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub trait ClockSecs {
    fn clock_now_secs(&self) -> u64;
}

impl ClockSecs for TestDaemon {
    fn clock_now_secs(&self) -> u64 {
        use switchboard::clock::Clock;
        self.clock.now_ms() / 1000
    }
}

/// `POST /v1/tools/{name}/invoke` with `body`; returns the status and the answer.
pub async fn invoke(d: &TestDaemon, tool: &str, body: Value) -> (u16, Value) {
    d.api(&format!("/v1/tools/{tool}/invoke"), body).await
}

/// A plain local HTTP endpoint (the "agent" or a site a tool fetches): a mock provider
/// answering `status` with `body` to anything unscripted.
pub async fn endpoint(status: u16, body: &'static str) -> MockProvider {
    let m = MockProvider::start().await;
    m.set_default(move |_, _| (status, body.to_string()));
    m
}
