//! `plugin.toml`: what a plugin declares about itself. The host checks it before loading and
//! enforces it while running (allowed hosts, required secrets and settings).

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// `channel-adapter` or `agent-tool`.
    pub world: String,
    /// Host-side verification preset for this channel's webhooks (channels only).
    #[serde(default)]
    pub verify: String,
    /// Hosts the plugin may reach. `{setting}` stands for the host of that account setting,
    /// so an operator who points `api_base` at a mock or proxy allows exactly that host.
    /// A tool may say `"*"`: exactly the hosts the operator lists in `[tools.<name>]
    /// allowed_hosts` (none if it lists none), for tools whose destination is the operator's
    /// choice (`http-get`).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Tools only: every invocation needs a human's YES first (config can force it too).
    #[serde(default)]
    pub requires_approval: bool,
    /// Secret name → description.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub settings: BTreeMap<String, SettingSpec>,
    /// Where the plugin's `kv-get`/`kv-set` keys live: `plugin` (default: one namespace the
    /// plugin shares across all its accounts, e.g. a cache of provider metadata) or `account`
    /// (each account its own namespace, e.g. a per-bot cursor or chat migration map, so one
    /// account's state can never be read or clobbered through another's calls).
    #[serde(default)]
    pub kv_scope: KvScope,
    /// Channels only: whether the plugin's `handshake` may answer a verified `POST` (Slack's
    /// `url_verification`, Discord's `PING`); see [`Manifest::answers_signed_handshakes`].
    #[serde(default)]
    pub signed_handshakes: Option<bool>,
}

/// See [`Manifest::kv_scope`].
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KvScope {
    #[default]
    Plugin,
    Account,
}

impl KvScope {
    /// The store namespace for `plugin` calling on behalf of `account`. Plugin names are
    /// `[a-z0-9_-]`, so the `@` keeps an account namespace from aliasing any plugin's.
    pub fn namespace(self, plugin: &str, account: &str) -> String {
        match self {
            KvScope::Plugin => plugin.to_string(),
            KvScope::Account => format!("{plugin}@{account}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SettingSpec {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    pub default: Option<String>,
}

/// The world of channel plugins.
pub const CHANNEL_WORLD: &str = "channel-adapter";
/// The world of agent tools.
pub const TOOL_WORLD: &str = "agent-tool";
/// A tool's `allowed_hosts` entry meaning "the hosts the operator configures for it".
pub const ANY_OPERATOR_HOST: &str = "*";

impl Manifest {
    /// An agent tool (`world = "agent-tool"`), not a channel.
    pub fn is_tool(&self) -> bool {
        self.world == TOOL_WORLD
    }

    /// Whether a verified `POST` goes to the plugin's `handshake` before `parse-inbound`
    /// (the default, as the WIT says). A channel whose provider has no signed handshake says
    /// `signed_handshakes = false`, and its webhooks then make one guest call instead of two:
    /// the request is lowered into the guest once, ~3 µs of the ~50 µs a webhook costs the
    /// request threads (BENCHMARKS.md). `GET`s (subscription checks) still go to `handshake`.
    pub fn answers_signed_handshakes(&self) -> bool {
        self.signed_handshakes.unwrap_or(true)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.message().to_string())?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), String> {
        if self.world != CHANNEL_WORLD && self.world != TOOL_WORLD {
            return Err(format!(
                "world `{}` is not supported by this host (expected {CHANNEL_WORLD} or {TOOL_WORLD})",
                self.world
            ));
        }
        // The name keys the plugin's kv namespace (`name\0key`) and its config table, so it is
        // a plain identifier: no separator can make one plugin's keys look like another's.
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(format!("name `{}` must be 1-64 of a-z, 0-9, '-', '_'", self.name));
        }
        if self.version.trim().is_empty() {
            return Err("version is empty".into());
        }
        if self.is_tool() {
            if self.signed_handshakes.is_some() {
                return Err("signed_handshakes is for channels; an agent-tool answers no webhooks".into());
            }
            if !self.verify.is_empty() {
                return Err("verify is for channels; an agent-tool receives no webhooks".into());
            }
            if !self.secrets.is_empty() {
                return Err("secrets are for channels; an agent-tool has settings only".into());
            }
        } else {
            if self.verify.trim().is_empty() {
                return Err("verify is empty (name a verification preset, e.g. meta-sha256)".into());
            }
            if self.requires_approval {
                return Err("requires_approval is for agent-tool plugins".into());
            }
        }
        for h in &self.allowed_hosts {
            if h == ANY_OPERATOR_HOST {
                if !self.is_tool() {
                    return Err("allowed host `*` is for agent-tool plugins only".into());
                }
                continue;
            }
            match h.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                Some(setting) if !self.settings.contains_key(setting) => {
                    return Err(format!("allowed host `{h}` names setting `{setting}`, which [settings] does not declare"));
                }
                Some(_) => {}
                None if crate::egress::HostPattern::parse(h).is_none() => {
                    return Err(format!("allowed host `{h}` is not a host, host:port or URL"));
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Whether `new` may replace `self` in a running daemon. Accounts were resolved against
    /// the old manifest (allowlist, secrets, settings, verification), so only the version may
    /// change without a restart; and `signed_handshakes`, which is read per call.
    pub fn check_replacement(&self, new: &Manifest) -> Result<(), String> {
        let same = Manifest { version: self.version.clone(), signed_handshakes: self.signed_handshakes, ..new.clone() };
        if &same == self {
            Ok(())
        } else {
            Err(format!(
                "manifest of `{}` changed more than its version (allowed_hosts, secrets, settings or verify); \
                 restart the daemon to apply it",
                self.name
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
        name = "demo"
        version = "0.1.0"
        world = "channel-adapter"
        verify = "meta-sha256"
        allowed_hosts = ["api.example.com", "{api_base}"]
        [settings.api_base]
        default = "https://api.example.com"
    "#;

    #[test]
    fn a_valid_manifest_parses() {
        let m = Manifest::parse(OK).unwrap();
        assert_eq!(m.allowed_hosts.len(), 2);
        assert!(m.answers_signed_handshakes(), "POSTs go to `handshake` unless the channel says not");
    }

    #[test]
    fn only_a_channel_may_say_it_has_no_signed_handshakes() {
        let without = OK.replace("verify = ", "signed_handshakes = false\n        verify = ");
        assert!(!Manifest::parse(&without).unwrap().answers_signed_handshakes());
        let tool = "name = \"t\"\nversion = \"0.1.0\"\nworld = \"agent-tool\"\nsigned_handshakes = true\n";
        assert!(Manifest::parse(tool).unwrap_err().contains("signed_handshakes"));
    }

    #[test]
    fn names_that_could_alias_a_kv_namespace_are_refused() {
        for bad in ["de\\u0000mo", "Demo", "a/b", ""] {
            let text = OK.replace("\"demo\"", &format!("\"{bad}\""));
            assert!(Manifest::parse(&text).unwrap_err().contains("name"), "{bad:?}");
        }
    }

    #[test]
    fn an_allowed_host_template_must_name_a_declared_setting() {
        let text = OK.replace("{api_base}", "{nope}");
        assert!(Manifest::parse(&text).unwrap_err().contains("nope"));
    }

    #[test]
    fn a_tool_manifest_has_no_verify_and_may_defer_its_hosts_to_the_operator() {
        let tool = "name = \"http-get\"\nversion = \"0.1.0\"\nworld = \"agent-tool\"\nallowed_hosts = [\"*\"]\nrequires_approval = true\n";
        let m = Manifest::parse(tool).unwrap();
        assert!(m.is_tool() && m.requires_approval);
        assert!(Manifest::parse(&format!("{tool}verify = \"meta-sha256\"\n")).unwrap_err().contains("verify"));
        let star = OK.replace("\"api.example.com\",", "\"*\",");
        assert!(Manifest::parse(&star).unwrap_err().contains("agent-tool"));
        assert!(Manifest::parse(&OK.replace("channel-adapter", "other")).unwrap_err().contains("not supported"));
    }

    #[test]
    fn kv_scope_defaults_to_the_plugin_and_an_account_scope_never_aliases_a_plugin() {
        assert_eq!(Manifest::parse(OK).unwrap().kv_scope, KvScope::Plugin);
        let m = Manifest::parse(&format!("kv_scope = \"account\"\n{OK}")).unwrap();
        assert_eq!(m.kv_scope, KvScope::Account);
        assert_eq!(KvScope::Account.namespace("demo", "a"), "demo@a");
        assert_ne!(KvScope::Account.namespace("demo", "a"), KvScope::Account.namespace("demo", "b"));
        assert!(Manifest::parse(&format!("kv_scope = \"global\"\n{OK}")).is_err());
    }

    #[test]
    fn only_the_version_and_signed_handshakes_may_change_on_reload() {
        let old = Manifest::parse(OK).unwrap();
        let newer = Manifest::parse(&OK.replace("0.1.0", "0.2.0")).unwrap();
        assert!(old.check_replacement(&newer).is_ok());
        let skipping = Manifest::parse(&OK.replace("verify = ", "signed_handshakes = false\n        verify = ")).unwrap();
        assert!(old.check_replacement(&skipping).is_ok(), "read per call: no restart needed");
        let wider = Manifest::parse(&OK.replace("\"api.example.com\",", "\"api.example.com\", \"evil.com\",")).unwrap();
        assert!(old.check_replacement(&wider).is_err());
    }
}
