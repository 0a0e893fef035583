//! Support for the end-to-end tests: a mock Graph API on loopback, Meta-style signing, and a
//! daemon started in-process on a temp dir with a manual clock and the real plugins.

pub mod mock;
pub mod pg;
pub mod process;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use switchboard::clock::ManualClock;
use switchboard::config::Config;
use switchboard::daemon::Daemon;

pub use mock::MockProvider;

pub const APP_SECRET: &str = "test-app-secret-8f3a";
pub const VERIFY_TOKEN: &str = "test-verify-token-1c9d";
pub const ACCESS_TOKEN: &str = "test-access-token-EAAG77";
pub const API_TOKEN: &str = "test-api-token-5b21";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// The user in the WhatsApp fixtures.
pub const USER: &str = "16505551234";
/// A start time for manual clocks: 2025-06-08, close to the fixtures' timestamps.
pub const T0: u64 = 1_749_416_400_000;

/// Where the test build script installed the real plugins (`NAME.wasm` + `NAME.toml`).
pub fn plugins_dir() -> PathBuf {
    PathBuf::from(env!("SWITCHBOARD_TEST_PLUGINS"))
}

/// Where the test build script installed the test-only guests (`hostile.wasm` + `hostile.toml`).
pub fn guests_dir() -> PathBuf {
    PathBuf::from(env!("SWITCHBOARD_TEST_GUESTS"))
}

/// Copies plugin `name` (`NAME.wasm` + `NAME.toml`) from `from` into `to`.
pub fn install_plugin(from: &Path, name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for ext in ["wasm", "toml"] {
        let f = format!("{name}.{ext}");
        std::fs::copy(from.join(&f), to.join(&f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A recorded WhatsApp webhook or Graph API response from the plugin's fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = repo_root().join("plugins/channels/whatsapp-cloud/fixtures").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// `X-Hub-Signature-256` as Meta computes it.
pub fn meta_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A config for one WhatsApp account whose Graph API is `graph_base`.
pub fn config_toml(dir: &Path, graph_base: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{data}"
plugins_dir = "{plugins}"
api_tokens = ["{API_TOKEN}"]

[accounts.wa-main]
plugin = "whatsapp-cloud"
secrets = {{ app_secret = "{APP_SECRET}", verify_token = "{VERIFY_TOKEN}", access_token = "{ACCESS_TOKEN}" }}
settings = {{ phone_number_id = "{PHONE_NUMBER_ID}", api_base = "{graph_base}", api_version = "v21.0" }}

[delivery]
poll_interval_ms = 5
"#,
        data = dir.join("data").display(),
        plugins = plugins_dir().display(),
    )
}

/// [`config_toml`] with the store in PostgreSQL (`store_toml` from [`pg::PgSchema`]).
pub fn config_toml_with_store(dir: &Path, graph_base: &str, store_toml: &str) -> String {
    config_toml(dir, graph_base).replacen("[accounts.wa-main]", &format!("{store_toml}\n[accounts.wa-main]"), 1)
}

/// A daemon running in this process on real loopback HTTP, a real redb file and real plugins,
/// driven by a manual clock.
pub struct TestDaemon {
    pub daemon: Daemon,
    pub clock: ManualClock,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestDaemon {
    pub async fn start(dir: &Path, graph_base: &str) -> Self {
        Self::start_at(dir, graph_base, ManualClock::new(T0)).await
    }

    pub async fn start_at(dir: &Path, graph_base: &str, clock: ManualClock) -> Self {
        let cfg = Config::parse(&config_toml(dir, graph_base), "test").expect("valid test config");
        Self::start_with(cfg, clock).await
    }

    pub async fn start_with(cfg: Config, clock: ManualClock) -> Self {
        let daemon = Daemon::start(cfg, Arc::new(clock.clone())).await.expect("daemon starts");
        let base = format!("http://{}", daemon.addr);
        Self { daemon, clock, base, http: reqwest::Client::new() }
    }

    pub async fn webhook(&self, account: &str, body: &[u8], signature: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(format!("{}/webhooks/{account}", self.base)).body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("x-hub-signature-256", s);
        }
        req.send().await.unwrap()
    }

    /// A webhook signed with the account's real app secret.
    pub async fn signed_webhook(&self, body: &[u8]) -> reqwest::Response {
        self.webhook("wa-main", body, Some(&meta_signature(APP_SECRET, body))).await
    }

    pub async fn api(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.api_with_key(path, body, None).await
    }

    pub async fn api_with_key(&self, path: &str, body: serde_json::Value, key: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).bearer_auth(API_TOKEN).json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).bearer_auth(API_TOKEN).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn claim(&self, max: usize, lease_ms: u64) -> serde_json::Value {
        let (s, v) = self.api("/v1/inbox/claim", serde_json::json!({ "max": max, "lease_ms": lease_ms, "consumer": "test" })).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Polls the message until `pred` holds (or panics after 10 s). Polling, not sleeping:
    /// each wait is 5 ms.
    pub async fn message_until(&self, id: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut last = serde_json::Value::Null;
        for _ in 0..2_000 {
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

    pub async fn stop(self) {
        self.daemon.shutdown().await;
    }
}

/// Waits until `f` returns true, polling every 5 ms, for at most 10 s.
/// [`eventually`] for conditions that read the store (its reads are async).
pub async fn eventually_async<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..2_000 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}
