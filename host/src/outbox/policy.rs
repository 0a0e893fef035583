//! What governs one account's deliveries: its retry policy, rate limiter and circuit breaker
//! (daemon-wide `[delivery]` settings with the account's overrides).
//!
//! A config reload ([`Policies::rebuild`]) swaps the whole set at once. An account whose rate
//! limits (or the breaker settings) did not change keeps its limiter (or breaker) with its
//! state, so a reload neither grants a fresh burst nor closes an open circuit.

use crate::breaker::Breaker;
use crate::clock::SharedClock;
use crate::config::{BreakerConfig, Config, RateLimits, RetryPolicy};
use crate::ratelimit::Limiter;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct AccountDelivery {
    pub retry: RetryPolicy,
    pub limiter: Arc<Limiter>,
    pub breaker: Arc<Breaker>,
    /// What `limiter` and `breaker` were built from.
    rate_limits: RateLimits,
    breaker_config: BreakerConfig,
}

pub struct Policies {
    map: ArcSwap<BTreeMap<String, Arc<AccountDelivery>>>,
}

pub fn build(config: &Config, clock: &SharedClock) -> Policies {
    Policies { map: ArcSwap::from_pointee(assemble(config, clock, &BTreeMap::new())) }
}

impl Policies {
    pub fn get(&self, account: &str) -> Option<Arc<AccountDelivery>> {
        self.map.load().get(account).cloned()
    }

    /// Accounts with a policy, and their policies, as they are now.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<AccountDelivery>>> {
        self.map.load_full()
    }

    /// Rebuilds from a reloaded config, keeping the state of unchanged limiters and breakers.
    pub fn rebuild(&self, config: &Config, clock: &SharedClock) {
        let next = assemble(config, clock, &self.map.load());
        self.map.store(Arc::new(next));
    }
}

fn assemble(
    config: &Config,
    clock: &SharedClock,
    previous: &BTreeMap<String, Arc<AccountDelivery>>,
) -> BTreeMap<String, Arc<AccountDelivery>> {
    let d = &config.delivery;
    config
        .accounts
        .values()
        .map(|a| {
            let rate_limits = a.rate_limits.unwrap_or(d.rate_limits);
            let old = previous.get(&a.id);
            let limiter = match old {
                Some(p) if p.rate_limits == rate_limits => p.limiter.clone(),
                _ => Arc::new(Limiter::new(rate_limits, clock.clone())),
            };
            let breaker = match old {
                Some(p) if p.breaker_config == d.breaker => p.breaker.clone(),
                _ => Arc::new(Breaker::new(d.breaker)),
            };
            let policy = AccountDelivery {
                retry: a.retry.unwrap_or(d.retry),
                limiter,
                breaker,
                rate_limits,
                breaker_config: d.breaker,
            };
            (a.id.clone(), Arc::new(policy))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn config(text: &str) -> Config {
        Config::parse(text, "t").unwrap()
    }

    #[test]
    fn a_rebuild_keeps_unchanged_limiters_and_breakers_and_replaces_changed_ones() {
        let clock: SharedClock = Arc::new(ManualClock::new(1_000));
        let before = "[accounts.a]\nplugin = \"p\"\n[accounts.b]\nplugin = \"p\"\n";
        let p = build(&config(before), &clock);
        let (a, b) = (p.get("a").unwrap(), p.get("b").unwrap());
        let after = "[accounts.a]\nplugin = \"p\"\n[accounts.b]\nplugin = \"p\"\n[accounts.b.rate_limits]\naccount_per_sec = 5\n[accounts.c]\nplugin = \"p\"\n";
        p.rebuild(&config(after), &clock);
        assert!(Arc::ptr_eq(&p.get("a").unwrap().limiter, &a.limiter));
        assert!(Arc::ptr_eq(&p.get("a").unwrap().breaker, &a.breaker));
        assert!(!Arc::ptr_eq(&p.get("b").unwrap().limiter, &b.limiter), "changed limits: a new limiter");
        assert!(Arc::ptr_eq(&p.get("b").unwrap().breaker, &b.breaker));
        assert!(p.get("c").is_some(), "added accounts get a policy");
        p.rebuild(&config("[accounts.c]\nplugin = \"p\"\n"), &clock);
        assert!(p.get("a").is_none(), "removed accounts lose theirs");
    }
}
