//! `switchboard.toml`: parsed raw (TOML values), then validated into [`Config`] with **every**
//! error collected, each with its field path and a hint, so an operator fixes a config in one go.

mod agent;
mod secret;
mod store;
mod walk;

pub use agent::{AccountAgent, ApprovalsConfig, PushConfig, ToolConfig};
pub use secret::{SecretError, SecretRef};
pub use store::StoreConfig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use walk::Walker;

/// One validation problem, located by its dotted field path (`accounts.wa-main.plugin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{} error(s) in config:\n{}", .0.len(), .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

/// Retry policy; the daemon-wide one can be overridden per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, backoff_base_ms: 1_000, backoff_cap_ms: 600_000 }
    }
}

/// Outbound rate limits (GCRA via governor); the daemon-wide ones can be overridden per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub account_per_sec: u32,
    pub recipient_per_sec: u32,
    pub recipient_burst: u32,
    pub conversation_per_sec: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { account_per_sec: 100, recipient_per_sec: 10, recipient_burst: 10, conversation_per_sec: 20 }
    }
}

/// Per-account circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Open when at least this share of calls in the window failed…
    pub failure_rate: f64,
    pub window_ms: u64,
    /// …and the window has at least this many calls.
    pub min_calls: u32,
    /// How long it stays open before letting one probe through (half-open).
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_rate: 0.5, window_ms: 60_000, min_calls: 10, cooldown_ms: 30_000 }
    }
}

/// Limits and timings of the outbound delivery workers.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Concurrent worker loops, each claiming its own messages.
    pub workers: usize,
    /// Messages one worker claims and delivers concurrently.
    pub batch: usize,
    pub lease_ms: u64,
    pub retry: RetryPolicy,
    /// How often an idle worker looks for due messages on a store other daemons share
    /// (PostgreSQL). On redb, which only this daemon writes, idle workers sleep until the
    /// next message is due instead (`crate::idle`); new messages wake them at once either way.
    pub poll_interval_ms: u64,
    /// Deliver a conversation's messages one at a time, in order.
    pub ordered: bool,
    /// Unfinished messages one account may have before `POST /v1/messages` answers 429.
    pub max_queued: u64,
    pub idempotency_ttl_ms: u64,
    pub rate_limits: RateLimits,
    pub breaker: BreakerConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            batch: 8,
            lease_ms: 30_000,
            retry: RetryPolicy::default(),
            poll_interval_ms: 50,
            ordered: true,
            max_queued: 10_000,
            idempotency_ttl_ms: 24 * 3_600_000,
            rate_limits: RateLimits::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxConfig {
    pub default_lease_ms: u64,
    pub max_lease_ms: u64,
    pub max_claim: usize,
    /// Hand-outs without an ack before an event goes to the dead-letter queue.
    pub max_deliveries: u32,
    /// Longest `wait_ms` a claim may long-poll for.
    pub max_wait_ms: u64,
    /// Events one consumer may hold under unexpired leases; a claim beyond answers 429.
    pub max_per_consumer: usize,
    /// Messages kept per conversation for `GET /v1/conversations/{id}/messages`.
    pub history_limit: usize,
    /// Quiet time after which the next message starts a new session.
    pub session_timeout_ms: u64,
    /// Open sessions (active within the timeout) per account; a new one beyond answers 429.
    pub max_open_sessions: usize,
}

impl Default for InboxConfig {
    fn default() -> Self {
        Self {
            default_lease_ms: 30_000,
            max_lease_ms: 3_600_000,
            max_claim: 100,
            max_deliveries: 10,
            max_wait_ms: 30_000,
            max_per_consumer: 100,
            history_limit: 20,
            session_timeout_ms: 1_800_000,
            max_open_sessions: 1_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountConfig {
    pub id: String,
    pub plugin: String,
    pub secrets: BTreeMap<String, SecretRef>,
    pub settings: BTreeMap<String, String>,
    /// The exact public URL the provider calls, for schemes that sign the URL (Twilio).
    pub public_url: Option<String>,
    /// Accept unsigned webhooks. Only honoured with verify scheme `none`; warned at every start.
    pub insecure: bool,
    /// Overrides of the daemon-wide `[delivery]` policies for this account.
    pub retry: Option<RetryPolicy>,
    pub rate_limits: Option<RateLimits>,
    /// Operator allowlist for the plugin's `http-fetch`: when set, the plugin reaches only hosts
    /// in its manifest's allowlist **and** in this list. `None`: the manifest's list as is.
    pub allowed_hosts: Option<Vec<String>>,
    /// Approvers and push delivery.
    pub agent: AccountAgent,
}

/// `[plugins.<name>]`: the operator's limits for one plugin (defaults: 100 ms, 64 MiB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginConfig {
    pub call_deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub plugins_dir: PathBuf,
    pub api_tokens: Vec<SecretRef>,
    pub max_body_bytes: usize,
    pub dedupe_ttl_ms: u64,
    pub accounts: BTreeMap<String, AccountConfig>,
    /// Per-plugin limits, by plugin name.
    pub plugins: BTreeMap<String, PluginConfig>,
    pub delivery: DeliveryConfig,
    pub inbox: InboxConfig,
    /// `[tools.<name>]`, by tool name.
    pub tools: BTreeMap<String, ToolConfig>,
    pub approvals: ApprovalsConfig,
    /// How long SIGTERM/SIGINT may take: in-flight deliveries finish within it, the rest are
    /// released, then the store is flushed and closed.
    pub shutdown_timeout_ms: u64,
    /// Where the durable state lives (`store = { kind = ... }`).
    pub store: StoreConfig,
    /// redb's page cache (`store.cache_mib`).
    pub store_cache_bytes: usize,
}

impl Default for Config {
    /// The embedded defaults `switchboard run` uses without a config file.
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8787".parse().expect("valid literal"),
            data_dir: PathBuf::from("./data"),
            plugins_dir: PathBuf::from("./plugins"),
            api_tokens: Vec::new(),
            max_body_bytes: 1024 * 1024,
            dedupe_ttl_ms: 7 * 24 * 3_600_000,
            accounts: BTreeMap::new(),
            plugins: BTreeMap::new(),
            delivery: DeliveryConfig::default(),
            inbox: InboxConfig::default(),
            tools: BTreeMap::new(),
            approvals: ApprovalsConfig::default(),
            shutdown_timeout_ms: 20_000,
            store: StoreConfig::default(),
            store_cache_bytes: crate::store::DEFAULT_CACHE_BYTES,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut cfg = Self::parse(&text, &path.display().to_string())?;
        // Relative paths in a config file are relative to the file, as operators expect.
        if let Some(base) = path.parent() {
            cfg.data_dir = base.join(&cfg.data_dir);
            cfg.plugins_dir = base.join(&cfg.plugins_dir);
            cfg.store.rebase(base);
        }
        Ok(cfg)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.message().to_string(),
        })?;
        let mut w = Walker::default();
        let cfg = build(&mut w, &table);
        if w.issues.is_empty() { Ok(cfg) } else { Err(ConfigError::Invalid(w.issues)) }
    }

    /// The redb file of a redb store (`None` for PostgreSQL).
    pub fn redb_path(&self) -> Option<PathBuf> {
        match &self.store {
            StoreConfig::RedbDefault => Some(self.data_dir.join("switchboard.redb")),
            StoreConfig::Redb { path } => Some(path.clone()),
            StoreConfig::Postgres { .. } => None,
        }
    }

    /// Where the store lives, secrets resolved.
    pub fn store_location(&self) -> Result<crate::store::StoreLocation, SecretError> {
        self.store.location(&self.data_dir)
    }
}

const TOP_KEYS: &[&str] = &[
    "listen", "data_dir", "plugins_dir", "api_tokens", "max_body_bytes", "dedupe_ttl_hours",
    "accounts", "plugins", "delivery", "inbox", "shutdown_timeout_ms", "tools", "approvals", "store",
];
const PLUGIN_KEYS: &[&str] = &["call_deadline_ms", "memory_mib"];
const ACCOUNT_KEYS: &[&str] = &["plugin", "secrets", "settings", "public_url", "insecure", "retry", "rate_limits", "allowed_hosts"];
const DELIVERY_KEYS: &[&str] = &[
    "workers", "batch", "lease_ms", "max_attempts", "backoff_base_ms", "backoff_cap_ms", "poll_interval_ms",
    "ordered", "max_queued", "idempotency_ttl_hours", "rate_limits", "breaker",
];
const RETRY_KEYS: &[&str] = &["max_attempts", "backoff_base_ms", "backoff_cap_ms"];
const RATE_KEYS: &[&str] = &["account_per_sec", "recipient_per_sec", "recipient_burst", "conversation_per_sec"];
const BREAKER_KEYS: &[&str] = &["failure_rate_percent", "window_ms", "min_calls", "cooldown_ms"];
const INBOX_KEYS: &[&str] = &[
    "default_lease_ms", "max_lease_ms", "max_claim", "max_deliveries", "max_wait_ms", "max_per_consumer", "history_limit",
    "session_timeout_ms", "max_open_sessions",
];

fn build(w: &mut Walker, t: &toml::Table) -> Config {
    let d = Config::default();
    w.unknown_keys("", t, TOP_KEYS);
    let listen = match w.string(t, "", "listen") {
        Some(s) => s.parse().unwrap_or_else(|_| {
            w.issue("listen", format!("`{s}` is not an address; use host:port, e.g. 127.0.0.1:8787"));
            d.listen
        }),
        None => d.listen,
    };
    let data_dir = w.string(t, "", "data_dir").map(PathBuf::from).unwrap_or(d.data_dir);
    let plugins_dir = w.string(t, "", "plugins_dir").map(PathBuf::from).unwrap_or(d.plugins_dir);
    let api_tokens = w
        .string_list(t, "", "api_tokens")
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| w.secret_ref(&format!("api_tokens[{i}]"), &s))
        .collect();
    let max_body_bytes =
        w.int(t, "", "max_body_bytes", 1024, 64 << 20).map_or(d.max_body_bytes, |v| v as usize);
    let dedupe_ttl_ms =
        w.int(t, "", "dedupe_ttl_hours", 1, 24 * 365).map_or(d.dedupe_ttl_ms, |h| h * 3_600_000);
    let shutdown_timeout_ms = w.int(t, "", "shutdown_timeout_ms", 100, 3_600_000).unwrap_or(d.shutdown_timeout_ms);

    let mut accounts = BTreeMap::new();
    if let Some(table) = w.table(t, "", "accounts") {
        for (id, value) in table {
            let path = format!("accounts.{id}");
            if !valid_account_id(id) {
                w.issue(&path, "account ids use a-z, 0-9, '-' and '_' (they appear in webhook URLs)");
            }
            match value.as_table() {
                Some(at) => {
                    if let Some(acct) = build_account(w, &path, id, at) {
                        accounts.insert(id.clone(), acct);
                    }
                }
                None => w.issue(&path, "must be a table: [accounts.<id>] with plugin = \"...\""),
            }
        }
    }

    let plugins = plugin_configs(w, t);
    let delivery = w.table(t, "", "delivery").map_or(d.delivery.clone(), |dt| {
        let p = "delivery";
        w.unknown_keys(p, dt, DELIVERY_KEYS);
        let dd = DeliveryConfig::default();
        let rate_limits = w.table(dt, p, "rate_limits").map_or(dd.rate_limits, |rt| rate_limits(w, "delivery.rate_limits", rt, dd.rate_limits));
        let breaker = w.table(dt, p, "breaker").map_or(dd.breaker, |bt| {
            let bp = "delivery.breaker";
            w.unknown_keys(bp, bt, BREAKER_KEYS);
            let b = BreakerConfig::default();
            BreakerConfig {
                failure_rate: w.int(bt, bp, "failure_rate_percent", 1, 100).map_or(b.failure_rate, |v| v as f64 / 100.0),
                window_ms: w.int(bt, bp, "window_ms", 100, 86_400_000).unwrap_or(b.window_ms),
                min_calls: w.int(bt, bp, "min_calls", 1, 1_000_000).map_or(b.min_calls, |v| v as u32),
                cooldown_ms: w.int(bt, bp, "cooldown_ms", 10, 86_400_000).unwrap_or(b.cooldown_ms),
            }
        });
        DeliveryConfig {
            workers: w.int(dt, p, "workers", 1, 1024).map_or(dd.workers, |v| v as usize),
            batch: w.int(dt, p, "batch", 1, 1024).map_or(dd.batch, |v| v as usize),
            lease_ms: w.int(dt, p, "lease_ms", 100, 3_600_000).unwrap_or(dd.lease_ms),
            retry: retry_policy(w, p, dt, dd.retry),
            poll_interval_ms: w.int(dt, p, "poll_interval_ms", 1, 60_000).unwrap_or(dd.poll_interval_ms),
            ordered: w.bool(dt, p, "ordered").unwrap_or(dd.ordered),
            max_queued: w.int(dt, p, "max_queued", 1, 100_000_000).unwrap_or(dd.max_queued),
            idempotency_ttl_ms: w.int(dt, p, "idempotency_ttl_hours", 1, 24 * 365).map_or(dd.idempotency_ttl_ms, |h| h * 3_600_000),
            rate_limits,
            breaker,
        }
    });
    let inbox = w.table(t, "", "inbox").map_or(d.inbox.clone(), |it| {
        w.unknown_keys("inbox", it, INBOX_KEYS);
        let di = InboxConfig::default();
        InboxConfig {
            default_lease_ms: w.int(it, "inbox", "default_lease_ms", 100, 86_400_000).unwrap_or(di.default_lease_ms),
            max_lease_ms: w.int(it, "inbox", "max_lease_ms", 100, 86_400_000).unwrap_or(di.max_lease_ms),
            max_claim: w.int(it, "inbox", "max_claim", 1, 10_000).map_or(di.max_claim, |v| v as usize),
            max_deliveries: w.int(it, "inbox", "max_deliveries", 1, 1_000).map_or(di.max_deliveries, |v| v as u32),
            max_wait_ms: w.int(it, "inbox", "max_wait_ms", 0, 300_000).unwrap_or(di.max_wait_ms),
            max_per_consumer: w.int(it, "inbox", "max_per_consumer", 1, 100_000).map_or(di.max_per_consumer, |v| v as usize),
            history_limit: w.int(it, "inbox", "history_limit", 1, 10_000).map_or(di.history_limit, |v| v as usize),
            session_timeout_ms: w.int(it, "inbox", "session_timeout_ms", 1_000, 30 * 86_400_000).unwrap_or(di.session_timeout_ms),
            max_open_sessions: w.int(it, "inbox", "max_open_sessions", 1, 10_000_000).map_or(di.max_open_sessions, |v| v as usize),
        }
    });
    let tools = agent::tools(w, t);
    let approvals = agent::approvals(w, t);
    let store = store::parse(w, t);
    let store_cache_bytes = store::cache_mib(w, t).map_or(crate::store::DEFAULT_CACHE_BYTES, |m| (m as usize) << 20);
    Config {
        listen,
        data_dir,
        plugins_dir,
        api_tokens,
        max_body_bytes,
        dedupe_ttl_ms,
        accounts,
        plugins,
        delivery,
        inbox,
        tools,
        approvals,
        shutdown_timeout_ms,
        store,
        store_cache_bytes,
    }
}

fn plugin_configs(w: &mut Walker, t: &toml::Table) -> BTreeMap<String, PluginConfig> {
    let mut plugins = BTreeMap::new();
    for (name, value) in w.table(t, "", "plugins").into_iter().flatten() {
        let path = format!("plugins.{name}");
        match value.as_table() {
            Some(pt) => {
                w.unknown_keys(&path, pt, PLUGIN_KEYS);
                let call_deadline_ms = w.int(pt, &path, "call_deadline_ms", 1, 60_000);
                let memory_mib = w.int(pt, &path, "memory_mib", 1, 4096);
                plugins.insert(name.clone(), PluginConfig { call_deadline_ms, memory_mib });
            }
            None => w.issue(&path, "must be a table: [plugins.<name>] with call_deadline_ms and/or memory_mib"),
        }
    }
    plugins
}

fn build_account(w: &mut Walker, path: &str, id: &str, t: &toml::Table) -> Option<AccountConfig> {
    let known: Vec<&str> = ACCOUNT_KEYS.iter().chain(agent::ACCOUNT_KEYS).copied().collect();
    w.unknown_keys(path, t, &known);
    let plugin = w.string(t, path, "plugin");
    if plugin.is_none() && !t.contains_key("plugin") {
        w.issue(&format!("{path}.plugin"), "missing; name the channel plugin, e.g. plugin = \"whatsapp-cloud\"");
    }
    let mut secrets = BTreeMap::new();
    if let Some(st) = w.table(t, path, "secrets") {
        for (name, v) in st {
            let p = format!("{path}.secrets.{name}");
            match v.as_str() {
                Some(s) => {
                    if let Some(r) = w.secret_ref(&p, s) {
                        secrets.insert(name.clone(), r);
                    }
                }
                None => w.issue(&p, "must be a string: env:VAR, file:/path or a literal"),
            }
        }
    }
    let mut settings = BTreeMap::new();
    if let Some(st) = w.table(t, path, "settings") {
        for (name, v) in st {
            let value = match v {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Integer(i) => Some(i.to_string()),
                toml::Value::Boolean(b) => Some(b.to_string()),
                toml::Value::Float(f) => Some(f.to_string()),
                _ => None,
            };
            match value {
                Some(v) => {
                    settings.insert(name.clone(), v);
                }
                None => w.issue(&format!("{path}.settings.{name}"), "must be a string, number or boolean"),
            }
        }
    }
    let public_url = w.string(t, path, "public_url");
    if let Some(u) = &public_url
        && url::Url::parse(u).is_err()
    {
        w.issue(&format!("{path}.public_url"), "must be an absolute URL, e.g. https://hooks.example.com/webhooks/sms");
    }
    let insecure = w.bool(t, path, "insecure").unwrap_or(false);
    let defaults = DeliveryConfig::default();
    let retry = w.table(t, path, "retry").map(|rt| {
        let p = format!("{path}.retry");
        w.unknown_keys(&p, rt, RETRY_KEYS);
        retry_policy(w, &p, rt, defaults.retry)
    });
    let rate_limits = w.table(t, path, "rate_limits").map(|rt| rate_limits(w, &format!("{path}.rate_limits"), rt, defaults.rate_limits));
    let allowed_hosts = t.contains_key("allowed_hosts").then(|| w.string_list(t, path, "allowed_hosts"));
    for (i, h) in allowed_hosts.iter().flatten().enumerate() {
        if crate::egress::HostPattern::parse(h).is_none() {
            w.issue(&format!("{path}.allowed_hosts[{i}]"), "must be a host, host:port or URL, e.g. graph.facebook.com");
        }
    }
    let agent = agent::account(w, path, t);
    Some(AccountConfig {
        id: id.to_string(),
        plugin: plugin?,
        secrets,
        settings,
        public_url,
        insecure,
        retry,
        rate_limits,
        allowed_hosts,
        agent,
    })
}

/// Reads `max_attempts`, `backoff_base_ms`, `backoff_cap_ms` from `t` over `base`.
fn retry_policy(w: &mut Walker, p: &str, t: &toml::Table, base: RetryPolicy) -> RetryPolicy {
    let backoff_base_ms = w.int(t, p, "backoff_base_ms", 1, 3_600_000).unwrap_or(base.backoff_base_ms);
    let backoff_cap_ms = w.int(t, p, "backoff_cap_ms", 1, 86_400_000).unwrap_or(base.backoff_cap_ms);
    if backoff_cap_ms < backoff_base_ms {
        w.issue(&format!("{p}.backoff_cap_ms"), "must be at least backoff_base_ms");
    }
    RetryPolicy {
        max_attempts: w.int(t, p, "max_attempts", 1, 100).map_or(base.max_attempts, |v| v as u32),
        backoff_base_ms,
        backoff_cap_ms,
    }
}

fn rate_limits(w: &mut Walker, p: &str, t: &toml::Table, base: RateLimits) -> RateLimits {
    w.unknown_keys(p, t, RATE_KEYS);
    let mut get = |k: &str, d: u32| w.int(t, p, k, 1, 10_000_000).map_or(d, |v| v as u32);
    RateLimits {
        account_per_sec: get("account_per_sec", base.account_per_sec),
        recipient_per_sec: get("recipient_per_sec", base.recipient_per_sec),
        recipient_burst: get("recipient_burst", base.recipient_burst),
        conversation_per_sec: get("conversation_per_sec", base.conversation_per_sec),
    }
}

fn valid_account_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(text: &str) -> Vec<ConfigIssue> {
        match Config::parse(text, "test.toml") {
            Err(ConfigError::Invalid(i)) => i,
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn empty_config_is_the_embedded_default() {
        assert_eq!(Config::parse("", "t").unwrap(), Config::default());
    }

    #[test]
    fn parses_the_design_example() {
        let cfg = Config::parse(
            r#"
            listen = "127.0.0.1:9000"
            data_dir = "/var/lib/switchboard"
            api_tokens = ["env:SWITCHBOARD_API_TOKEN"]
            [accounts.wa-main]
            plugin = "whatsapp-cloud"
            secrets = { app_secret = "env:WA_APP_SECRET", access_token = "file:/etc/wa" }
            settings = { phone_number_id = "106540352242922", retries = 3 }
            "#,
            "t",
        )
        .unwrap();
        let a = &cfg.accounts["wa-main"];
        assert_eq!(a.plugin, "whatsapp-cloud");
        assert_eq!(a.secrets["app_secret"], SecretRef::Env("WA_APP_SECRET".into()));
        assert_eq!(a.settings["retries"], "3");
        assert_eq!(cfg.listen.port(), 9000);
    }

    #[test]
    fn three_mistakes_are_all_reported_with_their_paths() {
        let found = issues(
            r#"
            listen = "not an address"
            [accounts.wa-main]
            secrets = { app_secret = "env:" }
            [delivery]
            workers = 0
            "#,
        );
        let paths: Vec<_> = found.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["listen", "accounts.wa-main.plugin", "accounts.wa-main.secrets.app_secret", "delivery.workers"],
            "{found:?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_suggestion() {
        let found = issues("listn = \"127.0.0.1:1\"\n");
        assert_eq!(found[0].path, "listn");
        assert!(found[0].message.contains("did you mean `listen`"), "{}", found[0].message);
    }

    #[test]
    fn shutdown_timeout_defaults_to_20_s_and_is_validated() {
        assert_eq!(Config::default().shutdown_timeout_ms, 20_000);
        assert_eq!(Config::parse("shutdown_timeout_ms = 5000", "t").unwrap().shutdown_timeout_ms, 5_000);
        let found = issues("shutdown_timeout_ms = 0\n");
        assert_eq!(found[0].path, "shutdown_timeout_ms", "{found:?}");
        let found = issues("shutdown_timeout = 20\n");
        assert!(found[0].message.contains("did you mean `shutdown_timeout_ms`"), "{found:?}");
    }

    #[test]
    fn wrong_types_name_the_expected_type() {
        let found = issues("api_tokens = \"abc\"\n[accounts.A]\nplugin = 3\n");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].message.contains("list of strings"));
        assert_eq!(found[1].path, "accounts.A");
        assert_eq!(found[2].path, "accounts.A.plugin");
    }
}
