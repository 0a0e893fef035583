//! Accounts as the daemon runs them: config + the plugin's manifest + resolved secrets.
//!
//! An account whose secrets cannot be resolved, whose plugin is missing, or whose required
//! settings are absent does not start; its webhook answers 503 (fail closed) and `/readyz`
//! names the reason. Other accounts are unaffected.

use crate::config::{AccountConfig, Config};
use crate::egress::HostPattern;
use crate::redact::Secret;
use crate::runtime::manifest::Manifest;
use crate::verify::Scheme;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Everything a call on behalf of one account may use.
#[derive(Debug)]
pub struct AccountCtx {
    pub id: String,
    pub plugin: String,
    pub scheme: Scheme,
    secrets: HashMap<String, Secret>,
    /// Config settings with manifest defaults filled in.
    pub settings: BTreeMap<String, String>,
    pub allowed_hosts: Vec<HostPattern>,
    pub public_url: Option<String>,
}

impl AccountCtx {
    pub fn secret(&self, name: &str) -> Option<&Secret> {
        self.secrets.get(name)
    }

    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// A context with no secrets or settings, for calls that act for no account
    /// (`describe` at load time).
    pub fn for_inspection(plugin: &str) -> Self {
        Self {
            id: String::new(),
            plugin: plugin.to_string(),
            scheme: Scheme::None,
            secrets: HashMap::new(),
            settings: BTreeMap::new(),
            allowed_hosts: Vec::new(),
            public_url: None,
        }
    }

    /// The context of one agent-tool call: no secrets, the tool's settings (which include the
    /// call's `account` and `conversation`), and the tool's resolved allowlist. `id` names the
    /// tool in logs (`tool:<name>`).
    pub fn for_tool(plugin: &str, settings: BTreeMap<String, String>, allowed_hosts: Vec<HostPattern>) -> Self {
        Self {
            id: format!("tool:{plugin}"),
            plugin: plugin.to_string(),
            scheme: Scheme::None,
            secrets: HashMap::new(),
            settings,
            allowed_hosts,
            public_url: None,
        }
    }

    /// Whether both hold the same secret values (a reload tells a rotated secret this way).
    pub fn same_secrets(&self, other: &AccountCtx) -> bool {
        self.secrets == other.secrets
    }

    /// Every secret value, for the log-redaction test and audits.
    pub fn secret_values(&self) -> impl Iterator<Item = &Secret> {
        self.secrets.values()
    }
}

#[derive(Debug, Clone)]
pub enum AccountState {
    Ready(Arc<AccountCtx>),
    Refused { plugin: String, reasons: Vec<String> },
}

/// The running accounts. A config reload ([`Accounts::replace`]) swaps the whole map at once;
/// a call keeps the `Arc<AccountCtx>` it started with, so a reload never disturbs it.
#[derive(Debug)]
pub struct Accounts {
    map: ArcSwap<BTreeMap<String, AccountState>>,
}

impl Default for Accounts {
    fn default() -> Self {
        Self { map: ArcSwap::from_pointee(BTreeMap::new()) }
    }
}

impl Accounts {
    /// Resolves every configured account against the loaded plugin manifests.
    pub fn resolve(config: &Config, manifests: &HashMap<String, Manifest>) -> Self {
        let map = config
            .accounts
            .values()
            .map(|a| {
                let state = match resolve_one(a, manifests.get(&a.plugin)) {
                    Ok(ctx) => AccountState::Ready(Arc::new(ctx)),
                    Err(reasons) => AccountState::Refused { plugin: a.plugin.clone(), reasons },
                };
                (a.id.clone(), state)
            })
            .collect();
        Self { map: ArcSwap::from_pointee(map) }
    }

    pub fn get(&self, id: &str) -> Option<AccountState> {
        self.map.load().get(id).cloned()
    }

    /// The accounts as they are now (a snapshot: a reload during the iteration is not seen).
    pub fn iter(&self) -> impl Iterator<Item = (String, AccountState)> + use<> {
        let snapshot: Vec<_> = self.map.load().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        snapshot.into_iter()
    }

    pub fn ready(&self, id: &str) -> Option<Arc<AccountCtx>> {
        match self.map.load().get(id) {
            Some(AccountState::Ready(ctx)) => Some(ctx.clone()),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves `config`'s accounts for a reload, without applying them. An account that runs
    /// now but whose new config is refused (a missing secret file, a typo) keeps running as it
    /// is: it is returned in the list with the reasons, so a reload never takes a working
    /// account down by accident.
    pub fn resolve_for_reload(&self, config: &Config, manifests: &HashMap<String, Manifest>) -> (Accounts, Vec<(String, Vec<String>)>) {
        let fresh = Accounts::resolve(config, manifests);
        let current = self.map.load();
        let mut map = (*fresh.map.load_full()).clone();
        let mut kept = Vec::new();
        for (id, state) in map.iter_mut() {
            if let AccountState::Refused { reasons, .. } = state
                && let Some(AccountState::Ready(running)) = current.get(id)
            {
                kept.push((id.clone(), reasons.clone()));
                *state = AccountState::Ready(running.clone());
            }
        }
        (Accounts { map: ArcSwap::from_pointee(map) }, kept)
    }

    /// Takes over `other`'s accounts atomically (config reload).
    pub fn replace(&self, other: Accounts) {
        self.map.store(other.map.load_full());
    }
}

fn resolve_one(a: &AccountConfig, manifest: Option<&Manifest>) -> Result<AccountCtx, Vec<String>> {
    let Some(m) = manifest else {
        return Err(vec![format!("plugin `{}` is not loaded (no {0}.wasm with a manifest in plugins_dir)", a.plugin)]);
    };
    if m.is_tool() {
        return Err(vec![format!("plugin `{}` is an agent tool, not a channel", a.plugin)]);
    }
    let mut reasons = Vec::new();
    let scheme = match Scheme::parse(&m.verify) {
        Some(Scheme::None) if !a.insecure => {
            reasons.push("plugin verifies nothing (scheme `none`); set insecure = true to accept unsigned webhooks".into());
            Scheme::None
        }
        Some(s) => s,
        None => {
            reasons.push(format!("unknown verification scheme `{}`", m.verify));
            Scheme::None
        }
    };
    let mut secrets = HashMap::new();
    for name in m.secrets.keys().map(String::as_str).chain(scheme.secret_name()) {
        match a.secrets.get(name) {
            None => reasons.push(format!("secret `{name}` is not configured")),
            Some(r) => match r.resolve() {
                Ok(v) => {
                    secrets.insert(name.to_string(), v);
                }
                Err(e) => reasons.push(format!("secret `{name}`: {e}")),
            },
        }
    }
    if let Some(name) = scheme.secret_name()
        && let Some(secret) = secrets.get(name)
        && let Err(e) = scheme.check_secret(secret)
    {
        reasons.push(format!("secret `{name}` is not usable for {}: {e}", scheme.name()));
    }
    let mut settings = a.settings.clone();
    for (name, spec) in &m.settings {
        if !settings.contains_key(name) {
            match &spec.default {
                Some(d) => {
                    settings.insert(name.clone(), d.clone());
                }
                None if spec.required => reasons.push(format!("setting `{name}` is required ({})", spec.description)),
                None => {}
            }
        }
    }
    let mut allowed_hosts = Vec::new();
    for raw in &m.allowed_hosts {
        let resolved = match raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(setting) => match settings.get(setting) {
                Some(v) => v.clone(),
                None => continue,
            },
            None => raw.clone(),
        };
        match HostPattern::parse(&resolved) {
            Some(p) => allowed_hosts.push(p),
            None => reasons.push(format!("allowed host `{raw}` resolves to `{resolved}`, which is not a host")),
        }
    }
    // The operator narrows, never widens: manifest ∩ config.
    if let Some(operator) = &a.allowed_hosts {
        let operator: Vec<_> = operator.iter().filter_map(|h| HostPattern::parse(h)).collect();
        allowed_hosts.retain(|p| operator.contains(p));
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }
    Ok(AccountCtx {
        id: a.id.clone(),
        plugin: a.plugin.clone(),
        scheme,
        secrets,
        settings,
        allowed_hosts,
        public_url: a.public_url.clone(),
    })
}
