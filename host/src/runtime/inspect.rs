//! Looking at a plugin file without a daemon (`switchboard plugin inspect`, `plugin build`,
//! `plugin test`): its manifest, what the component imports and exports, and whether the
//! daemon would load it, decided by the very code the daemon loads with ([`Runtime::load`]'s
//! preparation: manifest, compile, imports, world, `describe` probe).

use super::manifest::Manifest;
use super::{HostServices, LoadError, Runtime, RuntimeOptions};
use crate::clock::{SharedClock, SystemClock};
use crate::egress::Egress;
use crate::model::ToolInfo;
use crate::store::{Store, StoreOptions};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::types::ComponentItem;

/// What a plugin file is, and whether the daemon would load it.
#[derive(Debug)]
pub struct Inspection {
    pub wasm: PathBuf,
    pub size: u64,
    /// SHA-256 of the wasm bytes, hex.
    pub sha256: String,
    /// `NAME.toml` beside the `.wasm`, where the daemon looks for the manifest.
    pub manifest_path: PathBuf,
    /// The manifest as the daemon parses and validates it, or why it cannot.
    pub manifest: Result<Manifest, String>,
    /// The world the component's exports implement (`channel-adapter`, `agent-tool`), if any.
    pub world: Option<&'static str>,
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
    /// `Ok`: the daemon loads this file (with that manifest) and `describe` says this;
    /// `Err`: why the daemon would refuse it.
    pub verdict: Result<Described, String>,
}

/// One import or export: an interface with its functions, or a lone function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub functions: Vec<String>,
}

/// What the plugin's `describe` said during the load probe.
#[derive(Debug, Clone)]
pub enum Described {
    Channel { capabilities: Vec<String> },
    Tool(ToolInfo),
}

/// Inspects `wasm` (manifest: `wasm` with the extension `.toml`). `Err` only when the file
/// cannot be read or is not a component at all; every other problem is in
/// [`Inspection::verdict`].
pub async fn inspect(wasm: &Path) -> Result<Inspection, LoadError> {
    let fail = |reason: String| LoadError::Plugin { path: wasm.display().to_string(), reason };
    let bytes = std::fs::read(wasm).map_err(|e| fail(format!("read: {e}")))?;
    // The runtime needs the services the daemon gives it; a throwaway store and a compile
    // cache in a temp dir (the cache makes the probe's compile of the same bytes a hit).
    let tmp = tempfile::tempdir().map_err(|e| fail(format!("temp dir: {e}")))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let store = Store::open(&tmp.path().join("inspect.redb"), clock.clone(), StoreOptions::default())
        .map_err(|e| fail(format!("temp store: {e}")))?;
    let services = HostServices { store: store.clone(), egress: Egress::new(Duration::from_secs(5), 1 << 20), clock };
    let options = RuntimeOptions { cache_dir: Some(tmp.path().join("cache")), ..Default::default() };
    let result = match Runtime::with_options(services, options) {
        Ok(runtime) => runtime.inspect_bytes(wasm, bytes).await,
        Err(e) => Err(e),
    };
    store.close().await;
    result
}

impl Runtime {
    async fn inspect_bytes(&self, wasm: &Path, bytes: Vec<u8>) -> Result<Inspection, LoadError> {
        let fail = |reason: String| LoadError::Plugin { path: wasm.display().to_string(), reason };
        let size = bytes.len() as u64;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let manifest_path = wasm.with_extension("toml");
        let manifest = std::fs::read_to_string(&manifest_path)
            .map_err(|e| format!("{}: {e}", manifest_path.display()))
            .and_then(|t| Manifest::parse(&t));
        let component = self
            .compile(bytes)
            .await
            .map_err(|e| fail(format!("compile: {e}")))?
            .map_err(|e| fail(format!("not a component this host can compile: {e:#}")))?;
        let ty = component.component_type();
        let imports: Vec<Item> = ty.imports(&self.engine).map(|(name, e)| self.item(name, e.ty)).collect();
        let exports: Vec<Item> = ty.exports(&self.engine).map(|(name, e)| self.item(name, e.ty)).collect();
        let world = exports.iter().find_map(|e| {
            let interface = e.name.split('@').next().unwrap_or(&e.name);
            match interface {
                "switchboard:plugin/channel" => Some(super::manifest::CHANNEL_WORLD),
                "switchboard:plugin/tool" => Some(super::manifest::TOOL_WORLD),
                _ => None,
            }
        });
        // Exactly what a load does, up to (not including) making it the serving version.
        let verdict = match self.prepare(wasm).await {
            Ok(Some(p)) => Ok(match p.tool {
                Some(info) => Described::Tool(info),
                None => Described::Channel { capabilities: p.capabilities.to_vec() },
            }),
            Ok(None) => Err("internal: an identical plugin is already loaded".into()),
            Err(reason) => Err(reason),
        };
        Ok(Inspection { wasm: wasm.to_path_buf(), size, sha256, manifest_path, manifest, world, imports, exports, verdict })
    }

    fn item(&self, name: &str, item: ComponentItem) -> Item {
        let functions = match item {
            ComponentItem::ComponentInstance(i) => i
                .exports(&self.engine)
                .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                .map(|(n, _)| n.to_string())
                .collect(),
            _ => Vec::new(),
        };
        Item { name: name.to_string(), functions }
    }
}
