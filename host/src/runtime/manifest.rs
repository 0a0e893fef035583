//! `plugin.toml`: what a plugin declares about itself. The host checks it before loading and
//! enforces it while running (allowed hosts, required secrets and settings).

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub world: String,
    /// Host-side verification preset for this channel's webhooks.
    pub verify: String,
    /// Hosts the plugin may reach. `{setting}` stands for the host of that account setting,
    /// so an operator who points `api_base` at a mock or proxy allows exactly that host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Secret name → description.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub settings: BTreeMap<String, SettingSpec>,
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

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if m.world != "channel-adapter" {
            return Err(format!("world `{}` is not supported by this host (expected channel-adapter)", m.world));
        }
        if m.name.is_empty() {
            return Err("name is empty".into());
        }
        Ok(m)
    }
}
