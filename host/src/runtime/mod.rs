//! The plugin runtime: the only module that touches wasmtime.
//!
//! One [`Engine`] (pooling allocator, epoch interruption) and one [`Linker`] for the daemon.
//! Each plugin is compiled once into an `InstancePre`; every call gets a **fresh `Store` and
//! instance**, so no state leaks between calls or accounts, and a trap poisons nothing. The
//! pooling allocator makes that cheap (a slot reuse, not an mmap).
//!
//! Plugins get only our `host` interface plus a WASI context with no preopened directories,
//! no environment, no arguments, no stdio and no sockets: the WASI imports exist only because
//! Rust's std links them.

pub mod bindings;
mod convert;
mod host_impl;
pub mod manifest;

use crate::accounts::AccountCtx;
use crate::clock::SharedClock;
use crate::egress::Egress;
use crate::model::{DeliveryOutcome, HttpRequest, HttpResponse, InboundEvent};
use crate::store::Store;
use bindings::{ChannelAdapter, ChannelAdapterPre};
use manifest::Manifest;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store as WasmStore, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// How often the epoch advances; the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct Limits {
    /// Guest CPU time per call; time spent in host imports (HTTP) does not count.
    pub call_deadline: Duration,
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { call_deadline: Duration::from_millis(100), memory_bytes: 64 << 20 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {reason}")]
    Plugin { path: String, reason: String },
    #[error("plugins dir {path}: {reason}")]
    Dir { path: String, reason: String },
}

/// A failed plugin call. The message it was for is retried or dead-lettered as usual.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("plugin `{0}` is not loaded")]
    NotLoaded(String),
    #[error("plugin exceeded its {0:?} deadline")]
    Deadline(Duration),
    #[error("plugin trapped: {0}")]
    Trap(String),
}

/// What the host offers plugins, shared by all calls.
#[derive(Clone)]
pub struct HostServices {
    pub store: Store,
    pub egress: Egress,
    pub clock: SharedClock,
}

pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub capabilities: Vec<String>,
    pre: ChannelAdapterPre<HostState>,
}

pub struct Runtime {
    engine: Engine,
    plugins: HashMap<String, Arc<LoadedPlugin>>,
    services: HostServices,
    limits: Limits,
    ticker: Arc<std::sync::atomic::AtomicBool>,
}

/// Per-call state inside a wasmtime `Store`.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    account: Arc<AccountCtx>,
    plugin: Arc<str>,
    services: HostServices,
    started: Instant,
    /// Time spent inside host imports, excluded from the guest's deadline.
    host_time: Duration,
    budget: Duration,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl Runtime {
    pub fn new(services: HostServices, limits: Limits) -> Result<Self, LoadError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(256)
            .total_tables(512)
            .max_memory_size(limits.memory_bytes);
        let mut cfg = EngineConfig::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg).map_err(|e| LoadError::Dir { path: "<engine>".into(), reason: e.to_string() })?;
        let ticker = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (weak, alive) = (engine.weak(), ticker.clone());
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while alive.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawn epoch thread");
        Ok(Self { engine, plugins: HashMap::new(), services, limits, ticker })
    }

    fn linker(&self) -> wasmtime::Result<Linker<HostState>> {
        let mut linker = Linker::new(&self.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        ChannelAdapter::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        Ok(linker)
    }

    /// Loads every `NAME.wasm` that has a `NAME.toml` manifest beside it. A broken plugin is
    /// reported and skipped; the others load.
    pub async fn load_dir(&mut self, dir: &Path) -> Vec<LoadError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return vec![LoadError::Dir { path: dir.display().to_string(), reason: e.to_string() }],
        };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        let mut errors = Vec::new();
        for p in paths {
            if let Err(e) = self.load(&p).await {
                errors.push(e);
            }
        }
        errors
    }

    /// Compiles and validates one plugin: manifest, imports, exports, and that its own
    /// `describe` agrees with its manifest.
    pub async fn load(&mut self, wasm: &Path) -> Result<(), LoadError> {
        let err = |reason: String| LoadError::Plugin { path: wasm.display().to_string(), reason };
        let manifest_path = wasm.with_extension("toml");
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| err(format!("manifest {}: {e}", manifest_path.display())))?;
        let manifest = Manifest::parse(&text).map_err(|e| err(format!("manifest: {e}")))?;
        let component = Component::from_file(&self.engine, wasm).map_err(|e| err(format!("compile: {e:#}")))?;
        let linker = self.linker().map_err(|e| err(e.to_string()))?;
        let pre = linker.instantiate_pre(&component).map_err(|e| err(format!("imports: {e:#}")))?;
        let pre = ChannelAdapterPre::new(pre).map_err(|e| err(format!("exports (not a channel-adapter?): {e:#}")))?;
        let probe = Arc::new(AccountCtx::for_inspection(&manifest.name));
        let (mut store, inst) = self.instantiate(&pre, &probe).await.map_err(|e| err(format!("instantiate: {e}")))?;
        let info = inst
            .switchboard_plugin_channel()
            .call_describe(&mut store)
            .await
            .map_err(|e| err(format!("describe: {}", self.classify(e))))?;
        if info.name != manifest.name || info.verify_scheme != manifest.verify {
            return Err(err(format!(
                "describe() says name `{}` / verify `{}`, manifest says `{}` / `{}`",
                info.name, info.verify_scheme, manifest.name, manifest.verify
            )));
        }
        tracing::info!(plugin = %manifest.name, version = %manifest.version, path = %wasm.display(), "plugin loaded");
        let plugin = LoadedPlugin { manifest, capabilities: info.capabilities, pre };
        self.plugins.insert(plugin.manifest.name.clone(), Arc::new(plugin));
        Ok(())
    }

    pub fn manifests(&self) -> HashMap<String, Manifest> {
        self.plugins.iter().map(|(k, v)| (k.clone(), v.manifest.clone())).collect()
    }

    /// The capabilities a plugin's `describe` reported at load.
    pub fn capabilities(&self, plugin: &str) -> &[String] {
        self.plugins.get(plugin).map_or(&[], |p| p.capabilities.as_slice())
    }

    pub fn plugin_names(&self) -> Vec<String> {
        let mut v: Vec<_> = self.plugins.keys().cloned().collect();
        v.sort();
        v
    }

    async fn instance(&self, account: &Arc<AccountCtx>) -> Result<(WasmStore<HostState>, ChannelAdapter), CallError> {
        let plugin = self.plugins.get(&account.plugin).ok_or_else(|| CallError::NotLoaded(account.plugin.clone()))?;
        self.instantiate(&plugin.pre, account).await
    }

    async fn instantiate(
        &self,
        pre: &ChannelAdapterPre<HostState>,
        account: &Arc<AccountCtx>,
    ) -> Result<(WasmStore<HostState>, ChannelAdapter), CallError> {
        let state = HostState {
            wasi: WasiCtxBuilder::new().allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false).build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(self.limits.memory_bytes).instances(64).tables(64).build(),
            account: account.clone(),
            plugin: Arc::from(account.plugin.as_str()),
            services: self.services.clone(),
            started: Instant::now(),
            host_time: Duration::ZERO,
            budget: self.limits.call_deadline,
        };
        let mut store = WasmStore::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(ticks(self.limits.call_deadline));
        store.epoch_deadline_callback(|ctx| {
            let s = ctx.data();
            let used = s.started.elapsed().saturating_sub(s.host_time);
            if used >= s.budget {
                return Err(wasmtime::Error::msg(DEADLINE_MSG));
            }
            Ok(UpdateDeadline::Continue(ticks(s.budget - used)))
        });
        let instance = pre.instantiate_async(&mut store).await.map_err(|e| self.classify(e))?;
        Ok((store, instance))
    }

    fn classify(&self, e: wasmtime::Error) -> CallError {
        if format!("{e:#}").contains(DEADLINE_MSG) {
            CallError::Deadline(self.limits.call_deadline)
        } else {
            CallError::Trap(format!("{e:#}"))
        }
    }

    pub async fn handshake(&self, account: &Arc<AccountCtx>, req: HttpRequest) -> Result<Option<HttpResponse>, CallError> {
        let (mut store, inst) = self.instance(account).await?;
        let r = inst.switchboard_plugin_channel().call_handshake(&mut store, &convert::request_to_wit(req)).await;
        Ok(r.map_err(|e| self.classify(e))?.map(convert::response_from_wit))
    }

    /// Parses a verified webhook. The inner `Err` is the plugin saying the body is not valid.
    pub async fn parse_inbound(
        &self,
        account: &Arc<AccountCtx>,
        req: HttpRequest,
    ) -> Result<Result<Vec<InboundEvent>, String>, CallError> {
        let (mut store, inst) = self.instance(account).await?;
        let r = inst.switchboard_plugin_channel().call_parse_inbound(&mut store, &convert::request_to_wit(req)).await;
        Ok(match r.map_err(|e| self.classify(e))? {
            Ok(events) => Ok(events.into_iter().map(convert::event_from_wit).collect()),
            Err(e) => Err(convert::parse_error_text(e)),
        })
    }

    pub async fn deliver(
        &self,
        account: &Arc<AccountCtx>,
        msg: convert::Outbound<'_>,
    ) -> Result<DeliveryOutcome, CallError> {
        let (mut store, inst) = self.instance(account).await?;
        let r = inst.switchboard_plugin_channel().call_deliver(&mut store, &convert::outbound_to_wit(msg)).await;
        Ok(convert::outcome_from_wit(r.map_err(|e| self.classify(e))?))
    }
}

pub use convert::Outbound;

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

const DEADLINE_MSG: &str = "switchboard: plugin call deadline exceeded";

fn ticks(d: Duration) -> u64 {
    (d.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}
