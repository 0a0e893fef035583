//! Instances kept between calls of the **same account on the same plugin version**.
//!
//! A fresh store and instance costs ~8 µs and a heap's worth of allocations per call; a webhook
//! pays it for a few microseconds of guest work. So after a call that ended cleanly its
//! instance is parked here and the account's next call takes it. What that shares is bounded
//! on purpose:
//! - only one account's calls on one plugin version: the guest already sees every message of
//!   that account, and it holds that account's secrets only, so nothing crosses an account or
//!   a plugin (a reload or an account change discards the parked instances);
//! - only after a clean call: a trap, deadline, out-of-memory or refused output drops the
//!   instance, so a failure never carries into the next call;
//! - only for a while: an instance serves at most [`MAX_USES`] calls, and one whose memory
//!   grew past [`MAX_PARKED_MEMORY`] is dropped, so a guest that leaks cannot walk itself to
//!   its memory cap and fail a later, innocent call; at most [`MAX_IDLE_PER_ACCOUNT`] wait per
//!   account and [`MAX_IDLE_TOTAL`] in all, and a call that finds the allocator's pool full
//!   drops them all and tries again, so parked instances never cost a call its slot.
//!
//! A parked instance holds no epoch ticker (an idle daemon stays asleep) and is re-armed with
//! a full guest-time budget and an empty stderr tail when it is taken.

use super::{Call, LoadedPlugin};
use crate::accounts::AccountCtx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Calls one instance serves before it is dropped.
pub(super) const MAX_USES: u32 = 1_000;
/// Parked instances per account. Deliveries hold their instance across the provider's HTTP
/// round trip, so an account has as many in flight as its workers claim (4 × 64 in the
/// benchmark); more concurrent calls than are parked make fresh ones, as before.
pub(super) const MAX_IDLE_PER_ACCOUNT: usize = 128;
/// Parked instances in all: half the allocator's pool, so calls always have the other half
/// however many accounts there are (and a call that finds the pool full drops the parked
/// ones). A parked instance costs little more memory than a freed slot, whose touched pages
/// stay resident anyway (see `with_engine`).
pub(super) const MAX_IDLE_TOTAL: usize = super::POOL_COMPONENT_INSTANCES as usize / 2;
/// A guest whose linear memory grew past this is not parked.
pub(super) const MAX_PARKED_MEMORY: usize = 8 << 20;

#[derive(Default)]
pub(super) struct WarmPool {
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    by_account: HashMap<String, Vec<Call>>,
    total: usize,
}

impl WarmPool {
    /// A parked instance of exactly this plugin version for exactly this account context.
    pub fn take(&self, plugin: &Arc<LoadedPlugin>, account: &Arc<AccountCtx>) -> Option<Call> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.lock();
            let idle = &mut *idle;
            let calls = idle.by_account.get_mut(&account.id)?;
            loop {
                let c = calls.pop();
                idle.total -= usize::from(c.is_some());
                match c {
                    Some(c) if Arc::ptr_eq(&c.plugin, plugin) && Arc::ptr_eq(&c.store.data().account, account) => break Some(c),
                    Some(c) => stale.push(c),
                    None => break None,
                }
            }
        };
        drop(stale); // outside the lock: dropping a store resets its memory
        found
    }

    /// Parks `call` after a clean call, unless it has served enough or grew too big.
    pub fn put(&self, call: Call) {
        if call.uses >= MAX_USES || call.store.data().limiter.largest_memory > MAX_PARKED_MEMORY {
            return;
        }
        let mut idle = self.lock();
        if idle.total >= MAX_IDLE_TOTAL {
            return;
        }
        let calls = idle.by_account.entry(call.store.data().account.id.clone()).or_default();
        if calls.len() < MAX_IDLE_PER_ACCOUNT {
            calls.push(call);
            idle.total += 1;
        }
    }

    /// Drops every parked instance (a plugin or account reload).
    pub fn clear(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    /// Parked instances, all accounts.
    pub fn len(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}
