//! What governs one account's deliveries: its retry policy, rate limiter and circuit breaker
//! (daemon-wide `[delivery]` settings with the account's overrides).

use crate::breaker::Breaker;
use crate::clock::SharedClock;
use crate::config::{Config, RetryPolicy};
use crate::ratelimit::Limiter;
use std::collections::BTreeMap;

pub struct AccountDelivery {
    pub retry: RetryPolicy,
    pub limiter: Limiter,
    pub breaker: Breaker,
}

pub type Policies = BTreeMap<String, AccountDelivery>;

pub fn build(config: &Config, clock: &SharedClock) -> Policies {
    config
        .accounts
        .values()
        .map(|a| {
            let d = &config.delivery;
            let policy = AccountDelivery {
                retry: a.retry.unwrap_or(d.retry),
                limiter: Limiter::new(a.rate_limits.unwrap_or(d.rate_limits), clock.clone()),
                breaker: Breaker::new(d.breaker),
            };
            (a.id.clone(), policy)
        })
        .collect()
}
