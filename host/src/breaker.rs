//! Per-account circuit breaker. When most recent deliveries of an account fail (the provider is
//! down, the token expired), keep messages waiting instead of burning their attempts; after a
//! cool-down let one probe through (half-open) and close again on its success.

use crate::config::BreakerConfig;
use std::collections::VecDeque;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open { until_ms: u64 },
    /// One probe is allowed; `probing` while it is in flight.
    HalfOpen { probing: bool },
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

pub struct Breaker {
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
}

struct Inner {
    state: State,
    /// The calls in the window, counted per slice of [`Breaker::slice_ms`]. A count per call
    /// would cost memory in proportion to the traffic (a minute at 15k msg/s is 900k entries)
    /// and a scan of them on every call; slices make both constant.
    slices: VecDeque<Slice>,
    calls: u64,
    failures: u64,
}

/// The calls that ended within `[start, start + slice_ms)`.
#[derive(Debug, Clone, Copy)]
struct Slice {
    start: u64,
    calls: u64,
    failures: u64,
}

impl Inner {
    fn clear(&mut self) {
        self.slices.clear();
        (self.calls, self.failures) = (0, 0);
    }
}

/// Slices per window: a call leaves the window at most a 64th of it late.
const SLICES: u64 = 64;

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self { cfg, inner: Mutex::new(Inner { state: State::Closed, slices: VecDeque::new(), calls: 0, failures: 0 }) }
    }

    fn slice_ms(&self) -> u64 {
        (self.cfg.window_ms / SLICES).max(1)
    }

    pub fn state(&self, now: u64) -> State {
        let mut i = self.inner.lock().unwrap();
        if let State::Open { until_ms } = i.state
            && now >= until_ms
        {
            i.state = State::HalfOpen { probing: false };
        }
        i.state
    }

    /// May a call go out now? `Err(ms)`: wait that long. In half-open, only one call at a time.
    pub fn admit(&self, now: u64) -> Result<(), u64> {
        let state = self.state(now);
        let mut i = self.inner.lock().unwrap();
        match state {
            State::Closed => Ok(()),
            State::Open { until_ms } => Err(until_ms - now),
            State::HalfOpen { probing: true } => Err(self.cfg.cooldown_ms.min(1_000)),
            State::HalfOpen { probing: false } => {
                i.state = State::HalfOpen { probing: true };
                Ok(())
            }
        }
    }

    /// A call [`Self::admit`] let through did not go out after all (the sandbox was busy):
    /// in half-open, the probe slot is free again. Nothing is counted.
    pub fn abandon(&self) {
        let mut i = self.inner.lock().unwrap();
        if i.state == (State::HalfOpen { probing: true }) {
            i.state = State::HalfOpen { probing: false };
        }
    }

    /// Records a call's result. Only transient failures count: a permanent error is about the
    /// message, not the provider's health.
    pub fn record(&self, now: u64, failed: bool) {
        let mut i = self.inner.lock().unwrap();
        match i.state {
            State::HalfOpen { .. } => {
                i.clear();
                i.state = if failed { State::Open { until_ms: now + self.cfg.cooldown_ms } } else { State::Closed };
                return;
            }
            State::Open { .. } => return,
            State::Closed => {}
        }
        let width = self.slice_ms();
        let start = now - now % width;
        let failed = u64::from(failed);
        match i.slices.back_mut() {
            // Callers read the clock before taking the lock, so `now` may be a little behind
            // the newest slice: counted there.
            Some(last) if last.start >= start => {
                last.calls += 1;
                last.failures += failed;
            }
            _ => i.slices.push_back(Slice { start, calls: 1, failures: failed }),
        }
        i.calls += 1;
        i.failures += failed;
        let horizon = now.saturating_sub(self.cfg.window_ms);
        while let Some(old) = i.slices.front().copied().filter(|s| s.start + width <= horizon) {
            i.slices.pop_front();
            i.calls -= old.calls;
            i.failures -= old.failures;
        }
        if i.calls >= u64::from(self.cfg.min_calls) && i.failures as f64 >= self.cfg.failure_rate * i.calls as f64 {
            i.state = State::Open { until_ms: now + self.cfg.cooldown_ms };
            i.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig::default())
    }

    #[test]
    fn an_abandoned_probe_frees_the_probe_slot_and_counts_nothing() {
        let b = breaker();
        for t in 0..10 {
            b.record(t, true);
        }
        let later = 10 + 30_000;
        assert_eq!(b.admit(later), Ok(()), "the probe");
        assert!(b.admit(later).is_err());
        b.abandon();
        assert_eq!(b.state(later), State::HalfOpen { probing: false }, "still half-open: nothing was learned");
        assert_eq!(b.admit(later), Ok(()), "the next message may probe");
        // In the closed state abandoning is a no-op.
        let c = breaker();
        c.abandon();
        assert_eq!(c.state(0), State::Closed);
    }

    #[test]
    fn stays_closed_below_the_minimum_number_of_calls() {
        let b = breaker();
        for t in 0..9 {
            b.record(t, true);
        }
        assert_eq!(b.state(10), State::Closed);
    }

    #[test]
    fn opens_at_the_failure_rate_half_opens_after_cooldown_and_closes_on_success() {
        let b = breaker();
        for t in 0..10 {
            b.record(t * 100, t % 2 == 0); // 5 of 10 failed: 50%
        }
        assert_eq!(b.state(1_000), State::Open { until_ms: 900 + 30_000 });
        assert_eq!(b.admit(1_000), Err(29_900));
        assert_eq!(b.state(30_900), State::HalfOpen { probing: false });
        assert_eq!(b.admit(30_900), Ok(()), "one probe");
        assert!(b.admit(30_901).is_err(), "only one probe at a time");
        b.record(31_000, false);
        assert_eq!(b.state(31_000), State::Closed);
        assert_eq!(b.admit(31_000), Ok(()));
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let b = breaker();
        for t in 0..10 {
            b.record(t, true);
        }
        assert!(matches!(b.state(30_009), State::HalfOpen { .. }));
        b.admit(30_009).unwrap();
        b.record(30_010, true);
        assert_eq!(b.state(30_010), State::Open { until_ms: 60_010 });
    }

    #[test]
    fn old_calls_fall_out_of_the_window() {
        let b = breaker();
        for t in 0..9 {
            b.record(t, true);
        }
        for t in 0..10 {
            b.record(70_000 + t, false); // the failures are over 60 s old by now
        }
        assert_eq!(b.state(70_010), State::Closed);
    }

    /// Memory and time per call stay constant however many calls the window holds.
    #[test]
    fn a_busy_window_is_counted_in_slices() {
        let b = breaker();
        for t in 0..200_000u64 {
            b.record(t / 4, t % 3 == 0); // 4 calls per ms, a third failed: stays closed
        }
        assert_eq!(b.state(50_000), State::Closed);
        let slices = b.inner.lock().unwrap().slices.len() as u64;
        assert!(slices <= SLICES + 1, "{slices} slices");
        // Then only failures: with 133k successes in the window it takes some 60k (fewer as the
        // oldest calls leave the window) to reach half.
        let opened = (0..200_000u64).find(|t| {
            b.record(50_000 + t / 4, true);
            matches!(b.state(50_000 + t / 4), State::Open { .. })
        });
        assert!(opened.is_some_and(|t| (50_000..67_000).contains(&t)), "{opened:?}");
    }
}
