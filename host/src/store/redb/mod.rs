//! The embedded backend: the whole store in one redb file. The default, and the fastest path
//! for one box. This module is the only place that touches redb.
//!
//! Every write goes through one writer thread ([`writer`]) that applies many callers'
//! requests in one transaction and answers them only after that transaction is durable
//! (group commit): many webhooks share one fsync. Reads open their own read transaction and
//! never wait for the writer.
//!
//! One part of the state is beside the file, not in it: the pull inbox's events, in a log of
//! frames in `<file>.inbox/` ([`crate::store::inbox_log`]), committed by the same
//! transactions (they record where the log ends). The two belong together: copy the store
//! with `switchboard backup`, which folds the inbox into the one backup file.

mod backend;
#[cfg(feature = "ceiling")]
mod ceiling;
mod dlq;
pub mod export;
mod history;
mod inbox;
mod ingest;
mod kv;
mod leases;
mod ops;
mod outbox;
mod push;
mod shared;
pub(crate) mod tables;
mod tools;
mod writer;



use crate::clock::SharedClock;
use crate::store::inbox_log::{self, InboxLog};
use crate::store::{CommitObserver, StoreError, StoreOptions};
use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use writer::Writer;

/// The redb-backed store.
pub struct RedbStore {
    /// The open database; empty while the writer reopens it after an I/O error.
    db: Arc<ArcSwapOption<Database>>,
    /// The redb file (for the online backup).
    path: Arc<std::path::PathBuf>,
    writer: Writer,
    clock: SharedClock,
    opts: Arc<StoreOptions>,
    /// Events in the pull inbox as of the last commit (the inbox itself is the writer's).
    inbox_len: Arc<AtomicU64>,
    /// Conversation history as of the last commit (its runs and memtable are the writer's).
    history: crate::store::history_runs::HistoryReader,
}

/// Opens (or creates) the redb file with the store's settings.
fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
}

impl RedbStore {
    /// Opens (or creates) the redb file and starts the writer thread.
    pub fn open(path: &Path, clock: SharedClock, opts: StoreOptions) -> Result<Self, StoreError> {
        #[cfg(feature = "ceiling")]
        let opts = ceiling::options(opts);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        }
        let db = Arc::new(open_database(path, opts.cache_bytes)?);
        tables::create_all(&db)?;
        let end = inbox::read_log_end(&db.begin_read()?)?;
        let mut inbox = InboxLog::open_with_clock(&InboxLog::dir_for(path), end, inbox_log::SEGMENT_BYTES, clock.clone())?;
        let moved = inbox::migrate_tables(&db, &mut inbox)?;
        if moved > 0 {
            tracing::info!(events = moved, "moved the inbox's events from the database into its log");
        }
        let moved = inbox::migrate_dedupe(&db, &mut inbox)?;
        if moved > 0 {
            tracing::info!(keys = moved, "moved webhook dedupe keys from the database into the inbox log");
        }
        let moved = history::migrate_history(&db, &mut inbox)?;
        if moved > 0 {
            tracing::info!(entries = moved, "moved conversation history from the database into the inbox log");
        }
        let inbox_len = inbox.len_handle();
        let history = inbox.history_reader();
        let db = Arc::new(ArcSwapOption::new(Some(db)));
        let writer = Writer::start(db.clone(), inbox, path.to_path_buf(), opts.max_batch, opts.cache_bytes);
        Ok(Self { db, path: Arc::new(path.to_path_buf()), writer, clock, opts: Arc::new(opts), inbox_len, history })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Runs `f` inside the next group-committed write transaction and returns its result once
    /// that transaction is durable.
    async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        self.writer.submit(f).await
    }

    /// [`Self::write`] for the webhook path: `f` gets the batch's shared open tables.
    async fn write_shared<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: for<'t> FnOnce(&mut shared::SharedTables<'t>) -> Result<R, StoreError> + Send + 'static,
    {
        self.writer.submit_shared(f).await
    }

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        let db = self.db.load_full().ok_or_else(|| StoreError::Unavailable("reopening after an i/o error".into()))?;
        Ok(db.begin_read()?)
    }

    /// Statistics for `/metrics` and benchmarks: (transactions, requests) committed so far.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.writer.stats()
    }

    /// How often the database was reopened after an I/O error such as a full disk.
    pub fn reopens(&self) -> u64 {
        self.writer.reopens()
    }

    /// Calls `f(commit latency, requests in the batch)` after every group commit (for
    /// `/metrics`). The first observer set stays.
    pub fn on_commit(&self, f: CommitObserver) {
        self.writer.on_commit(f);
    }

    /// Stops the writer after it has committed everything already submitted.
    pub async fn close(&self) {
        self.writer.close().await;
    }
}
