//! Leases on resources (a channel account's poller, a singleton job), built on the store's
//! fenced lease records. A [`Lease`] renews itself with a heartbeat; when a renewal fails (the
//! lease expired during a pause and someone else took it) or on shutdown, the heartbeat stops
//! and [`Lease::lost`] fires so the holder stops its work. Writes made under the lease pass its
//! `token`, which the store checks in the same transaction.

use crate::store::{Acquire, Store, StoreError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lease on `{resource}` is held by `{holder}` until {until_ms} (ms since epoch); gave up after {attempts} attempts")]
    Busy { resource: String, holder: String, until_ms: u64, attempts: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How hard to try for a lease.
#[derive(Debug, Clone, Copy)]
pub struct AcquirePolicy {
    pub ttl_ms: u64,
    pub attempts: u32,
    /// Pause between attempts (real time: this is how long *we* wait, not a lease duration).
    pub retry_every: Duration,
}

pub struct Manager {
    store: Store,
    holder: String,
}

pub struct Lease {
    pub resource: String,
    pub token: u64,
    lost: watch::Receiver<bool>,
    heartbeat: JoinHandle<()>,
    store: Store,
}

impl Manager {
    /// `holder` names this process (e.g. `hostname:pid`) in lease records.
    pub fn new(store: Store, holder: impl Into<String>) -> Self {
        Self { store, holder: holder.into() }
    }

    /// Tries up to `policy.attempts` times; the error names the current holder.
    pub async fn acquire(&self, resource: &str, policy: AcquirePolicy) -> Result<Lease, LeaseError> {
        let mut last = None;
        for attempt in 1..=policy.attempts.max(1) {
            match self.store.lease_acquire(resource, &self.holder, policy.ttl_ms).await? {
                Acquire::Granted(rec) => return Ok(self.start(resource, rec.token, policy.ttl_ms)),
                Acquire::Busy(rec) => last = Some(rec),
            }
            if attempt < policy.attempts {
                tokio::time::sleep(policy.retry_every).await;
            }
        }
        let rec = last.expect("at least one attempt");
        Err(LeaseError::Busy { resource: resource.into(), holder: rec.holder, until_ms: rec.expires_at_ms, attempts: policy.attempts.max(1) })
    }

    fn start(&self, resource: &str, token: u64, ttl_ms: u64) -> Lease {
        let (tx, lost) = watch::channel(false);
        let (store, res) = (self.store.clone(), resource.to_string());
        // Renew at a third of the TTL so two missed beats still leave the lease alive.
        let every = Duration::from_millis((ttl_ms / 3).max(1));
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store.lease_renew(&res, token, ttl_ms).await {
                    Ok(true) => {}
                    Ok(false) | Err(_) => {
                        tracing::warn!(resource = %res, token, "lease lost; stopping work under it");
                        let _ = tx.send(true);
                        return;
                    }
                }
            }
        });
        Lease { resource: resource.to_string(), token, lost, heartbeat, store: self.store.clone() }
    }
}

impl Lease {
    /// Resolves when the lease is lost.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|l| *l).await;
    }

    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// One renewal now (the heartbeat does this on its own); `false` means the lease is gone.
    pub async fn renew(&self, ttl_ms: u64) -> Result<bool, StoreError> {
        self.store.lease_renew(&self.resource, self.token, ttl_ms).await
    }

    /// Stops the heartbeat and gives the lease up so another holder need not wait for expiry.
    pub async fn release(self) -> Result<(), StoreError> {
        self.heartbeat.abort();
        self.store.lease_release(&self.resource, self.token).await?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::testing::conformance;

    const ONCE: AcquirePolicy = AcquirePolicy { ttl_ms: 10_000, attempts: 1, retry_every: Duration::from_millis(1) };

    // Each runs against every store engine (redb always, PostgreSQL when configured).
    conformance! {
        async fn a_held_lease_refuses_others_until_it_expires_then_fences_the_old_holder(db) {
            let clock = ManualClock::new(1_000);
            let store = db.open(&clock).await;
            let a = Manager::new(store.clone(), "a");
            let b = Manager::new(store.clone(), "b");
            let la = a.acquire("poll:tg", ONCE).await.unwrap();
            let err = b.acquire("poll:tg", AcquirePolicy { attempts: 3, ..ONCE }).await.err().unwrap();
            assert!(err.to_string().contains("held by `a`"), "{err}");
            assert!(err.to_string().contains("3 attempts"), "{err}");

            clock.advance_ms(10_000);
            let lb = b.acquire("poll:tg", ONCE).await.unwrap();
            assert!(lb.token > la.token, "fencing tokens grow with every grant");
            assert!(!la.renew(10_000).await.unwrap(), "the old holder cannot renew");
            assert!(lb.renew(10_000).await.unwrap());
            lb.release().await.unwrap();
            assert!(a.acquire("poll:tg", ONCE).await.is_ok(), "released leases are free at once");
        }

        async fn the_heartbeat_reports_a_lost_lease(db) {
            let clock = ManualClock::new(1_000);
            let store = db.open(&clock).await;
            let a = Manager::new(store.clone(), "a");
            let mut la = a
                .acquire("job", AcquirePolicy { ttl_ms: 30, attempts: 1, retry_every: Duration::from_millis(1) })
                .await
                .unwrap();
            clock.advance_ms(31); // a long pause: the lease expired and…
            let _lb = Manager::new(store.clone(), "b").acquire("job", ONCE).await.unwrap(); // …was taken
            tokio::time::timeout(Duration::from_secs(5), la.lost()).await.expect("lost fires");
            assert!(la.is_lost());
        }
    }
}
