//! Loading one plugin version: manifest, compile (through the cache), the component's world,
//! a probe instance whose `describe` must agree with the manifest, then an atomic swap.

use super::bindings::{AgentTool, AgentToolPre, ChannelAdapter, ChannelAdapterPre};
use super::manifest::Manifest;
use super::{HostState, LoadError, LoadedPlugin, Pre, Runtime, read, write};
use crate::accounts::AccountCtx;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker, ResourceType};

/// Import namespaces a plugin may name. `switchboard:plugin` is ours; `wasi:` imports resolve
/// to the allowed WASI or to traps ([`super::wasi`]). Anything else is refused at load.
const IMPORT_NAMESPACES: &[&str] = &["switchboard:plugin/", "wasi:"];

/// What happened to a load that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// A new plugin, or a new version swapped in.
    Swapped,
    /// The same bytes as the version serving: nothing to do.
    Unchanged,
}

impl Runtime {
    /// Compiles and validates one plugin, then makes it the serving version of its name.
    /// On failure the previous version (if any) keeps serving and the error is kept in
    /// [`Runtime::load_errors`] until a good version loads.
    pub async fn load(&self, wasm: &Path) -> Result<(), LoadError> {
        self.reload(wasm).await.map(|_| ())
    }

    pub async fn reload(&self, wasm: &Path) -> Result<Loaded, LoadError> {
        let _one_at_a_time = self.loading.lock().await;
        let key = wasm.display().to_string();
        let result = self.prepare(wasm).await;
        let outcome = match result {
            Ok(None) => Ok(Loaded::Unchanged),
            Ok(Some(plugin)) => {
                let name = plugin.manifest.name.clone();
                tracing::info!(plugin = %name, version = %plugin.manifest.version, path = %key, "plugin loaded");
                // Whoever sees the new version also sees its error cleared and the reload
                // counted: both change before the swap, under the errors lock the swap holds.
                let mut errors = write(&self.load_errors);
                errors.remove(&key);
                let mut plugins = write(&self.plugins);
                if plugins.contains_key(&name) {
                    plugin.counters.reloaded(true);
                }
                plugins.insert(name, Arc::new(plugin));
                drop(plugins);
                // Parked instances of the old version would only be found stale one by one.
                self.warm.clear();
                Ok(Loaded::Swapped)
            }
            Err(reason) => {
                tracing::error!(path = %key, %reason, "plugin not loaded; a previous version, if any, keeps serving");
                if let Some(p) = self.serving_from(wasm) {
                    p.counters.reloaded(false);
                }
                Err(LoadError::Plugin { path: key.clone(), reason })
            }
        };
        let mut errors = write(&self.load_errors);
        match &outcome {
            Err(LoadError::Plugin { reason, .. }) => {
                errors.insert(key, reason.clone());
            }
            _ => {
                errors.remove(&key);
            }
        }
        outcome
    }

    /// The version serving now that was loaded from `wasm`.
    fn serving_from(&self, wasm: &Path) -> Option<Arc<LoadedPlugin>> {
        read(&self.plugins).values().find(|p| p.source == wasm).cloned()
    }

    /// Everything up to (not including) the swap. `None`: identical to the serving version.
    pub(super) async fn prepare(&self, wasm: &Path) -> Result<Option<LoadedPlugin>, String> {
        let manifest_path = wasm.with_extension("toml");
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| format!("manifest {}: {e}", manifest_path.display()))?;
        let manifest = Manifest::parse(&text).map_err(|e| format!("manifest: {e}"))?;
        let bytes = std::fs::read(wasm).map_err(|e| format!("read: {e}"))?;
        let digest = hex::encode(Sha256::new().chain_update(&bytes).chain_update(text.as_bytes()).finalize());
        if let Some(old) = self.plugin(&manifest.name) {
            if old.digest == digest {
                return Ok(None);
            }
            if old.source != wasm {
                return Err(format!("plugin `{}` is already loaded from {}", manifest.name, old.source.display()));
            }
            old.manifest.check_replacement(&manifest)?;
        }
        let component = self
            .compile(bytes)
            .await
            .map_err(|e| format!("compile: {e}"))?
            .map_err(|e| format!("compile: {e:#}"))?;
        check_contract(&self.engine, &component)?;
        check_imports(&self.engine, &component)?;
        let linker = self.linker(&component, manifest.is_tool()).map_err(|e| format!("link: {e:#}"))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| format!("imports: {e:#}"))?;
        let limits = self.options.limits_for(&manifest.name);
        let counters = self.counters(&manifest.name);
        if manifest.is_tool() {
            let pre = AgentToolPre::new(pre).map_err(|e| format!("exports (not an agent-tool?): {e:#}"))?;
            let info = self.probe_tool(&pre, &manifest, &limits).await?;
            if info.name != manifest.name {
                return Err(format!("describe() says name `{}`, manifest says `{}`", info.name, manifest.name));
            }
            return Ok(Some(LoadedPlugin {
                manifest,
                capabilities: Arc::from([]),
                limits,
                source: wasm.to_path_buf(),
                digest,
                tool: Some(info),
                pre: Pre::Tool(pre),
                counters,
            }));
        }
        let pre = ChannelAdapterPre::new(pre).map_err(|e| format!("exports (not a channel-adapter?): {e:#}"))?;
        let info = self.probe(&pre, &manifest, &limits).await?;
        if info.name != manifest.name || info.verify_scheme != manifest.verify {
            return Err(format!(
                "describe() says name `{}` / verify `{}`, manifest says `{}` / `{}`",
                info.name, info.verify_scheme, manifest.name, manifest.verify
            ));
        }
        Ok(Some(LoadedPlugin {
            manifest,
            capabilities: info.capabilities.into(),
            limits,
            source: wasm.to_path_buf(),
            digest,
            tool: None,
            pre: Pre::Channel(pre),
            counters,
        }))
    }

    /// Our `host` interface, the allowed WASI, and traps for every other import.
    fn linker(&self, component: &Component, tool: bool) -> wasmtime::Result<Linker<HostState>> {
        let mut linker = Linker::new(&self.engine);
        super::wasi::add_to_linker(&mut linker)?;
        // Both worlds import the same `host` interface; each links it once.
        if tool {
            AgentTool::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        } else {
            ChannelAdapter::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        }
        stub_unlinked_imports(&mut linker, &self.engine, component)?;
        Ok(linker)
    }

    /// Instantiates the new version once, under its own limits, and asks it to describe itself.
    async fn probe(
        &self,
        pre: &ChannelAdapterPre<HostState>,
        manifest: &Manifest,
        limits: &super::Limits,
    ) -> Result<super::bindings::wit::ChannelInfo, String> {
        let probe = Arc::new(AccountCtx::for_inspection(&manifest.name));
        let mut store = super::new_store(&self.engine, &self.ticker, &self.services, limits, &probe, manifest.name.clone());
        let inst = match pre.instantiate_async(&mut store).await {
            Ok(i) => i,
            Err(e) => return Err(format!("instantiate: {}", super::classify(&e, store.data(), limits))),
        };
        match inst.switchboard_plugin_channel().call_describe(&mut store).await {
            Ok(info) => Ok(info),
            Err(e) => Err(format!("describe: {}", super::classify(&e, store.data(), limits))),
        }
    }
}

impl Runtime {
    /// [`Runtime::probe`] for an agent tool: `describe` must give a JSON Schema object.
    async fn probe_tool(
        &self,
        pre: &AgentToolPre<HostState>,
        manifest: &Manifest,
        limits: &super::Limits,
    ) -> Result<crate::model::ToolInfo, String> {
        let probe = Arc::new(AccountCtx::for_inspection(&manifest.name));
        let mut store = super::new_store(&self.engine, &self.ticker, &self.services, limits, &probe, manifest.name.clone());
        let inst = match pre.instantiate_async(&mut store).await {
            Ok(i) => i,
            Err(e) => return Err(format!("instantiate: {}", super::classify(&e, store.data(), limits))),
        };
        match inst.switchboard_plugin_tool().call_describe(&mut store).await {
            Ok(info) => super::convert::tool_info_from_wit(info, manifest.requires_approval),
            Err(e) => Err(format!("describe: {}", super::classify(&e, store.data(), limits))),
        }
    }
}

/// Refuses imports from namespaces the host knows nothing about (before any linking, so the
/// operator reads which import, not a type-check error).
/// The version of `switchboard:plugin` this host speaks (`wit/switchboard.wit`).
pub const CONTRACT_VERSION: &str = "0.2.0";

/// A plugin built against another version of our WIT package is refused with what to do,
/// rather than with the linker's complaint about a missing import or a mismatched type.
fn check_contract(engine: &wasmtime::Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let names: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).chain(ty.exports(engine).map(|(n, _)| n.to_string())).collect();
    match other_contract(names.iter().map(String::as_str)) {
        None => Ok(()),
        Some(v) => Err(format!(
            "built against switchboard:plugin@{v}; this daemon speaks switchboard:plugin@{CONTRACT_VERSION}: rebuild the plugin with this release's SDK (`switchboard plugin build`)"
        )),
    }
}

/// The first `switchboard:plugin` version among these import/export names that is not ours.
fn other_contract<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .filter_map(|n| n.strip_prefix("switchboard:plugin/"))
        .map(|n| n.split_once('@').map_or("(unversioned)", |(_, v)| v))
        .find(|v| *v != CONTRACT_VERSION)
}

fn check_imports(engine: &wasmtime::Engine, component: &Component) -> Result<(), String> {
    let ty = component.component_type();
    let foreign: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .filter(|name| !IMPORT_NAMESPACES.iter().any(|ns| name.starts_with(ns)))
        .collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(format!("imports {} which this host does not provide", foreign.join(", ")))
    }
}

/// Defines every function of every imported interface the host does not link as a trap, so a
/// plugin that merely *references* `wasi:filesystem` or `wasi:sockets` loads, and a call that
/// uses one fails alone. (Not `Linker::define_unknown_imports_as_traps`: it matches names
/// exactly, so it would shadow our `wasi:cli@0.2.x` with traps for a guest built against
/// another 0.2 patch version; the real definitions resolve by semver, these stubs need not.)
fn stub_unlinked_imports(linker: &mut Linker<HostState>, engine: &wasmtime::Engine, component: &Component) -> wasmtime::Result<()> {
    let ty = component.component_type();
    let is_linked = |name: &str| {
        let interface = name.split('@').next().unwrap_or(name);
        name.starts_with("switchboard:plugin/") || super::wasi::LINKED.contains(&interface)
    };
    // Resources of linked interfaces that unlinked ones re-use (`wasi:filesystem/types` uses
    // `wasi:io/streams.input-stream`): their stubs must be the same host type.
    let mut aliases = Vec::new();
    for (name, import) in ty.imports(engine).filter(|(n, _)| is_linked(n)) {
        if let ComponentItem::ComponentInstance(instance) = import.ty {
            let interface = name.split('@').next().unwrap_or(name);
            for (item, export) in instance.exports(engine) {
                if let (ComponentItem::Resource(rt), Some(host)) = (export.ty, super::wasi::linked_resource(interface, item)) {
                    aliases.push((rt, host));
                }
            }
        }
    }
    for (name, import) in ty.imports(engine).filter(|(n, _)| !is_linked(n)) {
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            wasmtime::bail!("import `{name}` is not an interface");
        };
        let mut stubs = linker.instance(name)?;
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(_) => {
                    let what = format!("{name}#{item}");
                    stubs.func_new(item, move |_, _, _, _| {
                        wasmtime::bail!("unknown import: `{what}` is not available to plugins")
                    })?;
                }
                ComponentItem::Resource(rt) => {
                    let host = aliases.iter().find(|(a, _)| *a == rt).map_or_else(ResourceType::host::<()>, |(_, h)| *h);
                    stubs.resource(item, host, |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_version_is_the_wit_packages() {
        let wit = include_str!("../../../wit/switchboard.wit");
        assert!(wit.contains(&format!("package switchboard:plugin@{CONTRACT_VERSION};")), "update CONTRACT_VERSION with the WIT");
    }

    #[test]
    fn a_plugin_built_against_another_contract_is_named_as_such() {
        let ours = format!("switchboard:plugin/channel@{CONTRACT_VERSION}");
        let host = format!("switchboard:plugin/host@{CONTRACT_VERSION}");
        assert_eq!(other_contract([host.as_str(), "wasi:cli/environment@0.2.6", ours.as_str()].into_iter()), None);
        let old = ["wasi:io/streams@0.2.0", "switchboard:plugin/host@0.1.0", "switchboard:plugin/channel@0.1.0"];
        assert_eq!(other_contract(old.into_iter()), Some("0.1.0"));
        assert_eq!(other_contract(["switchboard:plugin/tool"].into_iter()), Some("(unversioned)"));
    }
}
