//! The shared state every service and handler works with.

use crate::accounts::Accounts;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::redact::Secret;
use crate::runtime::Runtime;
use crate::store::Store;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use tokio::sync::Notify;

pub struct App {
    /// The config the daemon started with. A reload (SIGHUP) changes what [`App::current_config`]
    /// returns, `accounts`, `delivery` and `api_tokens`; what needs a restart (listen,
    /// data_dir, plugins_dir, max_body_bytes, dedupe TTL, workers, `[plugins]`) stays as here.
    pub config: Config,
    pub store: Store,
    pub runtime: Runtime,
    /// Swapped whole by a reload.
    pub accounts: Accounts,
    pub clock: SharedClock,
    /// Bearer tokens accepted by `/v1`. Empty: the API refuses every call (fail closed).
    pub api_tokens: ArcSwap<Vec<Secret>>,
    /// Wakes the outbox workers when a message is enqueued.
    pub outbox_wake: Notify,
    /// Wake-ups of the agent side (long-polls, push worker, approvals).
    pub agent: crate::agent::AgentState,
    /// Per-account retry policy, rate limiter and circuit breaker (swapped by a reload).
    pub delivery: crate::outbox::policy::Policies,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The config as last (re)loaded, with the restart-only settings of `config`.
    pub(crate) live: ArcSwap<Config>,
    /// Messages this process holds outbox leases on (released if shutdown runs out of time).
    pub in_flight: crate::outbox::worker::InFlight,
    /// Shutdown has begun: `/readyz` answers 503 so load balancers stop sending.
    pub draining: AtomicBool,
    /// Shutdown ran out of time: deliveries still running stop now.
    pub(crate) cut_off: tokio::sync::watch::Sender<bool>,
}

impl App {
    /// The config in force now: the startup config with the last reload's changes applied.
    pub fn current_config(&self) -> Arc<Config> {
        self.live.load_full()
    }
}

/// A fresh correlation id, or the caller's own when it is a sane token.
pub fn correlation_id(incoming: Option<&str>) -> String {
    match incoming {
        Some(c) if !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            c.to_string()
        }
        _ => uuid::Uuid::now_v7().simple().to_string(),
    }
}
