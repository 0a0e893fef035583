//! The plugin runtime: the only module that touches wasmtime.
//!
//! One [`Engine`] (pooling allocator, epoch interruption, compiled-code cache) for the daemon.
//! Each plugin is compiled once into an `InstancePre`; a call gets a `Store` and instance of
//! its own, never shared with another account or plugin version, and a trap poisons nothing:
//! the instance it happened in is dropped. The hot channel calls (`receive`, `deliver`) hand a
//! cleanly finished instance back for that account's next call ([`warm`]: a bounded number of
//! uses, memory and idle instances); every other call, and any call after a failure, starts
//! fresh. The pooling allocator makes fresh instances cheap too (a slot reuse, not an mmap).
//!
//! Per call: a guest-time deadline (epochs; time in host imports excluded), a wall-clock cap,
//! a memory cap and instance/table/memory counts ([`limits`]). A call that hits one fails
//! alone with a typed [`CallError`] and is counted in [`Runtime::stats`].
//!
//! Plugins get only our `host` interface plus the WASI a Rust `std` guest links, with nothing
//! behind it ([`wasi`]): no filesystem, sockets, clocks or environment.
//!
//! Plugins live in an atomically swapped map of `Arc<LoadedPlugin>`: a call holds the `Arc` of
//! the version it started on, so a reload ([`watch`]) never disturbs calls in flight.

mod artifacts;
pub mod bindings;
#[doc(hidden)]
pub mod bench;
mod convert;
mod host_impl;
mod inspect;
pub mod limits;
mod load;
pub mod manifest;
pub mod watch;
mod warm;
mod wasi;

use crate::accounts::AccountCtx;
use crate::clock::SharedClock;
use crate::egress::Egress;
use crate::model::{DeliveryOutcome, HttpRequest, HttpResponse, InboundEvent, ToolError, ToolInfo, PollBatch};
use crate::store::Store;
use bindings::{AgentTool, AgentToolPre, ChannelAdapter, ChannelAdapterPre};
use limits::{CallLimiter, Counters, Failure};
use manifest::Manifest;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{
    Config as EngineConfig, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
    Store as WasmStore, Trap, UpdateDeadline,
};
use wasmtime_wasi::WasiCtx;

pub use convert::Outbound;
pub use inspect::{Described, Inspection, Item, inspect};
pub use limits::{Limits, PluginStats, RuntimeOptions, SANDBOX_SLOTS, StatsByPlugin, delivery_capacity_warning};

/// How often the epoch advances; the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Concurrent plugin instances the pool holds (calls beyond it fail, they do not queue).
const POOL_COMPONENT_INSTANCES: u32 = limits::SANDBOX_SLOTS as u32;
/// Per linear memory / table kept resident between instances (see `with_engine`).
const KEEP_RESIDENT_BYTES: usize = 2 << 20;
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;
/// Slots whose leftover pages are `madvise`d together.
const DECOMMIT_BATCH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {reason}")]
    Plugin { path: String, reason: String },
    #[error("plugins dir {path}: {reason}")]
    Dir { path: String, reason: String },
}

/// A failed plugin call. Only that call fails; the message it was for is retried or
/// dead-lettered as usual.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("plugin `{0}` is not loaded")]
    NotLoaded(String),
    #[error("plugin exceeded its {0:?} deadline")]
    Deadline(Duration),
    #[error("plugin ran out of memory (cap {} MiB)", .0 >> 20)]
    OutOfMemory(usize),
    #[error("plugin overflowed its stack")]
    StackOverflow,
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin returned an oversized result: {0}")]
    OutputTooLarge(String),
    #[error("plugin `{plugin}` is not a {expected} plugin")]
    WrongWorld { plugin: String, expected: &'static str },
    /// Every sandbox slot is in use (the pooling allocator is full and nothing is parked):
    /// the host's capacity, not the plugin's fault. Webhooks answer 503 so the provider
    /// retries; deliveries wait without spending an attempt.
    #[error("no sandbox instance is free right now ({0})")]
    Busy(String),
}

impl CallError {
    fn failure(&self) -> Option<Failure> {
        Some(match self {
            CallError::NotLoaded(_) | CallError::WrongWorld { .. } | CallError::Busy(_) => return None,
            CallError::Deadline(_) => Failure::Deadline,
            CallError::OutOfMemory(_) => Failure::OutOfMemory,
            CallError::StackOverflow => Failure::StackOverflow,
            CallError::Trap(_) => Failure::Trap,
            CallError::OutputTooLarge(_) => Failure::BadOutput,
        })
    }
}

/// What the host offers plugins, shared by all calls.
#[derive(Clone)]
pub struct HostServices {
    pub store: Store,
    pub egress: Egress,
    pub clock: SharedClock,
}

/// One loaded version of a plugin.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub capabilities: Arc<[String]>,
    pub limits: Limits,
    /// The `.wasm` it was loaded from.
    pub source: PathBuf,
    /// SHA-256 of the wasm bytes and the manifest text: a reload of identical files is a no-op.
    pub digest: String,
    /// For an agent tool: what its `describe` said at load (with the manifest's approval flag).
    pub tool: Option<ToolInfo>,
    pre: Pre,
    counters: Arc<Counters>,
}

/// A compiled plugin ready to instantiate, by world.
enum Pre {
    Channel(ChannelAdapterPre<HostState>),
    Tool(AgentToolPre<HostState>),
}

impl Pre {
    async fn instantiate(&self, store: &mut WasmStore<HostState>) -> wasmtime::Result<Instance> {
        match self {
            Pre::Channel(pre) => pre.instantiate_async(store).await.map(Instance::Channel),
            Pre::Tool(pre) => pre.instantiate_async(store).await.map(Instance::Tool),
        }
    }
}

/// One fresh instance, by world.
enum Instance {
    Channel(ChannelAdapter),
    Tool(AgentTool),
}

/// Set (to anything but `0` or nothing) to have wasmtime write `/tmp/perf-<pid>.map`, so that
/// `perf report` names the plugins' compiled functions instead of showing bare JIT addresses
/// (a plugin built without `strip` gives them their Rust names). A profiling aid, off by
/// default: the map grows with every compiled function and is never cleaned up.
pub const PERF_MAP_ENV: &str = "SWITCHBOARD_WASM_PERFMAP";

/// The profiler [`PERF_MAP_ENV`]'s value asks for.
fn profiler(value: Option<&std::ffi::OsStr>) -> wasmtime::ProfilingStrategy {
    match value {
        Some(v) if !v.is_empty() && v != "0" => wasmtime::ProfilingStrategy::PerfMap,
        _ => wasmtime::ProfilingStrategy::None,
    }
}

pub struct Runtime {
    engine: Engine,
    /// Compiled plugins kept between loads (`RuntimeOptions::cache_dir`).
    cache: Option<Arc<artifacts::ArtifactCache>>,
    options: RuntimeOptions,
    services: HostServices,
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    counters: RwLock<HashMap<String, Arc<Counters>>>,
    /// Plugin file → why its latest version is not the one serving (cleared by a good load).
    load_errors: RwLock<BTreeMap<String, String>>,
    /// One load at a time: loads compile off the hot path, but two of the same file must not race.
    loading: tokio::sync::Mutex<()>,
    ticker: Arc<Ticker>,
    /// Instances parked between calls of one account ([`warm`]).
    warm: warm::WarmPool,
}

/// Advances the engine's epoch (the clock of guest deadlines) every [`EPOCH_TICK`] while any
/// plugin instance exists, and parks otherwise, with no timeout: an idle daemon's epoch thread
/// does not wake at all. Every store holds a [`Ticking`] from creation to drop, probes
/// included; the first one unparks the thread, and `Runtime`'s drop unparks it to end.
struct Ticker {
    active: AtomicUsize,
    alive: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

impl Ticker {
    /// `tick` advances the epoch and says whether there still is an engine to advance.
    fn start(tick: impl Fn() -> bool + Send + 'static) -> Arc<Self> {
        let ticker = Arc::new(Self { active: AtomicUsize::new(0), alive: AtomicBool::new(true), thread: OnceLock::new() });
        let t = ticker.clone();
        let handle = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while t.alive.load(Ordering::Relaxed) {
                    if t.active.load(Ordering::SeqCst) == 0 {
                        // An `enter` between the load and here leaves its unpark's token, so
                        // this returns at once; spurious returns just look again.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    if !tick() {
                        break;
                    }
                }
            })
            .expect("spawn epoch thread");
        // Before any `enter` can run: `start` has not returned the ticker yet.
        let _ = ticker.thread.set(handle.thread().clone());
        ticker
    }

    fn enter(self: &Arc<Self>) -> Ticking {
        if self.active.fetch_add(1, Ordering::SeqCst) == 0
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
        Ticking(self.clone())
    }

    fn stop(&self) {
        self.alive.store(false, Ordering::Relaxed);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
}

/// Keeps the epoch advancing while the store that holds it lives.
struct Ticking(Arc<Ticker>);

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Per-call state inside a wasmtime `Store`.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: CallLimiter,
    stderr: wasi::StderrTail,
    account: Arc<AccountCtx>,
    plugin: Arc<str>,
    /// The plugin's kv namespace for this call (the plugin's, or the account's within it when
    /// its manifest says `kv_scope = "account"`).
    kv_ns: Arc<str>,
    services: HostServices,
    started: Instant,
    /// Time spent inside host imports, excluded from the guest's deadline.
    host_time: Duration,
    budget: Duration,
    /// Keeps the epoch advancing while the store is in use (`None` while it is parked).
    ticking: Option<Ticking>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Runtime {
    /// A runtime with the same limits for every plugin and no compile cache.
    pub fn new(services: HostServices, limits: Limits) -> Result<Self, LoadError> {
        Self::with_options(services, RuntimeOptions { defaults: limits, ..Default::default() })
    }

    pub fn with_options(services: HostServices, options: RuntimeOptions) -> Result<Self, LoadError> {
        Self::with_engine(services, options, true)
    }

    /// `epochs = false` only for `benches/plugin.rs`, to measure what the guest deadline costs:
    /// without epoch interruption nothing stops a looping guest.
    fn with_engine(services: HostServices, options: RuntimeOptions, epochs: bool) -> Result<Self, LoadError> {
        let engine_err = |e: wasmtime::Error| LoadError::Dir { path: "<engine>".into(), reason: format!("{e:#}") };
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_COMPONENT_INSTANCES)
            .total_core_instances(POOL_COMPONENT_INSTANCES * 8)
            .total_memories(POOL_COMPONENT_INSTANCES * 2)
            .total_tables(POOL_COMPONENT_INSTANCES * 4)
            .max_memories_per_component(limits::MAX_MEMORIES_PER_CALL as u32)
            .max_tables_per_component(limits::MAX_TABLES_PER_CALL as u32)
            .max_core_instances_per_component(limits::MAX_INSTANCES_PER_CALL as u32)
            .max_memory_size(options.max_memory_bytes())
            // A webhook instantiates a plugin and drops it: resetting a slot with `madvise`
            // costs page faults on the next use and, with the daemon's threads on several
            // cores, a TLB shootdown (an IPI to every core) each time. Profiled under ingest
            // load that was ~40 % of the request threads' time, in the kernel. So where the
            // kernel can say which pages a call touched (PAGEMAP_SCAN, Linux >= 6.7), slots are
            // reset by rewriting only those and stay resident; elsewhere wasmtime would memset
            // the whole kept range on every drop, which costs more than it saves, so only the
            // `madvise` batching applies there.
            .linear_memory_keep_resident(if pagemap_scan_available() { KEEP_RESIDENT_BYTES } else { 0 })
            .table_keep_resident(if pagemap_scan_available() { KEEP_RESIDENT_TABLE_BYTES } else { 0 })
            .pagemap_scan(wasmtime::Enabled::Auto)
            .decommit_batch_size(DECOMMIT_BATCH);
        let mut cfg = EngineConfig::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(epochs)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        cfg.profiler(profiler(std::env::var_os(PERF_MAP_ENV).as_deref()));
        let cache = match &options.cache_dir {
            Some(dir) => Some(Arc::new(artifacts::ArtifactCache::new(dir.clone()).map_err(|e| LoadError::Dir {
                path: dir.display().to_string(),
                reason: format!("compiled-plugin cache: {e}"),
            })?)),
            None => None,
        };
        let engine = Engine::new(&cfg).map_err(engine_err)?;
        let weak = engine.weak();
        let ticker = Ticker::start(move || weak.upgrade().map(|e| e.increment_epoch()).is_some());
        Ok(Self {
            engine,
            cache,
            options,
            services,
            plugins: RwLock::default(),
            counters: RwLock::default(),
            load_errors: RwLock::default(),
            loading: tokio::sync::Mutex::new(()),
            ticker,
            warm: warm::WarmPool::default(),
        })
    }

    /// Loads every `NAME.wasm` that has a `NAME.toml` manifest beside it. A broken plugin is
    /// reported (also in [`Runtime::load_errors`]) and skipped; the others load.
    pub async fn load_dir(&mut self, dir: &Path) -> Vec<LoadError> {
        self.load_all(dir).await
    }

    /// [`Runtime::load_dir`] through a shared reference (the watcher's rescan).
    pub async fn load_all(&self, dir: &Path) -> Vec<LoadError> {
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

    pub fn manifests(&self) -> HashMap<String, Manifest> {
        read(&self.plugins).iter().map(|(k, v)| (k.clone(), v.manifest.clone())).collect()
    }

    /// The capabilities a plugin's `describe` reported at load (of the version serving now).
    pub fn capabilities(&self, plugin: &str) -> Arc<[String]> {
        read(&self.plugins).get(plugin).map_or_else(|| Arc::from([]), |p| p.capabilities.clone())
    }

    pub fn plugin_names(&self) -> Vec<String> {
        let mut v: Vec<_> = read(&self.plugins).keys().cloned().collect();
        v.sort();
        v
    }

    /// The version of `plugin` serving now.
    pub fn plugin(&self, plugin: &str) -> Option<Arc<LoadedPlugin>> {
        read(&self.plugins).get(plugin).cloned()
    }

    /// Plugin files whose latest version failed to load, with the reason. A plugin listed here
    /// may still be serving: its previous version stays until a good one replaces it.
    pub fn load_errors(&self) -> BTreeMap<String, String> {
        read(&self.load_errors).clone()
    }

    /// Call and failure counters per plugin name (they survive reloads).
    pub fn stats(&self) -> StatsByPlugin {
        read(&self.counters).iter().map(|(k, c)| (k.clone(), c.snapshot())).collect()
    }

    /// Compile-cache hits and misses since start (`None` without a cache).
    pub fn cache_stats(&self) -> Option<(usize, usize)> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Compiles `wasm` through the cache if there is one, on a blocking thread (compiling is
    /// CPU-bound; a cache hit reads a file). The outer `Err` is the blocking task panicking.
    async fn compile(&self, wasm: Vec<u8>) -> Result<wasmtime::Result<Component>, tokio::task::JoinError> {
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        tokio::task::spawn_blocking(move || compile(&engine, cache.as_deref(), &wasm)).await
    }

    fn counters(&self, plugin: &str) -> Arc<Counters> {
        if let Some(c) = read(&self.counters).get(plugin) {
            return c.clone();
        }
        write(&self.counters).entry(plugin.to_string()).or_default().clone()
    }

    pub async fn handshake(&self, account: &Arc<AccountCtx>, req: HttpRequest) -> Result<Option<HttpResponse>, CallError> {
        let req = convert::request_to_wit(req);
        let mut call = self.begin(account).await?;
        let r = call.run(|s, c| c.call_handshake(s, &req)).await;
        let r = call.finish(r)?;
        call.check(r.as_ref().map_or(Ok(()), convert::check_response))?;
        Ok(r.map(convert::response_from_wit))
    }

    /// Parses a verified webhook. The inner `Err` is the plugin saying the body is not valid.
    pub async fn parse_inbound(
        &self,
        account: &Arc<AccountCtx>,
        req: HttpRequest,
    ) -> Result<Result<Vec<InboundEvent>, String>, CallError> {
        let req = convert::request_to_wit(req);
        let mut call = self.begin_warm(account).await?;
        let r = call.parse_inbound(&req).await?;
        self.park(call);
        Ok(r)
    }

    /// One verified webhook delivery: the plugin's `handshake` (a signed challenge such as
    /// Slack's `url_verification` is answered, nothing else happens), else its `parse-inbound`.
    /// A plugin whose manifest says `signed_handshakes = false` goes straight to `parse-inbound`.
    /// Both run on **one** instance: they see the same request of the same account, so sharing
    /// leaks nothing, and the webhook path pays for one instantiation instead of two. Each call
    /// gets the full guest-time budget.
    pub async fn receive(&self, account: &Arc<AccountCtx>, req: HttpRequest) -> Result<Received, CallError> {
        let req = convert::request_to_wit(req);
        let mut call = self.begin_warm(account).await?;
        if call.plugin.manifest.answers_signed_handshakes() {
            let r = call.run(|s, c| c.call_handshake(s, &req)).await;
            if let Some(answer) = call.finish(r)? {
                call.check(convert::check_response(&answer))?;
                self.park(call);
                return Ok(Received::Answered(convert::response_from_wit(answer)));
            }
            call.rearm();
        }
        let parsed = call.parse_inbound(&req).await?;
        self.park(call);
        Ok(Received::Parsed(parsed))
    }

    pub async fn deliver(&self, account: &Arc<AccountCtx>, msg: convert::Outbound<'_>) -> Result<DeliveryOutcome, CallError> {
        let msg = convert::outbound_to_wit(msg);
        let mut call = self.begin_warm(account).await?;
        let r = call.run(|s, c| c.call_deliver(s, &msg)).await;
        let outcome = call.finish(r)?;
        call.check(convert::check_outcome(&outcome))?;
        self.park(call);
        Ok(convert::outcome_from_wit(outcome))
    }

    /// One `poll` of a polling channel (Telegram `getUpdates`) after `cursor`. The inner `Err`
    /// is the plugin's own error (the channel does not poll, the provider failed, ...).
    pub async fn poll(&self, account: &Arc<AccountCtx>, cursor: Option<String>) -> Result<Result<PollBatch, String>, CallError> {
        let mut call = self.begin(account).await?;
        let r = call.run(|s, c| c.call_poll(s, cursor.as_deref())).await;
        Ok(match call.finish(r)? {
            Ok(batch) => {
                call.check(convert::check_events(&batch.events))?;
                call.check(match &batch.cursor {
                    Some(c) if c.len() > convert::MAX_ID_BYTES => Err(format!("poll cursor of {} bytes (limit {})", c.len(), convert::MAX_ID_BYTES)),
                    _ => Ok(()),
                })?;
                Ok(PollBatch { events: batch.events.into_iter().map(convert::event_from_wit).collect(), cursor: batch.cursor })
            }
            Err(e) => Err(e),
        })
    }

    /// An instance of the account's plugin as it is loaded now: one this account's earlier
    /// call parked ([`warm`]), re-armed like new, else a fresh one. Pair with [`Runtime::park`].
    async fn begin_warm(&self, account: &Arc<AccountCtx>) -> Result<Call, CallError> {
        let plugin = self.plugin(&account.plugin).ok_or_else(|| CallError::NotLoaded(account.plugin.clone()))?;
        match self.warm.take(&plugin, account) {
            Some(mut call) => {
                plugin.counters.call();
                call.uses += 1;
                let state = call.store.data_mut();
                state.ticking = Some(self.ticker.enter());
                state.stderr.clear();
                state.limiter.memory_refused = false;
                call.rearm();
                Ok(call)
            }
            None => self.instantiate(plugin, account).await,
        }
    }

    /// Instances in a call now (each keeps the epoch ticking), and instances parked between
    /// calls (which do not).
    pub fn instance_counts(&self) -> (usize, usize) {
        (self.ticker.active.load(Ordering::SeqCst), self.warm.len())
    }

    /// Hands an instance whose call ended cleanly back for the account's next call.
    fn park(&self, mut call: Call) {
        call.store.data_mut().ticking = None;
        self.warm.put(call);
    }

    /// A fresh instance of the account's plugin, as it is loaded now.
    async fn begin(&self, account: &Arc<AccountCtx>) -> Result<Call, CallError> {
        let plugin = self.plugin(&account.plugin).ok_or_else(|| CallError::NotLoaded(account.plugin.clone()))?;
        self.instantiate(plugin, account).await
    }

    async fn instantiate(&self, plugin: Arc<LoadedPlugin>, account: &Arc<AccountCtx>) -> Result<Call, CallError> {
        plugin.counters.call();
        let mut store = self.new_store(&plugin, account);
        let mut inst = plugin.pre.instantiate(&mut store).await;
        if inst.as_ref().is_err_and(pool_full) && self.warm.len() > 0 {
            // Parked instances give way to calls.
            self.warm.clear();
            store = self.new_store(&plugin, account);
            inst = plugin.pre.instantiate(&mut store).await;
        }
        let mut call = Call { store, plugin, inst: None, uses: 1 };
        match inst {
            Ok(i) => call.inst = Some(i),
            Err(e) if pool_full(&e) => return Err(call.count(CallError::Busy(e.to_string()))),
            Err(e) => return Err(call.fail(e)),
        }
        Ok(call)
    }

    /// Every loaded agent tool, by name.
    pub fn tools(&self) -> Vec<ToolInfo> {
        let mut v: Vec<ToolInfo> = read(&self.plugins).values().filter_map(|p| p.tool.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Runs agent tool `ctx.plugin` on `args` (JSON) in a fresh sandboxed instance. The inner
    /// `Err` is the tool's own answer (bad arguments, a failure it reports).
    pub async fn invoke_tool(&self, ctx: &Arc<AccountCtx>, args: String) -> Result<Result<String, ToolError>, CallError> {
        let mut call = self.begin(ctx).await?;
        let r = call.run_tool(|s, t| t.call_invoke(s, &args)).await?;
        let r = call.finish(r)?;
        if let Ok(out) = &r
            && out.len() > convert::MAX_TOOL_RESULT_BYTES
        {
            return Err(call.count(CallError::OutputTooLarge(format!(
                "tool result of {} bytes (limit {})",
                out.len(),
                convert::MAX_TOOL_RESULT_BYTES
            ))));
        }
        Ok(r.map_err(convert::tool_error_from_wit))
    }

    fn new_store(&self, plugin: &LoadedPlugin, account: &Arc<AccountCtx>) -> WasmStore<HostState> {
        let kv_ns = plugin.manifest.kv_scope.namespace(&plugin.manifest.name, &account.id);
        new_store(&self.engine, &self.ticker, &self.services, &plugin.limits, account, kv_ns)
    }
}

/// Whether the kernel has the PAGEMAP_SCAN ioctl (Linux 6.7): wasmtime's `Enabled::Auto` uses
/// it then; the keep-resident sizes above only pay off with it.
fn pagemap_scan_available() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else { return false };
    kernel_at_least(&release, (6, 7))
}

fn kernel_at_least(release: &str, want: (u32, u32)) -> bool {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    matches!((major, minor), (Some(a), Some(b)) if (a, b) >= want)
}

fn compile(engine: &Engine, cache: Option<&artifacts::ArtifactCache>, wasm: &[u8]) -> wasmtime::Result<Component> {
    match cache {
        Some(cache) => cache.component(engine, wasm),
        None => Component::from_binary(engine, wasm),
    }
}

fn new_store(
    engine: &Engine,
    ticker: &Arc<Ticker>,
    services: &HostServices,
    limits: &Limits,
    account: &Arc<AccountCtx>,
    kv_ns: String,
) -> WasmStore<HostState> {
    let stderr = wasi::StderrTail::default();
    let state = HostState {
        wasi: wasi::ctx(stderr.clone()),
        table: ResourceTable::new(),
        limiter: CallLimiter::new(limits.memory_bytes),
        stderr,
        account: account.clone(),
        plugin: Arc::from(account.plugin.as_str()),
        kv_ns: Arc::from(kv_ns),
        services: services.clone(),
        started: Instant::now(),
        host_time: Duration::ZERO,
        budget: limits.call_deadline,
        ticking: Some(ticker.enter()),
    };
    let mut store = WasmStore::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(ticks(limits.call_deadline));
    store.epoch_deadline_callback(|ctx| {
        let s = ctx.data();
        let used = s.started.elapsed().saturating_sub(s.host_time);
        if used >= s.budget {
            return Err(wasmtime::Error::msg(DEADLINE_MSG));
        }
        Ok(UpdateDeadline::Continue(ticks(s.budget - used)))
    });
    store
}

/// What a plugin made of one verified webhook ([`Runtime::receive`]).
#[derive(Debug)]
pub enum Received {
    /// A signed handshake: send this response, store nothing.
    Answered(HttpResponse),
    /// Events, or the plugin's reason the body is not a valid webhook.
    Parsed(Result<Vec<InboundEvent>, String>),
}

/// One call in progress: its store, its instance, and the plugin version it runs on.
struct Call {
    store: WasmStore<HostState>,
    plugin: Arc<LoadedPlugin>,
    inst: Option<Instance>,
    /// Calls this instance has started ([`warm::MAX_USES`]).
    uses: u32,
}

type Channel = bindings::channel::Guest;
type Tool = bindings::tool::Guest;

impl Call {
    /// Runs one export under the wall-clock cap.
    async fn run<'a, R, F, Fut>(&'a mut self, f: F) -> Result<wasmtime::Result<R>, tokio::time::error::Elapsed>
    where
        F: FnOnce(&'a mut WasmStore<HostState>, &'a Channel) -> Fut,
        Fut: std::future::Future<Output = wasmtime::Result<R>> + 'a,
    {
        let Some(Instance::Channel(inst)) = self.inst.as_ref() else {
            // A tool loaded under a name an account uses as its channel.
            let e = CallError::WrongWorld { plugin: self.plugin.manifest.name.clone(), expected: "channel" };
            return Ok(Err(wasmtime::Error::msg(e.to_string())));
        };
        let deadline = self.wall_deadline();
        tokio::time::timeout_at(deadline, f(&mut self.store, inst.switchboard_plugin_channel())).await
    }

    /// When this export call's wall-clock cap runs out: counted from when the call was armed
    /// (store creation or [`Call::rearm`]), whose clock reading it reuses rather than taking
    /// another on every call.
    fn wall_deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.store.data().started + self.plugin.limits.call_wall_time)
    }

    /// [`Call::run`] for an agent tool's export.
    async fn run_tool<'a, R, F, Fut>(&'a mut self, f: F) -> Result<Result<wasmtime::Result<R>, tokio::time::error::Elapsed>, CallError>
    where
        F: FnOnce(&'a mut WasmStore<HostState>, &'a Tool) -> Fut,
        Fut: std::future::Future<Output = wasmtime::Result<R>> + 'a,
    {
        let Some(Instance::Tool(inst)) = self.inst.as_ref() else {
            return Err(CallError::WrongWorld { plugin: self.plugin.manifest.name.clone(), expected: "agent-tool" });
        };
        let deadline = self.wall_deadline();
        Ok(tokio::time::timeout_at(deadline, f(&mut self.store, inst.switchboard_plugin_tool())).await)
    }

    /// `parse-inbound` with the host's checks on what it returned.
    async fn parse_inbound(&mut self, req: &bindings::wit::HttpRequest) -> Result<Result<Vec<InboundEvent>, String>, CallError> {
        let r = self.run(|s, c| c.call_parse_inbound(s, req)).await;
        Ok(match self.finish(r)? {
            Ok(events) => {
                self.check(convert::check_event_sizes(&events))?;
                // Ids and conversations come from the webhook: one too long to store is the
                // request's fault (a 400 the provider does not retry forever), not a plugin
                // failure (a 500).
                match convert::check_event_ids(&events) {
                    Ok(()) => Ok(events.into_iter().map(convert::event_from_wit).collect()),
                    Err(e) => Err(format!("the webhook cannot be stored: {e}")),
                }
            }
            Err(e) => Err(convert::parse_error_text(e)),
        })
    }

    /// A fresh guest-time budget for the next export call on this instance.
    fn rearm(&mut self) {
        let budget = self.plugin.limits.call_deadline;
        let state = self.store.data_mut();
        state.started = Instant::now();
        state.host_time = Duration::ZERO;
        self.store.set_epoch_deadline(ticks(budget));
    }

    fn finish<R>(&mut self, r: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>) -> Result<R, CallError> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => Err(self.count(CallError::Deadline(self.plugin.limits.call_wall_time))),
        }
    }

    /// Applies the host's limits on what the plugin returned.
    fn check(&self, r: Result<(), String>) -> Result<(), CallError> {
        r.map_err(|e| self.count(CallError::OutputTooLarge(e)))
    }

    fn fail(&mut self, e: wasmtime::Error) -> CallError {
        let err = classify(&e, self.store.data(), &self.plugin.limits);
        self.count(err)
    }

    fn count(&self, err: CallError) -> CallError {
        if let Some(f) = err.failure() {
            self.plugin.counters.failed(f);
        }
        let (plugin, account) = (&*self.store.data().plugin, self.store.data().account.id.as_str());
        tracing::warn!(plugin, account, error = %err, "plugin call failed");
        err
    }
}

/// Names what stopped a call: the deadline, the memory cap, the stack, or a plain trap (with the
/// start of the plugin's stderr, where a Rust panic message lands).
/// The pooling allocator had no slot left for an instance (or one of its memories, tables or
/// stacks).
fn pool_full(e: &wasmtime::Error) -> bool {
    e.chain().any(|c| c.is::<wasmtime::PoolConcurrencyLimitError>())
}

fn classify(e: &wasmtime::Error, state: &HostState, limits: &Limits) -> CallError {
    if format!("{e:#}").contains(DEADLINE_MSG) {
        return CallError::Deadline(limits.call_deadline);
    }
    if state.limiter.memory_refused {
        return CallError::OutOfMemory(limits.memory_bytes);
    }
    let trap = e.downcast_ref::<Trap>();
    if trap == Some(&Trap::StackOverflow) {
        return CallError::StackOverflow;
    }
    let what = trap.map_or_else(|| e.root_cause().to_string(), Trap::to_string);
    let stderr = state.stderr.text();
    CallError::Trap(if stderr.is_empty() { what } else { format!("{what}; stderr: {stderr}") })
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

const DEADLINE_MSG: &str = "switchboard: plugin call deadline exceeded";

fn ticks(d: Duration) -> u64 {
    (d.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}

#[cfg(test)]
mod tests {
    use super::Ticker;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn the_perf_map_is_written_only_when_asked_for() {
        use std::ffi::OsStr;
        use wasmtime::ProfilingStrategy::{None as Off, PerfMap};
        assert_eq!(super::profiler(None), Off);
        assert_eq!(super::profiler(Some(OsStr::new(""))), Off);
        assert_eq!(super::profiler(Some(OsStr::new("0"))), Off);
        assert_eq!(super::profiler(Some(OsStr::new("1"))), PerfMap);
    }

    /// Polls `count` until `ok` holds (5 s at most): no fixed waits.
    fn wait_until(count: &AtomicU64, ok: impl Fn(u64) -> bool) -> u64 {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let n = count.load(Ordering::SeqCst);
            if ok(n) {
                return n;
            }
            assert!(Instant::now() < end, "epoch count stuck at {n}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_epoch_advances_only_while_a_store_exists_and_resumes_with_the_next() {
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let ticker = Ticker::start(move || {
            t.fetch_add(1, Ordering::SeqCst);
            true
        });
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "no store, no ticks");

        let store = ticker.enter();
        wait_until(&ticks, |n| n >= 3);
        drop(store);
        // At most the tick in progress lands after the drop.
        std::thread::sleep(Duration::from_millis(20));
        let parked = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks.load(Ordering::SeqCst), parked, "ticking after the last store went");

        // The parked thread has no timeout to fall back on: the next store must wake it.
        let again = ticker.enter();
        wait_until(&ticks, |n| n >= parked + 3);
        drop(again);
        ticker.stop();
    }

    #[test]
    fn kernel_releases_are_compared_by_major_and_minor() {
        use super::kernel_at_least;
        assert!(kernel_at_least("6.18.44-fc-v657\n", (6, 7)));
        assert!(kernel_at_least("6.7.0", (6, 7)));
        assert!(kernel_at_least("7.0", (6, 7)));
        assert!(!kernel_at_least("6.1.0-28-amd64", (6, 7)));
        assert!(!kernel_at_least("5.15.0", (6, 7)));
        assert!(!kernel_at_least("garbage", (6, 7)));
    }
}
