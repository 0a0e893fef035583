//! Group commit: one thread owns the write side of the database. It takes the first waiting
//! request, drains everything else already queued (up to `max_batch`), applies all of them in
//! one transaction, commits (fsync), and only then answers each caller.
//!
//! If any request fails with a storage error, the whole transaction is rolled back and every
//! caller in that batch gets the error: nobody is ever told "stored" for a write that is not
//! durable.
//!
//! An I/O error (a full disk) poisons a redb handle: every later operation fails with
//! `PreviousIo`. So the writer then closes the database and reopens it (redb repairs it from
//! its last durable commit), failing requests that arrive meanwhile with
//! [`StoreError::Unavailable`] (503 to webhooks, so providers retry) and trying again until the
//! disk takes writes. The daemon recovers when space returns, without a restart.
//!
//! The writer also owns the pull inbox's log ([`InboxLog`]): a batch's inbox frames are
//! appended and synced just before the transaction commits, and the transaction records where
//! they end, so the redb commit stays the one commit point. After a failed batch the inbox is
//! rebuilt from its log up to the end the database (reopened, if need be) has recorded.

use super::inbox::CommitPhases;
use super::shared::SharedTables;
use crate::store::StoreError;
use crate::store::inbox_log::InboxLog;
use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase, WriteTransaction};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

trait Pending: Send {
    fn apply<'t>(&mut self, shared: &mut SharedTables<'t>) -> Result<(), StoreError>;
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Typed<R, F> {
    f: Option<F>,
    result: Option<R>,
    reply: oneshot::Sender<Result<R, StoreError>>,
}

impl<R, F> Pending for Typed<R, F>
where
    R: Send,
    F: for<'t> FnOnce(&mut SharedTables<'t>) -> Result<R, StoreError> + Send,
{
    fn apply<'t>(&mut self, shared: &mut SharedTables<'t>) -> Result<(), StoreError> {
        let f = self.f.take().expect("applied once");
        self.result = Some(f(shared)?);
        Ok(())
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let this = *self;
        let out = committed.and_then(|()| this.result.ok_or(StoreError::Closed));
        // The caller may have gone away (client disconnected); the write stands regardless.
        let _ = this.reply.send(out);
    }
}

enum Msg {
    Job(Box<dyn Pending>),
    Close(oneshot::Sender<()>),
}

use crate::store::CommitObserver;

#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    requests: AtomicU64,
    reopens: AtomicU64,
    observer: OnceLock<CommitObserver>,
}

#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<Stats>,
}

impl Writer {
    pub(super) fn start(db: Arc<ArcSwapOption<Database>>, inbox: InboxLog, path: PathBuf, max_batch: usize, cache_bytes: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let s = stats.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(Shared { slot: db, path, cache_bytes }, inbox, rx, max_batch.max(1), s))
            .expect("spawn store writer thread");
        Self { tx, stats }
    }

    pub(super) async fn submit<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        self.submit_shared(move |shared: &mut SharedTables<'_>| {
            shared.close()?;
            f(shared.txn())
        })
        .await
    }

    /// [`Self::submit`] for a job that uses the batch's [`SharedTables`].
    pub(super) async fn submit_shared<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&mut SharedTables<'t>) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(Typed { f: Some(f), result: None, reply });
        self.tx.send(Msg::Job(job)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(super) fn stats(&self) -> (u64, u64) {
        (self.stats.transactions.load(Ordering::Relaxed), self.stats.requests.load(Ordering::Relaxed))
    }

    /// How often the database was reopened after an I/O error.
    pub(super) fn reopens(&self) -> u64 {
        self.stats.reopens.load(Ordering::Relaxed)
    }

    pub(super) fn on_commit(&self, f: CommitObserver) {
        let _ = self.stats.observer.set(f);
    }

    pub(super) async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The database slot readers use, and the file to reopen.
struct Shared {
    slot: Arc<ArcSwapOption<Database>>,
    path: PathBuf,
    cache_bytes: usize,
}

/// Pause between attempts to reopen the database after an I/O error.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);
/// Group commits that take this long are logged with their phases at debug level (a commit
/// takes ~1–3 ms under load on the bench machine; the webhooks' p99 is made of the slow ones).
const SLOW_COMMIT: Duration = Duration::from_millis(5);

fn run(shared: Shared, mut inbox: InboxLog, mut rx: mpsc::UnboundedReceiver<Msg>, max_batch: usize, stats: Arc<Stats>) {
    let mut db = shared.slot.load_full().expect("the store opens the database before the writer starts");
    let mut batch: Vec<Box<dyn Pending>> = Vec::with_capacity(max_batch);
    let mut closing = None;
    while closing.is_none() {
        match rx.blocking_recv() {
            Some(Msg::Job(j)) => batch.push(j),
            Some(Msg::Close(done)) => closing = Some(done),
            None => break,
        }
        while batch.len() < max_batch && closing.is_none() {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => batch.push(j),
                Ok(Msg::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let result = commit_batch(&db, &mut inbox, &mut batch);
        let took = started.elapsed();
        stats.transactions.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(observe) = stats.observer.get() {
            observe(took, batch.len());
        }
        if let Ok(p) = &result
            && took >= SLOW_COMMIT
        {
            let us = |d: Duration| d.as_micros() as u64;
            tracing::debug!(batch = batch.len(), total_us = us(took), apply_us = us(p.apply), log_sync_us = us(p.log_sync), engine_commit_us = us(p.engine_commit), housekeeping_us = us(p.housekeeping), "slow group commit");
        }
        let result = result.map(drop);
        if let Err(e) = &result {
            tracing::error!(error = %e, batch = batch.len(), "store transaction failed; batch rolled back");
        }
        for job in batch.drain(..) {
            job.finish(result.clone());
        }
        let Err(e) = result else { continue };
        // A batch that failed without touching the disk leaves the database as it was: only
        // the inbox's state (and any frames appended) must go back to its last commit.
        let needs_reopen = e.is_io() || (inbox.dirty() && reload_inbox(&db, &mut inbox).is_err());
        if needs_reopen {
            match reopen(db, &mut inbox, &shared, &mut rx, &mut closing, &e) {
                Some(fresh) => {
                    stats.reopens.fetch_add(1, Ordering::Relaxed);
                    db = fresh;
                }
                None => return finish_close(closing),
            }
        }
    }
    // Release the database before saying we are closed, so it can be reopened at once.
    shared.slot.store(None);
    drop(db);
    finish_close(closing);
}

fn finish_close(closing: Option<oneshot::Sender<()>>) {
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Closes the poisoned handle and opens the file again until that works, answering requests
/// that arrive meanwhile with [`StoreError::Unavailable`]. `None` if the store is closed first.
fn reopen(
    db: Arc<Database>,
    inbox: &mut InboxLog,
    shared: &Shared,
    rx: &mut mpsc::UnboundedReceiver<Msg>,
    closing: &mut Option<oneshot::Sender<()>>,
    cause: &StoreError,
) -> Option<Arc<Database>> {
    shared.slot.store(None);
    drop(db);
    let unavailable = StoreError::Unavailable(format!("reopening the database after: {cause}"));
    let mut attempt = 0u64;
    loop {
        // Readers may still hold the old handle for a moment (`DatabaseAlreadyOpen`); a full
        // disk may fail the repair an unclean close needs. Both pass with time.
        let opened = super::open_database(&shared.path, shared.cache_bytes).map_err(StoreError::from).and_then(|fresh| {
            reload_inbox(&fresh, inbox)?;
            Ok(fresh)
        });
        match opened {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                shared.slot.store(Some(fresh.clone()));
                tracing::warn!(attempts = attempt + 1, "store reopened after an i/o error; taking writes again");
                return Some(fresh);
            }
            Err(e) => {
                if attempt.is_multiple_of(50) {
                    tracing::error!(error = %e, attempt, "store still unavailable; retrying");
                }
            }
        }
        attempt += 1;
        std::thread::sleep(REOPEN_PAUSE);
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Msg::Job(j) => j.finish(Err(unavailable.clone())),
                Msg::Close(done) => *closing = Some(done),
            }
        }
        if closing.is_some() {
            return None;
        }
    }
}

/// Rebuilds the inbox from its log up to the end `db`'s last commit recorded.
fn reload_inbox(db: &Database, inbox: &mut InboxLog) -> Result<(), StoreError> {
    let end = super::inbox::read_log_end(&db.begin_read()?)?;
    inbox.reload(end)
}

fn commit_batch(db: &Database, inbox: &mut InboxLog, batch: &mut [Box<dyn Pending>]) -> Result<CommitPhases, StoreError> {
    let started = Instant::now();
    let txn = db.begin_write()?;
    {
        let mut shared = SharedTables::new(&txn, inbox);
        for job in batch.iter_mut() {
            job.apply(&mut shared)?; // dropping `txn` on error aborts it
        }
        shared.close()?;
    }
    let apply = started.elapsed();
    // The inbox's frames are durable before the commit that says where they end.
    Ok(CommitPhases { apply, ..super::inbox::commit_with_log(txn, inbox)? })
}
