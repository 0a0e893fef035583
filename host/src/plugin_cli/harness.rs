//! `switchboard plugin test`: the built plugin in a real daemon (in-process, temp dir, real
//! HTTP on loopback) on one account whose secrets and settings come from `plugin-test.toml`,
//! and a mock provider on 127.0.0.1.
//!
//! * Channels: every `fixtures/inbound/NAME.*` (except `*.expect.json`) is POSTed to
//!   `/webhooks/test`, signed with the plugin's `verify` preset ([`super::sign`]); the answer
//!   and the events the daemon stored are checked against `fixtures/inbound/NAME.expect.json`.
//!   A tampered signature must be refused with 401. Each `[[outbound]]` message goes through
//!   `POST /v1/messages`; the mock answers as scripted and the final status, the attempts'
//!   outcomes and the requests the plugin made are checked.
//! * Agent tools: each `[[invoke]]` goes through `POST /v1/tools/{name}/invoke` and the
//!   finished call is matched against `expect`.
//!
//! Expectations are partial: an object matches when every field it names matches ([`subset`]).

use super::mock::{Answer, Mock, Seen, UNSCRIPTED};
use super::sign;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::clock::SystemClock;
use switchboard::config::{Config, SecretRef};
use switchboard::daemon::Daemon;
use switchboard::model::HttpRequest;
use switchboard::runtime::manifest::Manifest;
use switchboard::verify::Scheme;

pub const TEST_FILE: &str = "plugin-test.toml";
/// The account the plugin runs under.
pub const ACCOUNT: &str = "test";
/// Replaced by the mock provider's base URL in settings and allowed hosts.
const MOCK: &str = "{mock}";
/// How long an outbound message or a tool call may take to finish.
const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// `plugin-test.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(default)]
    pub account: AccountSpec,
    #[serde(default)]
    pub tool: ToolSpec,
    /// Overrides of the test daemon's `[delivery]` table (defaults: fast polling and backoff,
    /// `max_attempts = 4`).
    #[serde(default)]
    pub delivery: toml::Table,
    #[serde(default)]
    pub outbound: Vec<OutboundCase>,
    #[serde(default)]
    pub invoke: Vec<InvokeCase>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// Literal values, `env:VAR` or `file:/path`, as in switchboard.toml.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// Twilio signs the URL it calls (default `https://switchboard.test/webhooks/test`).
    pub public_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    pub allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundCase {
    pub name: String,
    /// The body of `POST /v1/messages` (`to`, `text` | `media` | `template`, ...); `account`
    /// defaults to the test account.
    pub message: toml::Table,
    #[serde(default)]
    pub responses: Vec<Scripted>,
    pub requests: Option<Vec<ExpectedRequest>>,
    #[serde(default)]
    pub expect: OutboundExpect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeCase {
    pub name: String,
    pub args: Option<toml::Value>,
    pub account: Option<String>,
    pub conversation: Option<String>,
    #[serde(default)]
    pub responses: Vec<Scripted>,
    pub requests: Option<Vec<ExpectedRequest>>,
    /// Matched against the finished call (`status`, `result`, `error`).
    pub expect: toml::Value,
}

/// One answer of the mock provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scripted {
    #[serde(default = "ok_status")]
    pub status: u16,
    pub body: Option<String>,
    /// Relative to the plugin directory.
    pub body_file: Option<PathBuf>,
    /// A JSON body (sets `content-type: application/json`).
    pub json: Option<toml::Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn ok_status() -> u16 {
    200
}

/// What one request to the mock must look like (only the fields given are checked).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedRequest {
    pub method: Option<String>,
    /// The path; with a `?`, the path and query.
    pub path: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub json: Option<toml::Value>,
    pub body: Option<String>,
    pub body_contains: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundExpect {
    /// The status the message ends in: `sent` (default) or `failed`.
    pub status: Option<String>,
    pub provider_message_id: Option<String>,
    /// The failure's code, for `failed`.
    pub error_code: Option<String>,
    /// One per attempt: delivered, retry, rate_limited, permanent, error.
    pub outcomes: Option<Vec<String>>,
}

/// `fixtures/inbound/NAME.expect.json`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundExpect {
    /// Sent with the request, besides the signature (e.g. a provider's event-type header).
    #[serde(default)]
    pub request_headers: BTreeMap<String, String>,
    /// Default by the fixture's extension: `.json` → application/json, `.form` →
    /// application/x-www-form-urlencoded, else text/plain.
    pub content_type: Option<String>,
    /// Appended to `/webhooks/test`, e.g. `?source=x`.
    #[serde(default)]
    pub query: String,
    /// Default 200.
    pub status: Option<u16>,
    /// The daemon's answer: a JSON subset, or a string the body must equal.
    pub response: Option<Value>,
    /// Exactly as many events as stored, each a subset of the stored event.
    pub events: Option<Vec<Value>>,
}

/// Pass/fail lines as they happen, and the totals.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
}

impl Report {
    fn record(&mut self, what: &str, result: Result<String, String>) {
        match result {
            Ok(detail) => {
                self.passed += 1;
                println!("  ok    {what}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") });
            }
            Err(why) => {
                self.failed += 1;
                println!("  FAIL  {what}: {why}");
            }
        }
    }
}

/// A running test daemon and the client that talks to it.
struct Harness {
    base: String,
    token: String,
    http: reqwest::Client,
    mock: Mock,
    dir: PathBuf,
}

/// Runs every case of the plugin in `dir` whose component is `wasm`.
pub async fn run(dir: &Path, manifest: &Manifest, wasm: &Path) -> Result<Report, String> {
    let test_path = dir.join(TEST_FILE);
    let spec: TestFile = match std::fs::read_to_string(&test_path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {}", test_path.display(), e.message()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("  note  no {TEST_FILE}: the account gets no secrets or settings, and there are no outbound cases");
            TestFile::default()
        }
        Err(e) => return Err(format!("{}: {e}", test_path.display())),
    };
    let mut report = Report::default();

    // The plugin installed as an operator would: NAME.wasm + NAME.toml in plugins_dir.
    let tmp = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins).map_err(|e| e.to_string())?;
    let installed = plugins.join(format!("{}.wasm", manifest.name));
    std::fs::copy(wasm, &installed).map_err(|e| format!("copy {}: {e}", wasm.display()))?;
    std::fs::copy(dir.join("plugin.toml"), plugins.join(format!("{}.toml", manifest.name))).map_err(|e| e.to_string())?;

    let loads = match switchboard::runtime::inspect(&installed).await {
        Ok(i) => i.verdict.map(|d| super::describe_line(&d)),
        Err(e) => Err(e.to_string()),
    };
    let load_failed = loads.is_err();
    report.record("load: manifest, world and describe() as the daemon checks them", loads);
    if load_failed {
        return Ok(report);
    }

    let mock = Mock::start().await.map_err(|e| format!("mock provider: {e}"))?;
    let mock_url = mock.base_url();
    let token = format!("plugin-test-{}", std::process::id());

    // The channel's verification: the secret it names signs the fixtures.
    let tool = manifest.is_tool();
    let scheme = if tool { Scheme::None } else { Scheme::parse(&manifest.verify).ok_or_else(|| format!("unknown verify preset `{}`", manifest.verify))? };
    let mut secrets = spec.account.secrets.clone();
    let mut signing_secret = String::new();
    if !tool && let Some(name) = scheme.secret_name() {
        if scheme == Scheme::DiscordEd25519 {
            // We cannot sign with the author's key; the test account trusts ours instead.
            let key = ed25519_dalek::SigningKey::from_bytes(&sign::DISCORD_TEST_SEED);
            secrets.insert(name.to_string(), hex::encode(key.verifying_key().to_bytes()));
            signing_secret = hex::encode(sign::DISCORD_TEST_SEED);
        } else {
            let raw = secrets.get(name).ok_or_else(|| {
                format!("{TEST_FILE}: [account] secrets has no `{name}`, which verify = \"{}\" signs with", scheme.name())
            })?;
            let secret = SecretRef::parse(raw).map_err(|e| format!("{TEST_FILE}: secret `{name}`: {e}"))?;
            signing_secret = secret.resolve().map_err(|e| format!("{TEST_FILE}: secret `{name}`: {e}"))?.expose().to_string();
        }
    }
    let public_url = spec.account.public_url.clone().unwrap_or_else(|| format!("https://switchboard.test/webhooks/{ACCOUNT}"));

    let config = daemon_config(tmp.path(), manifest, &spec, &secrets, &public_url, &mock_url, &token, scheme)?;
    let config = Config::parse(&config, TEST_FILE).map_err(|e| format!("test daemon config: {e}"))?;
    let daemon = Daemon::start(config, Arc::new(SystemClock)).await.map_err(|e| format!("test daemon: {e}"))?;
    let h = Harness {
        base: format!("http://{}", daemon.addr),
        token,
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().map_err(|e| e.to_string())?,
        mock,
        dir: dir.to_path_buf(),
    };

    let ready = h.ready().await;
    let not_ready = ready.is_err();
    report.record(if tool { "daemon: starts with the tool loaded" } else { "daemon: the plugin's account `test` starts" }, ready);
    if !not_ready {
        if tool {
            for case in &spec.invoke {
                report.record(&format!("invoke \"{}\"", case.name), h.invoke(&manifest.name, case).await);
            }
            if spec.invoke.is_empty() {
                println!("  note  no [[invoke]] cases in {TEST_FILE}");
            }
        } else {
            let fixtures = inbound_fixtures(dir)?;
            for f in &fixtures {
                let label = format!("inbound {}", f.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
                report.record(&label, h.inbound(f, scheme, &signing_secret, &public_url).await);
            }
            if let (Some(first), true) = (fixtures.first(), scheme != Scheme::None) {
                report.record("inbound: a forged signature is refused", h.forged(first, scheme, &signing_secret, &public_url).await);
            }
            if fixtures.is_empty() {
                println!("  note  no fixtures in fixtures/inbound/");
            }
            for orphan in orphan_expectations(dir, &fixtures) {
                report.record(&format!("inbound {orphan}"), Err("no fixture with this name beside it: nothing was checked".into()));
            }
            for case in &spec.outbound {
                report.record(&format!("outbound \"{}\"", case.name), h.outbound(case).await);
            }
        }
    }
    daemon.shutdown().await;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn daemon_config(
    tmp: &Path,
    manifest: &Manifest,
    spec: &TestFile,
    secrets: &BTreeMap<String, String>,
    public_url: &str,
    mock_url: &str,
    token: &str,
    scheme: Scheme,
) -> Result<String, String> {
    use toml::Value as T;
    let strings = |m: &BTreeMap<String, String>| -> toml::Table {
        m.iter().map(|(k, v)| (k.clone(), T::String(v.replace(MOCK, mock_url)))).collect()
    };
    let mut root = toml::Table::new();
    root.insert("listen".into(), T::String("127.0.0.1:0".into()));
    root.insert("data_dir".into(), T::String(tmp.join("data").display().to_string()));
    root.insert("plugins_dir".into(), T::String(tmp.join("plugins").display().to_string()));
    root.insert("api_tokens".into(), T::Array(vec![T::String(token.into())]));
    let mut delivery = toml::Table::new();
    for (k, v) in [("poll_interval_ms", 5), ("backoff_base_ms", 20), ("backoff_cap_ms", 200), ("max_attempts", 4)] {
        delivery.insert(k.into(), T::Integer(v));
    }
    delivery.extend(spec.delivery.clone());
    root.insert("delivery".into(), T::Table(delivery));
    if manifest.is_tool() {
        let mut t = toml::Table::new();
        t.insert("settings".into(), T::Table(strings(&spec.tool.settings)));
        if let Some(hosts) = &spec.tool.allowed_hosts {
            t.insert("allowed_hosts".into(), T::Array(hosts.iter().map(|h| T::String(h.replace(MOCK, mock_url))).collect()));
        }
        root.insert("tools".into(), T::Table(toml::Table::from_iter([(manifest.name.clone(), T::Table(t))])));
    } else {
        let mut a = toml::Table::new();
        a.insert("plugin".into(), T::String(manifest.name.clone()));
        // Secrets pass through as written (env:/file: resolve in the daemon as in production).
        a.insert("secrets".into(), T::Table(secrets.iter().map(|(k, v)| (k.clone(), T::String(v.clone()))).collect()));
        a.insert("settings".into(), T::Table(strings(&spec.account.settings)));
        a.insert("public_url".into(), T::String(public_url.into()));
        if scheme == Scheme::None {
            a.insert("insecure".into(), T::Boolean(true));
        }
        root.insert("accounts".into(), T::Table(toml::Table::from_iter([(ACCOUNT.to_string(), T::Table(a))])));
    }
    toml::to_string(&root).map_err(|e| e.to_string())
}

/// `fixtures/inbound/*` request bodies, by name.
fn inbound_fixtures(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let inbound = dir.join("fixtures/inbound");
    let entries = match std::fs::read_dir(&inbound) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", inbound.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            !name.starts_with('.') && !name.ends_with(".expect.json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `NAME.expect.json` files with no `NAME.*` fixture (a typo would silently skip a check).
fn orphan_expectations(dir: &Path, fixtures: &[PathBuf]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("fixtures/inbound")) else { return Vec::new() };
    let mut orphans: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".expect.json"))
        .filter(|p| !fixtures.iter().any(|f| expect_path(f) == *p))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    orphans.sort();
    orphans
}

fn expect_path(fixture: &Path) -> PathBuf {
    let stem = fixture.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    fixture.with_file_name(format!("{stem}.expect.json"))
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn ready(&self) -> Result<String, String> {
        let resp = self.http.get(self.url("/readyz")).send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body: Value = serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        if status == 200 {
            Ok(String::new())
        } else {
            let reasons: Vec<String> =
                body["not_ready"].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap_or("").to_string()).collect()).unwrap_or_default();
            Err(if reasons.is_empty() { format!("/readyz answered {status}: {body}") } else { reasons.join("; ") })
        }
    }

    fn signed(&self, fixture: &Path, expect: &InboundExpect, scheme: Scheme, secret: &str, public_url: &str) -> Result<HttpRequest, String> {
        let body = std::fs::read(fixture).map_err(|e| format!("{}: {e}", fixture.display()))?;
        let content_type = expect.content_type.clone().unwrap_or_else(|| {
            match fixture.extension().and_then(|e| e.to_str()) {
                Some("json") => "application/json",
                Some("form") => "application/x-www-form-urlencoded",
                _ => "text/plain",
            }
            .to_string()
        });
        let mut req = HttpRequest {
            method: "POST".into(),
            url: format!("/webhooks/{ACCOUNT}{}", expect.query),
            headers: vec![("content-type".into(), content_type)],
            body,
            timeout_ms: None,
        };
        for (k, v) in &expect.request_headers {
            req.headers.push((k.to_ascii_lowercase(), v.clone()));
        }
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        sign::sign(scheme, secret, Some(public_url), now_ms, &mut req)?;
        Ok(req)
    }

    async fn post_webhook(&self, req: HttpRequest) -> Result<(u16, String), String> {
        let mut r = self.http.post(self.url(&req.url)).body(req.body);
        for (k, v) in &req.headers {
            r = r.header(k.as_str(), v.as_str());
        }
        let resp = r.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    /// Claims (and acks) whatever the test account's inbox holds.
    async fn drain_inbox(&self) -> Result<Vec<Value>, String> {
        let claim = json!({"max": 100, "lease_ms": 60_000, "consumer": "plugin-test", "account": ACCOUNT});
        let (status, body) = self.api(reqwest::Method::POST, "/v1/inbox/claim", Some(claim)).await?;
        if status != 200 {
            return Err(format!("/v1/inbox/claim answered {status}: {body}"));
        }
        let events = body["events"].as_array().cloned().unwrap_or_default();
        if !events.is_empty() {
            let ids: Vec<Value> = events.iter().map(|e| e["id"].clone()).collect();
            let ack = json!({"ids": ids, "lease": body["lease"]});
            self.api(reqwest::Method::POST, "/v1/inbox/ack", Some(ack)).await?;
        }
        Ok(events)
    }

    async fn inbound(&self, fixture: &Path, scheme: Scheme, secret: &str, public_url: &str) -> Result<String, String> {
        let expect_file = expect_path(fixture);
        let expect: InboundExpect = match std::fs::read(&expect_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", expect_file.display()))?,
            Err(_) => InboundExpect::default(),
        };
        let req = self.signed(fixture, &expect, scheme, secret, public_url)?;
        let (status, text) = self.post_webhook(req).await?;
        let events = self.drain_inbox().await?;
        let mut problems = Vec::new();
        let want = expect.status.unwrap_or(200);
        if status != want {
            problems.push(format!("answered {status} (expected {want}): {}", short(&text)));
        }
        match &expect.response {
            None => {}
            Some(Value::String(s)) if *s != text => problems.push(format!("answer body {:?}, expected {s:?}", short(&text))),
            Some(Value::String(_)) => {}
            Some(want) => {
                let got: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
                if let Err(e) = subset(want, &got, "response") {
                    problems.push(e);
                }
            }
        }
        if let Some(want) = &expect.events
            && let Err(e) = subset(&Value::Array(want.clone()), &Value::Array(events.clone()), "events")
        {
            problems.push(e);
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
        let checked = if expect.events.is_some() { "" } else { " (no .expect.json events: not checked)" };
        Ok(format!("{status}, {} event(s) [{}]{checked}", events.len(), kinds.join(", ")))
    }

    async fn forged(&self, fixture: &Path, scheme: Scheme, secret: &str, public_url: &str) -> Result<String, String> {
        let expect: InboundExpect = std::fs::read(expect_path(fixture)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let req = self.signed(fixture, &expect, scheme, &sign::wrong_secret(scheme, secret), public_url)?;
        let (status, text) = self.post_webhook(req).await?;
        let events = self.drain_inbox().await?;
        if status != 401 {
            return Err(format!("answered {status} (expected 401): {}", short(&text)));
        }
        if !events.is_empty() {
            return Err(format!("{} event(s) stored from a forged request", events.len()));
        }
        Ok("401, nothing stored".into())
    }

    fn script(&self, responses: &[Scripted]) -> Result<(), String> {
        let mut answers = Vec::new();
        for r in responses {
            let mut headers: Vec<(String, String)> = r.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
            let body = match (&r.body, &r.body_file, &r.json) {
                (Some(b), None, None) => b.clone().into_bytes(),
                (None, Some(f), None) => std::fs::read(self.dir.join(f)).map_err(|e| format!("body_file {}: {e}", f.display()))?,
                (None, None, Some(j)) => {
                    if !headers.iter().any(|(k, _)| k == "content-type") {
                        headers.push(("content-type".into(), "application/json".into()));
                    }
                    serde_json::to_vec(j).map_err(|e| e.to_string())?
                }
                (None, None, None) => Vec::new(),
                _ => return Err("a response takes one of body, body_file or json".into()),
            };
            answers.push(Answer { status: r.status, headers, body });
        }
        self.mock.reset(answers);
        Ok(())
    }

    /// Checks the requests the mock saw; scripted `n` answers.
    fn check_requests(&self, scripted: usize, expected: Option<&[ExpectedRequest]>, problems: &mut Vec<String>) -> usize {
        let seen = self.mock.seen();
        if seen.len() > scripted {
            problems.push(format!(
                "the plugin made {} request(s) but {scripted} answer(s) were scripted (the rest got 500 \"{UNSCRIPTED}\")",
                seen.len()
            ));
        }
        if let Some(expected) = expected {
            if expected.len() != seen.len() {
                problems.push(format!("expected {} request(s), the plugin made {}", expected.len(), seen.len()));
            }
            for (i, (want, got)) in expected.iter().zip(&seen).enumerate() {
                if let Err(e) = request_matches(want, got) {
                    problems.push(format!("request {i}: {e}"));
                }
            }
        }
        seen.len()
    }

    async fn outbound(&self, case: &OutboundCase) -> Result<String, String> {
        self.script(&case.responses)?;
        let mut message = serde_json::to_value(&case.message).map_err(|e| e.to_string())?;
        if message.get("account").is_none() {
            message["account"] = json!(ACCOUNT);
        }
        let (status, created) = self.api(reqwest::Method::POST, "/v1/messages", Some(message)).await?;
        if status != 202 {
            return Err(format!("POST /v1/messages answered {status}: {created}"));
        }
        let id = created["id"].as_str().ok_or("POST /v1/messages gave no id")?.to_string();
        let started = Instant::now();
        let row = loop {
            let (_, row) = self.api(reqwest::Method::GET, &format!("/v1/messages/{id}"), None).await?;
            let status = row["status"].as_str().unwrap_or("");
            if matches!(status, "sent" | "delivered" | "read" | "failed") {
                break row;
            }
            if started.elapsed() > CASE_TIMEOUT {
                return Err(format!("still `{status}` after {CASE_TIMEOUT:?}: {row}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut problems = Vec::new();
        let status = row["status"].as_str().unwrap_or("");
        let want = case.expect.status.as_deref().unwrap_or("sent");
        let outcomes: Vec<String> = row["attempts"]
            .as_array()
            .map(|a| a.iter().map(|x| x["outcome"].as_str().unwrap_or("?").to_string()).collect())
            .unwrap_or_default();
        let error = &row["error"];
        if status != want {
            let why = error["code"].as_str().map(|c| format!(" ({c}: {})", error["reason"].as_str().unwrap_or(""))).unwrap_or_default();
            problems.push(format!("ended `{status}`{why}, expected `{want}`"));
        }
        if let Some(want) = &case.expect.provider_message_id
            && row["provider_message_id"].as_str() != Some(want)
        {
            problems.push(format!("provider_message_id {}, expected {want:?}", row["provider_message_id"]));
        }
        if let Some(want) = &case.expect.error_code
            && error["code"].as_str() != Some(want)
        {
            problems.push(format!("error code {}, expected {want:?}", error["code"]));
        }
        if let Some(want) = &case.expect.outcomes
            && *want != outcomes
        {
            problems.push(format!("attempt outcomes {outcomes:?}, expected {want:?}"));
        }
        let requests = self.check_requests(case.responses.len(), case.requests.as_deref(), &mut problems);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        // Each attempt as the author wants to see it: a retry or failure with its code.
        let shown: Vec<String> = row["attempts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        let outcome = x["outcome"].as_str().unwrap_or("?");
                        x["code"].as_str().map_or_else(|| outcome.to_string(), |c| format!("{outcome} {c}"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(format!("{status} after {} attempt(s) [{}], {requests} provider request(s)", shown.len(), shown.join(", ")))
    }

    async fn invoke(&self, tool: &str, case: &InvokeCase) -> Result<String, String> {
        self.script(&case.responses)?;
        let mut body = json!({
            "args": case.args.as_ref().map(serde_json::to_value).transpose().map_err(|e| e.to_string())?.unwrap_or(json!({})),
            "wait_ms": CASE_TIMEOUT.as_millis() as u64,
        });
        if let Some(a) = &case.account {
            body["account"] = json!(a);
        }
        if let Some(c) = &case.conversation {
            body["conversation"] = json!(c);
        }
        let (status, call) = self.api(reqwest::Method::POST, &format!("/v1/tools/{tool}/invoke"), Some(body)).await?;
        if status != 200 {
            let why = if status == 202 { " (not finished: awaiting approval? plugin test does not approve calls)".to_string() } else { String::new() };
            return Err(format!("invoke answered {status}{why}: {}", short(&call.to_string())));
        }
        let mut problems = Vec::new();
        let want = serde_json::to_value(&case.expect).map_err(|e| e.to_string())?;
        if let Err(e) = subset(&want, &call, "call") {
            problems.push(e);
        }
        self.check_requests(case.responses.len(), case.requests.as_deref(), &mut problems);
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(format!("{} {}", call["status"].as_str().unwrap_or("?"), short(&call.get("result").or(call.get("error")).unwrap_or(&Value::Null).to_string())))
    }
}

fn request_matches(want: &ExpectedRequest, got: &Seen) -> Result<(), String> {
    if let Some(m) = &want.method
        && !m.eq_ignore_ascii_case(&got.method)
    {
        return Err(format!("method {}, expected {m}", got.method));
    }
    if let Some(p) = &want.path {
        let actual = if p.contains('?') { got.uri.as_str() } else { got.path() };
        if actual != p {
            return Err(format!("path {actual}, expected {p}"));
        }
    }
    for (k, v) in &want.headers {
        match got.header(k) {
            Some(h) if h == v => {}
            Some(h) => return Err(format!("header {k}: {h:?}, expected {v:?}")),
            None => return Err(format!("no header {k}")),
        }
    }
    let text = String::from_utf8_lossy(&got.body);
    if let Some(b) = &want.body
        && *b != text
    {
        return Err(format!("body {:?}, expected {b:?}", short(&text)));
    }
    if let Some(b) = &want.body_contains
        && !text.contains(b.as_str())
    {
        return Err(format!("body {:?} does not contain {b:?}", short(&text)));
    }
    if let Some(j) = &want.json {
        let want = serde_json::to_value(j).map_err(|e| e.to_string())?;
        let got: Value = serde_json::from_slice(&got.body).map_err(|_| format!("body is not JSON: {:?}", short(&text)))?;
        subset(&want, &got, "json")?;
    }
    Ok(())
}

/// Whether `expected` is contained in `actual`: objects by the keys `expected` names (`null`
/// also matches an absent key), arrays element by element with equal lengths, numbers by
/// value, everything else by equality. The error names the first difference by its path.
pub fn subset(expected: &Value, actual: &Value, at: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                subset(ev, a.get(k).unwrap_or(&Value::Null), &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!("{at}: expected {} item(s), got {}: {}", e.len(), a.len(), short(&actual.to_string())));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset(ev, av, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => Ok(()),
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{at}: expected {e}, got {}", short(&a.to_string()))),
    }
}

fn short(s: &str) -> String {
    const MAX: usize = 300;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_matches_named_fields_recursively() {
        let actual = json!({"kind": "message", "text": "hi", "payload": {"type": "text", "n": 1}, "list": [1, 2]});
        assert!(subset(&json!({"kind": "message"}), &actual, "e").is_ok());
        assert!(subset(&json!({"payload": {"n": 1.0}}), &actual, "e").is_ok());
        assert!(subset(&json!({"sender": null}), &actual, "e").is_ok(), "null matches an absent key");
        let err = subset(&json!({"payload": {"type": "image"}}), &actual, "e").unwrap_err();
        assert!(err.starts_with("e.payload.type: expected \"image\""), "{err}");
        assert!(subset(&json!({"list": [1]}), &actual, "e").unwrap_err().contains("expected 1 item(s), got 2"));
        assert!(subset(&json!({"text": "hi!"}), &actual, "e").is_err());
    }

    #[test]
    fn the_template_test_file_parses() {
        let spec: TestFile = toml::from_str(include_str!("../../templates/channel/plugin-test.toml")).unwrap();
        assert_eq!(spec.outbound.len(), 3);
        assert!(spec.account.secrets.contains_key("webhook_secret"));
        let spec: TestFile = toml::from_str(&include_str!("../../templates/tool/plugin-test.toml").replace("{{name}}", "t")).unwrap();
        assert_eq!(spec.invoke.len(), 2);
        for f in ["message", "status_delivered", "unknown_type"] {
            let text = match f {
                "message" => include_str!("../../templates/channel/fixtures/inbound/message.expect.json"),
                "status_delivered" => include_str!("../../templates/channel/fixtures/inbound/status_delivered.expect.json"),
                _ => include_str!("../../templates/channel/fixtures/inbound/unknown_type.expect.json"),
            };
            let _: InboundExpect = serde_json::from_str(text).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
}
