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
    /// (time, failed) of calls in the window.
    calls: VecDeque<(u64, bool)>,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self { cfg, inner: Mutex::new(Inner { state: State::Closed, calls: VecDeque::new() }) }
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

    /// Records a call's result. Only transient failures count: a permanent error is about the
    /// message, not the provider's health.
    pub fn record(&self, now: u64, failed: bool) {
        let mut i = self.inner.lock().unwrap();
        match i.state {
            State::HalfOpen { .. } => {
                i.calls.clear();
                i.state = if failed { State::Open { until_ms: now + self.cfg.cooldown_ms } } else { State::Closed };
                return;
            }
            State::Open { .. } => return,
            State::Closed => {}
        }
        i.calls.push_back((now, failed));
        let horizon = now.saturating_sub(self.cfg.window_ms);
        while i.calls.front().is_some_and(|(t, _)| *t < horizon) {
            i.calls.pop_front();
        }
        let total = i.calls.len();
        let failures = i.calls.iter().filter(|(_, f)| *f).count();
        if total >= self.cfg.min_calls as usize && failures as f64 >= self.cfg.failure_rate * total as f64 {
            i.state = State::Open { until_ms: now + self.cfg.cooldown_ms };
            i.calls.clear();
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
}
