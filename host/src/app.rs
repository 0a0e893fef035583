//! The shared state every service and handler works with.

use crate::accounts::Accounts;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::redact::Secret;
use crate::runtime::Runtime;
use crate::store::Store;
use tokio::sync::Notify;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub runtime: Runtime,
    pub accounts: Accounts,
    pub clock: SharedClock,
    /// Bearer tokens accepted by `/v1`. Empty: the API refuses every call (fail closed).
    pub api_tokens: Vec<Secret>,
    /// Wakes the outbox workers when a message is enqueued.
    pub outbox_wake: Notify,
    /// Per-account retry policy, rate limiter and circuit breaker.
    pub delivery: crate::outbox::policy::Policies,
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
