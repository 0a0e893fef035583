//! What one plugin call may consume, and what happened to the calls it made.
//!
//! Limits are per plugin: the operator's `[plugins.<name>]` table overrides the defaults. The
//! pooling allocator is sized for the largest memory any plugin may have; each call's
//! [`CallLimiter`] then holds that call to its own plugin's cap and remembers whether the cap
//! was hit, so a trap that follows can be reported as out-of-memory rather than a bare trap.

use crate::config::Config;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Core instances, tables and memories one call may create. A Rust component needs a handful
/// of each (its own module plus the adapter shims); these bounds only stop a hostile
/// component from exhausting the shared pool.
pub const MAX_INSTANCES_PER_CALL: usize = 32;
pub const MAX_TABLES_PER_CALL: usize = 32;
pub const MAX_MEMORIES_PER_CALL: usize = 8;
/// Elements of one table (function-pointer tables of big guests stay far below).
pub const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Plugin instances that can exist at once (the pooling allocator's slots). A call that finds
/// none free is `CallError::Busy`: it does not queue.
pub const SANDBOX_SLOTS: usize = 256;

/// A warning if `[delivery]` lets deliveries take most of the sandbox: each delivery holds an
/// instance across the provider's round trip, up to `workers × batch` at once, and webhooks,
/// polls and tool calls need the rest (a webhook that finds none free is answered 503
/// `sandbox_busy`, which providers retry, but still).
pub fn delivery_capacity_warning(workers: usize, batch: usize) -> Option<String> {
    let held = workers.saturating_mul(batch);
    let share = SANDBOX_SLOTS * 3 / 4;
    (held > share).then(|| {
        format!(
            "workers × batch = {held}: that many deliveries may each hold a plugin instance across the provider's round trip, \
             of the {SANDBOX_SLOTS} the sandbox has, and webhooks could find none free (503 sandbox_busy); keep it at {share} or below"
        )
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Guest CPU time per call; time spent in host imports (HTTP, kv writes) does not count.
    pub call_deadline: Duration,
    /// Wall-clock time per call including host imports: bounds a guest that keeps the host busy
    /// (an endless series of slow allowed fetches) without spending guest time.
    pub call_wall_time: Duration,
    /// Linear memory cap per call (all memories of the instance together).
    pub memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { call_deadline: Duration::from_millis(100), call_wall_time: Duration::from_secs(60), memory_bytes: 64 << 20 }
    }
}

/// How the daemon's runtime is set up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Limits of plugins without their own entry in `per_plugin`.
    pub defaults: Limits,
    /// Plugin name → its limits.
    pub per_plugin: HashMap<String, Limits>,
    /// Where compiled components are cached (keyed by a hash of the wasm bytes, the engine
    /// settings and the wasmtime version), so restarts don't recompile. `None`: no cache.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeOptions {
    /// Defaults, the operator's `[plugins.<name>]` overrides, and a cache under `data_dir`.
    pub fn from_config(config: &Config) -> Self {
        let defaults = Limits::default();
        let per_plugin = config
            .plugins
            .iter()
            .map(|(name, p)| {
                let l = Limits {
                    call_deadline: p.call_deadline_ms.map_or(defaults.call_deadline, Duration::from_millis),
                    memory_bytes: p.memory_mib.map_or(defaults.memory_bytes, |m| (m as usize) << 20),
                    ..defaults.clone()
                };
                (name.clone(), l)
            })
            .collect();
        Self { defaults, per_plugin, cache_dir: Some(config.data_dir.join("wasm-cache")) }
    }

    pub fn limits_for(&self, plugin: &str) -> Limits {
        self.per_plugin.get(plugin).unwrap_or(&self.defaults).clone()
    }

    /// The largest memory any plugin may use: the size of a pooling-allocator memory slot.
    pub fn max_memory_bytes(&self) -> usize {
        self.per_plugin.values().map(|l| l.memory_bytes).chain([self.defaults.memory_bytes]).max().unwrap_or(64 << 20)
    }
}

/// `StoreLimits` plus a record of whether a memory growth was refused during this call.
pub(crate) struct CallLimiter {
    inner: StoreLimits,
    pub memory_refused: bool,
    /// The largest linear memory granted so far (whether the instance may be parked).
    pub largest_memory: usize,
}

impl CallLimiter {
    pub fn new(memory_bytes: usize) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(MAX_INSTANCES_PER_CALL)
            .tables(MAX_TABLES_PER_CALL)
            .memories(MAX_MEMORIES_PER_CALL)
            .build();
        Self { inner, memory_refused: false, largest_memory: 0 }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.memory_refused |= !ok;
        if ok {
            self.largest_memory = self.largest_memory.max(desired);
        }
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Why a call failed, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    Deadline,
    OutOfMemory,
    StackOverflow,
    Trap,
    BadOutput,
}

/// Counters of one plugin (by name; they survive reloads).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    deadline: AtomicU64,
    out_of_memory: AtomicU64,
    stack_overflow: AtomicU64,
    trap: AtomicU64,
    bad_output: AtomicU64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
}

impl Counters {
    pub fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, f: Failure) {
        let c = match f {
            Failure::Deadline => &self.deadline,
            Failure::OutOfMemory => &self.out_of_memory,
            Failure::StackOverflow => &self.stack_overflow,
            Failure::Trap => &self.trap,
            Failure::BadOutput => &self.bad_output,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reloaded(&self, ok: bool) {
        let c = if ok { &self.reloads } else { &self.reload_failures };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> PluginStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PluginStats {
            calls: g(&self.calls),
            deadline: g(&self.deadline),
            out_of_memory: g(&self.out_of_memory),
            stack_overflow: g(&self.stack_overflow),
            trap: g(&self.trap),
            bad_output: g(&self.bad_output),
            reloads: g(&self.reloads),
            reload_failures: g(&self.reload_failures),
        }
    }
}

/// What [`super::Runtime::stats`] reports per plugin. Failures are by kind; `calls` counts
/// every call started (including the failed ones).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PluginStats {
    pub calls: u64,
    pub deadline: u64,
    pub out_of_memory: u64,
    pub stack_overflow: u64,
    pub trap: u64,
    /// Results the host refused (over its size limits).
    pub bad_output: u64,
    pub reloads: u64,
    pub reload_failures: u64,
}

impl PluginStats {
    pub fn failures(&self) -> u64 {
        self.deadline + self.out_of_memory + self.stack_overflow + self.trap + self.bad_output
    }
}

pub type StatsByPlugin = BTreeMap<String, PluginStats>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_overrides_apply_to_their_plugin_only() {
        let cfg = Config::parse(
            "data_dir = \"/d\"\n[plugins.slow]\ncall_deadline_ms = 250\nmemory_mib = 128\n",
            "t",
        )
        .unwrap();
        let o = RuntimeOptions::from_config(&cfg);
        assert_eq!(o.limits_for("slow").call_deadline, Duration::from_millis(250));
        assert_eq!(o.limits_for("slow").memory_bytes, 128 << 20);
        assert_eq!(o.limits_for("other"), Limits::default());
        assert_eq!(o.max_memory_bytes(), 128 << 20);
        assert_eq!(o.cache_dir.as_deref(), Some(std::path::Path::new("/d/wasm-cache")));
    }

    #[test]
    fn a_refused_growth_is_remembered() {
        let mut l = CallLimiter::new(1 << 20);
        assert!(l.memory_growing(0, 1 << 19, None).unwrap());
        assert!(!l.memory_refused);
        assert!(!l.memory_growing(1 << 19, 2 << 20, None).unwrap());
        assert!(l.memory_refused);
    }
}
