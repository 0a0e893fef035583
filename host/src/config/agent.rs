//! The agent-side config: who may approve tool calls in an account's conversations, push
//! delivery of an account's events, `[tools.<name>]` and `[approvals]`.

use super::SecretRef;
use super::walk::Walker;
use crate::model::EventKind;
use std::collections::BTreeMap;

/// Account keys read here (the rest of the account table is read by `config::build_account`).
pub(super) const ACCOUNT_KEYS: &[&str] = &["approvers", "deliver_to", "deliver_secret", "deliver_events", "pull_and_push"];
const TOOL_KEYS: &[&str] = &["requires_approval", "allowed_hosts", "settings"];
const APPROVAL_KEYS: &[&str] = &["timeout_ms"];

/// What the agent side of one account does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountAgent {
    /// Senders (in the provider's notation, e.g. `16505551234`) whose YES/NO in a conversation
    /// resolves that conversation's pending approvals. Empty: nobody can approve.
    pub approvers: Vec<String>,
    /// Push delivery of the account's inbox events, when configured.
    pub push: Option<PushConfig>,
}

impl AccountAgent {
    /// Whether `sender` may approve. A leading `+` is ignored on both sides (`+1650…` = `1650…`).
    pub fn is_approver(&self, sender: &str) -> bool {
        self.approvers.iter().any(|a| crate::model::same_sender(sender, a))
    }
}

/// `deliver_to` and friends: each inbox event is POSTed, signed with Standard Webhooks.
#[derive(Debug, Clone, PartialEq)]
pub struct PushConfig {
    pub url: String,
    /// `whsec_…` secret the deliveries are signed with.
    pub secret: SecretRef,
    /// Only these kinds are pushed (`None`: all). Other kinds stay in the pull inbox.
    pub events: Option<Vec<EventKind>>,
    /// Pushed events are also claimable from the pull inbox (both consume them).
    pub pull_and_push: bool,
}

impl PushConfig {
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.as_ref().is_none_or(|k| k.contains(&kind))
    }
}

/// `[tools.<name>]`: the operator's say over one agent tool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolConfig {
    /// Force approval even if the tool does not declare it (never turns it off).
    pub requires_approval: bool,
    /// Hosts the tool may reach: narrows the manifest's list, or *is* the list when the
    /// manifest says `"*"`.
    pub allowed_hosts: Option<Vec<String>>,
    pub settings: BTreeMap<String, String>,
}

/// `[approvals]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalsConfig {
    /// An approval nobody answered by then fails (on the daemon's clock).
    pub timeout_ms: u64,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self { timeout_ms: 600_000 }
    }
}

fn event_kind(name: &str) -> Option<EventKind> {
    Some(match name {
        "message" => EventKind::Message,
        "status" => EventKind::Status,
        "reaction" => EventKind::Reaction,
        "unsupported" => EventKind::Unsupported,
        _ => return None,
    })
}

pub(super) fn account(w: &mut Walker, path: &str, t: &toml::Table) -> AccountAgent {
    let approvers = w.string_list(t, path, "approvers");
    let url = w.string(t, path, "deliver_to");
    let secret = w.string(t, path, "deliver_secret").and_then(|s| w.secret_ref(&format!("{path}.deliver_secret"), &s));
    let events = t.contains_key("deliver_events").then(|| {
        w.string_list(t, path, "deliver_events")
            .iter()
            .enumerate()
            .filter_map(|(i, k)| {
                let kind = event_kind(k);
                if kind.is_none() {
                    w.issue(&format!("{path}.deliver_events[{i}]"), "must be one of message, status, reaction, unsupported");
                }
                kind
            })
            .collect()
    });
    let pull_and_push = w.bool(t, path, "pull_and_push").unwrap_or(false);
    let push = match (url, secret) {
        (Some(url), Some(secret)) => {
            match url::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => w.issue(&format!("{path}.deliver_to"), "must be an absolute http(s) URL, e.g. https://agent.example.com/events"),
            }
            Some(PushConfig { url, secret, events, pull_and_push })
        }
        (Some(_), None) if !t.contains_key("deliver_secret") => {
            w.issue(&format!("{path}.deliver_secret"), "missing; push deliveries are signed: deliver_secret = \"env:VAR\" holding whsec_<base64>");
            None
        }
        (None, _) if t.contains_key("deliver_secret") || t.contains_key("deliver_events") || t.contains_key("pull_and_push") => {
            w.issue(&format!("{path}.deliver_to"), "missing; deliver_secret, deliver_events and pull_and_push need deliver_to");
            None
        }
        _ => None,
    };
    AccountAgent { approvers, push }
}

pub(super) fn tools(w: &mut Walker, t: &toml::Table) -> BTreeMap<String, ToolConfig> {
    let mut out = BTreeMap::new();
    for (name, value) in w.table(t, "", "tools").into_iter().flatten() {
        let path = format!("tools.{name}");
        let Some(tt) = value.as_table() else {
            w.issue(&path, "must be a table: [tools.<name>] with requires_approval, allowed_hosts, settings");
            continue;
        };
        w.unknown_keys(&path, tt, TOOL_KEYS);
        let allowed_hosts = tt.contains_key("allowed_hosts").then(|| w.string_list(tt, &path, "allowed_hosts"));
        for (i, h) in allowed_hosts.iter().flatten().enumerate() {
            if crate::egress::HostPattern::parse(h).is_none() {
                w.issue(&format!("{path}.allowed_hosts[{i}]"), "must be a host, host:port or URL, e.g. example.com");
            }
        }
        let mut settings = BTreeMap::new();
        for (k, v) in w.table(tt, &path, "settings").into_iter().flatten() {
            match v.as_str() {
                Some(s) => {
                    settings.insert(k.clone(), s.to_string());
                }
                None => w.issue(&format!("{path}.settings.{k}"), "must be a string"),
            }
        }
        let requires_approval = w.bool(tt, &path, "requires_approval").unwrap_or(false);
        out.insert(name.clone(), ToolConfig { requires_approval, allowed_hosts, settings });
    }
    out
}

pub(super) fn approvals(w: &mut Walker, t: &toml::Table) -> ApprovalsConfig {
    let d = ApprovalsConfig::default();
    match w.table(t, "", "approvals") {
        Some(at) => {
            w.unknown_keys("approvals", at, APPROVAL_KEYS);
            ApprovalsConfig { timeout_ms: w.int(at, "approvals", "timeout_ms", 1_000, 7 * 86_400_000).unwrap_or(d.timeout_ms) }
        }
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    #[test]
    fn push_tools_and_approvals_parse() {
        let cfg = Config::parse(
            r#"
            [accounts.a]
            plugin = "webhook"
            approvers = ["+16505551234"]
            deliver_to = "https://agent.example.com/events"
            deliver_secret = "env:PUSH_SECRET"
            deliver_events = ["message", "reaction"]
            [tools.http-get]
            requires_approval = true
            allowed_hosts = ["example.com"]
            [approvals]
            timeout_ms = 60000
            "#,
            "t",
        )
        .unwrap();
        let a = &cfg.accounts["a"].agent;
        assert!(a.is_approver("16505551234") && !a.is_approver("16505550000") && !a.is_approver(""));
        let push = a.push.as_ref().unwrap();
        assert!(push.wants(crate::model::EventKind::Message) && !push.wants(crate::model::EventKind::Status));
        assert!(!push.pull_and_push);
        assert!(cfg.tools["http-get"].requires_approval);
        assert_eq!(cfg.approvals.timeout_ms, 60_000);
    }

    #[test]
    fn push_mistakes_are_reported_with_their_paths() {
        let err = Config::parse(
            "[accounts.a]\nplugin = \"p\"\ndeliver_to = \"nope\"\ndeliver_secret = \"x\"\ndeliver_events = [\"message\", \"typing\"]\n[accounts.b]\nplugin = \"p\"\ndeliver_to = \"https://x.example\"\n",
            "t",
        )
        .unwrap_err();
        let ConfigError::Invalid(issues) = err else { panic!("{err}") };
        let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["accounts.a.deliver_events[1]", "accounts.a.deliver_to", "accounts.b.deliver_secret"], "{issues:?}");
    }
}
