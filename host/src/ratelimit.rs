//! Outbound rate limits: per account, per recipient and per conversation, with governor's GCRA
//! on the daemon's injected clock. A message that must wait is rescheduled for the time the
//! limiter names, never spun on.
//!
//! Memory stays bounded under many distinct recipients: keys whose buckets have refilled (they
//! carry no information any more) are evicted by `retain_recent`, i.e. on inactivity, not on
//! creation age.

use crate::clock::SharedClock;
use crate::config::RateLimits;
use governor::clock::{Clock as GovClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// Adapts our [`crate::clock::Clock`] so tests drive the limiter with a manual clock.
#[derive(Clone)]
pub struct ClockAdapter(pub SharedClock);

impl GovClock for ClockAdapter {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.now_ms().saturating_mul(1_000_000))
    }
}

type Keyed = RateLimiter<String, DashMapStateStore<String>, ClockAdapter, NoOpMiddleware<Nanos>>;

fn quota(per_sec: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_sec.max(1)).expect("max(1)");
    Quota::per_second(rate).allow_burst(NonZeroU32::new(burst.max(1)).expect("max(1)"))
}

pub struct Limiter {
    clock: ClockAdapter,
    account: Keyed,
    recipient: Keyed,
    conversation: Keyed,
    checks: AtomicU64,
    evicted: AtomicU64,
}

/// Which limit made a message wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Account,
    Recipient,
    Conversation,
}

/// Sweep for idle keys every this many checks.
const SWEEP_EVERY: u64 = 4_096;

impl Limiter {
    pub fn new(limits: RateLimits, clock: SharedClock) -> Self {
        let c = ClockAdapter(clock);
        Self {
            account: RateLimiter::dashmap_with_clock(quota(limits.account_per_sec, limits.account_per_sec), c.clone()),
            recipient: RateLimiter::dashmap_with_clock(quota(limits.recipient_per_sec, limits.recipient_burst), c.clone()),
            conversation: RateLimiter::dashmap_with_clock(
                quota(limits.conversation_per_sec, limits.conversation_per_sec),
                c.clone(),
            ),
            clock: c,
            checks: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Takes one cell from each bucket, or says how long to wait (ms) and which limit it was.
    ///
    /// A refusal from a later bucket does not return the cells taken from earlier ones (GCRA
    /// has no give-back), so the buckets are taken narrowest first: a message its recipient or
    /// conversation must hold back costs only that recipient's and conversation's cells, never
    /// the account's, which every other recipient shares. A message the account then refuses
    /// has spent its own recipient's cells: it under-uses those, never over-uses any.
    pub fn check(&self, account: &str, recipient: &str, conversation: &str) -> Result<(), (u64, Scope)> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let now = self.clock.now();
        let wait = |r: Result<(), governor::NotUntil<Nanos>>, scope| {
            r.map_err(|nu| {
                let ms = nu.earliest_possible().duration_since(now).as_u64().div_ceil(1_000_000);
                (ms.max(1), scope)
            })
        };
        wait(self.conversation.check_key(&format!("{account}\0{conversation}")), Scope::Conversation)?;
        wait(self.recipient.check_key(&format!("{account}\0{recipient}")), Scope::Recipient)?;
        wait(self.account.check_key(&account.to_string()), Scope::Account)?;
        Ok(())
    }

    /// Evicts keys whose buckets are full again; returns how many.
    pub fn sweep(&self) -> u64 {
        let before = self.keys();
        for l in [&self.account, &self.recipient, &self.conversation] {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let evicted = before.saturating_sub(self.keys()) as u64;
        self.evicted.fetch_add(evicted, Ordering::Relaxed);
        evicted
    }

    pub fn keys(&self) -> usize {
        self.account.len() + self.recipient.len() + self.conversation.len()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    fn limiter(clock: &ManualClock) -> Limiter {
        Limiter::new(RateLimits::default(), Arc::new(clock.clone()))
    }

    #[test]
    fn a_recipient_gets_its_burst_then_waits_for_the_rate() {
        let clock = ManualClock::new(1_000_000);
        let l = limiter(&clock);
        for i in 0..10 {
            assert_eq!(l.check("a", "r", &format!("c{i}")), Ok(()), "burst of 10");
        }
        let (wait, scope) = l.check("a", "r", "c10").unwrap_err();
        assert_eq!(scope, Scope::Recipient);
        assert!(wait > 0 && wait <= 100, "10/s refills one cell per 100 ms, got {wait}");
        clock.advance_ms(wait);
        assert_eq!(l.check("a", "r", "c11"), Ok(()));
    }

    #[test]
    fn the_account_limit_caps_all_recipients_together() {
        let clock = ManualClock::new(1_000_000);
        let l = limiter(&clock);
        for i in 0..100 {
            assert_eq!(l.check("a", &format!("r{i}"), &format!("r{i}")), Ok(()));
        }
        assert_eq!(l.check("a", "r-new", "r-new").unwrap_err().1, Scope::Account);
        assert_eq!(l.check("b", "r-new", "r-new"), Ok(()), "other accounts are separate");
    }

    #[test]
    fn a_recipient_held_back_does_not_spend_the_accounts_budget() {
        let clock = ManualClock::new(1_000_000);
        let limits = RateLimits { account_per_sec: 20, ..RateLimits::default() };
        let l = Limiter::new(limits, Arc::new(clock.clone()));
        for _ in 0..10 {
            assert_eq!(l.check("a", "busy", "busy"), Ok(()), "the recipient's burst");
        }
        for _ in 0..10 {
            assert_eq!(l.check("a", "busy", "busy").unwrap_err().1, Scope::Recipient);
        }
        // Ten of the account's 20 cells went to the sends above; the refusals took none.
        for i in 0..10 {
            assert_eq!(l.check("a", &format!("r{i}"), &format!("r{i}")), Ok(()), "recipient {i}");
        }
        assert_eq!(l.check("a", "r-new", "r-new").unwrap_err().1, Scope::Account);
    }

    #[test]
    fn a_hundred_thousand_recipients_keep_memory_bounded() {
        let clock = ManualClock::new(1_000_000);
        let l = Limiter::new(RateLimits { account_per_sec: 1_000_000, ..RateLimits::default() }, Arc::new(clock.clone()));
        let mut peak = 0;
        for i in 0..100_000u32 {
            let r = format!("+2507{i:08}");
            assert_eq!(l.check("a", &r, &r), Ok(()));
            if i % 1_000 == 999 {
                clock.advance_ms(1_000); // every bucket so far has refilled
                peak = peak.max(l.keys());
            }
        }
        clock.advance_ms(10_000);
        l.sweep();
        assert!(peak <= 2 * (SWEEP_EVERY as usize) * 2 + 10, "peak {peak} keys");
        assert!(l.keys() <= 1, "idle keys are evicted, {} left", l.keys());
        assert!(l.evicted() >= 199_000, "evictions counted: {}", l.evicted());
    }
}
