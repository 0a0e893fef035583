//! The durable state of the daemon in one redb file. This module is the only place that
//! touches redb.
//!
//! Every write goes through one writer thread ([`writer`]) that applies many callers'
//! requests in one transaction and answers them only after that transaction is durable
//! (group commit): many webhooks share one fsync. Reads open their own read transaction and
//! never wait for the writer.

mod dlq;
mod error;
mod history;
mod inbox;
mod ingest;
mod kv;
mod leases;
mod ops;
mod outbox;
mod push;
mod tables;
mod tools;
mod writer;

#[cfg(test)]
mod tests;

pub use dlq::{DeadKind, DeadLetter, RedriveResult};
pub use error::StoreError;
pub use leases::{Acquire, LeaseRecord};
pub use ops::{BackupSummary, OutboxCensus};
pub use writer::CommitObserver;
pub use inbox::{AckResult, ClaimRequest, ClaimedEvent, InboxClaim};
pub use history::{Direction, HistoryEntry, HistoryOptions, SessionLimit};
pub use ingest::{IngestEffects, IngestOptions, IngestOutcome, IngestRequest, Ingested, PushRoute, Polled};
pub use push::{ClaimedPush, PushDisposition, PushRow};
pub use tools::{ApprovalInfo, CallEnd, CallStatus, ToolCall};
pub use outbox::{
    Attempt, ClaimedMessage, Disposition, EnqueueOutcome, MessageStatus, NewMessage, OutboxRow, Priority, RecordResult,
};

use crate::clock::SharedClock;
use arc_swap::ArcSwapOption;
use redb::{Database, ReadableDatabase};
use std::path::Path;
use std::sync::Arc;
use writer::Writer;

/// Tunables that belong to the store itself.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub dedupe_ttl_ms: u64,
    /// Upper bound on requests applied in one transaction.
    pub max_batch: usize,
    /// redb's page cache. Its default (1 GiB) is for a database server; a daemon on a small
    /// box keeps its hot pages (recent inbox and outbox rows, indexes) in far less.
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { dedupe_ttl_ms: 7 * 24 * 3_600_000, max_batch: 1024, cache_bytes: DEFAULT_CACHE_BYTES }
    }
}

/// See [`StoreOptions::cache_bytes`].
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// Opens (or creates) the redb file with the store's settings.
fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
}

/// A cheap-to-clone handle to the store.
#[derive(Clone)]
pub struct Store {
    /// The open database; empty while the writer reopens it after an I/O error.
    db: Arc<ArcSwapOption<Database>>,
    /// The redb file (for the online backup).
    path: Arc<std::path::PathBuf>,
    writer: Writer,
    clock: SharedClock,
    opts: Arc<StoreOptions>,
}

impl Store {
    /// Opens (or creates) the redb file and starts the writer thread.
    pub fn open(path: &Path, clock: SharedClock, opts: StoreOptions) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        }
        let db = Arc::new(open_database(path, opts.cache_bytes)?);
        tables::create_all(&db)?;
        let db = Arc::new(ArcSwapOption::new(Some(db)));
        let writer = Writer::start(db.clone(), path.to_path_buf(), opts.max_batch, opts.cache_bytes);
        Ok(Self { db, path: Arc::new(path.to_path_buf()), writer, clock, opts: Arc::new(opts) })
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
