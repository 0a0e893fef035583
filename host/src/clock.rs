//! Time as a dependency. Leases, TTLs, backoff and windows read the clock through this trait so
//! tests can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// Wall-clock milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;

    /// Changes when the clock is moved other than by time passing (a test's [`ManualClock`]);
    /// `None` for the real clock. Idle loops sleep until their next due time in real time,
    /// which a moved clock makes wrong, so they also wait on this.
    fn moved(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// Resolves when `clock` is moved after `seen` was taken (never for the real clock). Take
/// `seen` with [`Clock::moved`] *before* reading the time, so a move in between is not lost.
pub async fn moved(seen: Option<watch::Receiver<u64>>) {
    match seen {
        Some(mut rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

pub type SharedClock = Arc<dyn Clock>;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; shared between a test and the daemon it drives.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
    /// Bumped on every move, after the time changed.
    moves: Arc<watch::Sender<u64>>,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self { now: Arc::new(AtomicU64::new(start_ms)), moves: Arc::new(watch::Sender::new(0)) }
    }

    pub fn advance_ms(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
        self.moves.send_modify(|n| *n += 1);
    }

    pub fn set_ms(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
        self.moves.send_modify(|n| *n += 1);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn moved(&self) -> Option<watch::Receiver<u64>> {
        Some(self.moves.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now_ms(), 1_000);
        c.advance_ms(500);
        assert_eq!(c.now_ms(), 1_500);
        let shared: SharedClock = Arc::new(c.clone());
        c.set_ms(10);
        assert_eq!(shared.now_ms(), 10);
    }

    #[tokio::test]
    async fn a_move_wakes_a_loop_that_looked_before_it() {
        let c = ManualClock::new(0);
        let seen = c.moved();
        c.advance_ms(1); // between the loop's look at the time and its wait
        tokio::time::timeout(std::time::Duration::from_secs(5), moved(seen)).await.expect("woken by the move");
        assert!(SystemClock.moved().is_none(), "the real clock is never moved");
    }
}
