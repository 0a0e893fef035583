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

#[derive(Debug, Default)]
pub struct Accounts {
    map: BTreeMap<String, AccountState>,
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
        Self { map }
    }

    pub fn get(&self, id: &str) -> Option<&AccountState> {
        self.map.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &AccountState)> {
        self.map.iter()
    }

    pub fn ready(&self, id: &str) -> Option<&Arc<AccountCtx>> {
        match self.map.get(id) {
            Some(AccountState::Ready(ctx)) => Some(ctx),
            _ => None,
        }
    }
}

fn resolve_one(a: &AccountConfig, manifest: Option<&Manifest>) -> Result<AccountCtx, Vec<String>> {
    let Some(m) = manifest else {
        return Err(vec![format!("plugin `{}` is not loaded (no {0}.wasm with a manifest in plugins_dir)", a.plugin)]);
    };
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
