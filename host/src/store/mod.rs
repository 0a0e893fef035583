//! The durable state of the daemon, behind one interface ([`Backend`]) with two engines:
//! an embedded redb file ([`redb`], the default and the fastest path for one box) and a shared
//! PostgreSQL ([`postgres`], for several daemons sharing the work). This module and its
//! children are the only places that touch a storage engine; the host holds a [`Store`] and
//! never knows which engine runs.
//!
//! The domain types (rows, requests, outcomes) live here, engine-neutral; each engine keeps
//! its own layout behind them.

mod backend;
mod dlq;
mod error;
mod history;
mod inbox;
mod ingest;
mod leases;
pub mod dedupe_runs;
pub(crate) mod history_runs;
mod runs;
mod inbox_log;
/// The frame log of the log-structured webhook path (`docs/log-store.md`); the redb store
/// keeps its pull inbox in one ([`inbox_log`]).
pub mod log;
mod ops;
mod outbox;
pub(crate) mod postgres;
mod push;
pub(crate) mod redb;
mod tools;
mod transfer;

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testing;

pub use backend::Backend;
pub use dlq::{DeadKind, DeadLetter, RedriveResult};
pub use error::StoreError;
pub use history::{Direction, HistoryEntry, HistoryOptions, SessionLimit};
pub use inbox::{AckResult, ClaimRequest, ClaimedEvent, InboxClaim};
pub use ingest::{IngestEffects, IngestOptions, IngestOutcome, IngestRequest, Ingested, Polled, PushRoute};
pub use leases::{Acquire, LeaseRecord};
pub use ops::{BackupSummary, OutboxCensus};
pub use outbox::{
    Attempt, ClaimedMessage, Disposition, EnqueueOutcome, MessageStatus, NewMessage, OutboxRow, Priority, RecordResult,
};
pub use push::{ClaimedPush, PushDisposition, PushRow};
pub use tools::{ApprovalInfo, CallEnd, CallStatus, ToolCall};
pub use transfer::ExportRecord;
pub use inbox::{InboxLease, InboxRow};

use crate::clock::SharedClock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Told the latency and size of every group commit.
pub type CommitObserver = Arc<dyn Fn(Duration, usize) + Send + Sync>;

/// Tunables that belong to the store itself.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub dedupe_ttl_ms: u64,
    /// Upper bound on requests applied in one transaction.
    pub max_batch: usize,
    /// redb's page cache. Its default (1 GiB) is for a database server; a daemon on a small
    /// box keeps its hot pages (recent inbox and outbox rows, indexes) in far less. (PostgreSQL
    /// caches on the server: `shared_buffers`.)
    pub cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { dedupe_ttl_ms: 7 * 24 * 3_600_000, max_batch: 1024, cache_bytes: DEFAULT_CACHE_BYTES }
    }
}

/// See [`StoreOptions::cache_bytes`]. 16 MiB since conversation history left the B-trees
/// (the history runs): the footprint row (100k queued messages) measured 83–92 MiB with it
/// against 87–99 MiB with 24, and dispatch, which reads the outbox's pages, the same within
/// the VM's drift (BENCHMARKS.md, "What changed").
pub const DEFAULT_CACHE_BYTES: usize = 16 << 20;

/// Where the state lives (`store = { kind = ... }` in the config).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// One embedded redb file: one daemon.
    Redb { path: PathBuf },
    /// A PostgreSQL database shared by every daemon pointed at it. `url` is the resolved
    /// connection string (it may hold a password: print it only through [`StoreLocation`]'s
    /// `Debug`, which masks it).
    Postgres { url: String, pool_size: usize, ca_file: Option<PathBuf> },
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Redb { path } => f.debug_struct("Redb").field("path", path).finish(),
            StoreLocation::Postgres { url, pool_size, ca_file } => f
                .debug_struct("Postgres")
                .field("url", &mask_password(url))
                .field("pool_size", pool_size)
                .field("ca_file", ca_file)
                .finish(),
        }
    }
}

impl StoreLocation {
    /// For logs and errors: the redb path, or the PostgreSQL URL with its password masked.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Redb { path } => path.display().to_string(),
            StoreLocation::Postgres { url, .. } => mask_password(url),
        }
    }
}

/// The URL with any password replaced by `***`, for logs and errors.
pub fn mask_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Not a URL (a key=value connection string): say nothing about its contents.
        Err(_) => "<postgres connection string>".to_string(),
    }
}

/// A cheap-to-clone handle to the store, whichever engine keeps it.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    clock: SharedClock,
}

impl Store {
    /// Opens (or creates) a redb store file.
    pub fn open(path: &Path, clock: SharedClock, opts: StoreOptions) -> Result<Self, StoreError> {
        let backend = redb::RedbStore::open(path, clock.clone(), opts)?;
        Ok(Self { backend: Arc::new(backend), clock })
    }

    /// Opens the store at `location`: a redb file, or a PostgreSQL database (migrated on
    /// connect).
    pub async fn connect(location: &StoreLocation, clock: SharedClock, opts: StoreOptions) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Redb { path } => Self::open(path, clock, opts),
            StoreLocation::Postgres { url, pool_size, ca_file } => {
                let backend = postgres::PgStore::connect(url, *pool_size, ca_file.as_deref(), clock.clone(), opts).await?;
                Ok(Self { backend: Arc::new(backend), clock })
            }
        }
    }

    /// A store over any backend (tests and tools).
    pub fn from_backend(backend: Arc<dyn Backend>, clock: SharedClock) -> Self {
        Self { backend, clock }
    }

    /// Which engine runs (`redb`, `postgres`).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Opens a redb store file read-only (e.g. a backup, never the live file of a running
    /// daemon) and counts its rows.
    pub fn inspect(path: &Path) -> Result<BackupSummary, StoreError> {
        redb::RedbStore::inspect(path)
    }

    /// Writes every record of a stopped redb store to `emit` (`switchboard store export`).
    pub fn export_redb(path: &Path, emit: impl FnMut(ExportRecord) -> std::io::Result<()>) -> Result<usize, StoreError> {
        redb::export::export(path, emit)
    }

    /// Writes exported records into this store (`switchboard store import`); idempotent.
    pub async fn import(&self, records: Vec<ExportRecord>) -> Result<u64, StoreError> {
        self.backend.import(records).await
    }

    /// Stores a verified webhook's events. Events seen before (same account and provider
    /// event id, within the dedupe TTL) are counted as duplicates and write nothing.
    pub async fn ingest(&self, req: IngestRequest) -> Result<IngestOutcome, StoreError> {
        match self.ingest_with(req, IngestOptions::default()).await? {
            Ingested::Stored(outcome, _) => Ok(outcome),
            Ingested::SessionLimit { .. } => unreachable!("no history options, no session limit"),
        }
    }

    /// A short name for logs and errors (`redb`, `postgres`).
    pub fn kind(&self) -> &'static str {
        self.backend.kind()
    }

    pub async fn ingest_with(&self, req: IngestRequest, opts: IngestOptions) -> Result<Ingested, StoreError> {
        self.backend.ingest_with(req, opts).await
    }

    pub async fn ingest_polled(&self, req: IngestRequest, opts: IngestOptions, lease_resource: &str, token: u64, cursor: Option<String>) -> Result<Polled, StoreError> {
        self.backend.ingest_polled(req, opts, lease_resource, token, cursor).await
    }

    pub async fn poll_cursor(&self, account: &str) -> Result<Option<String>, StoreError> {
        self.backend.poll_cursor(account).await
    }

    pub async fn last_inbound_ms(&self, account: &str, conversation: &str) -> Result<Option<u64>, StoreError> {
        self.backend.last_inbound_ms(account, conversation).await
    }

    pub async fn sweep_dedupe(&self, limit: usize) -> Result<usize, StoreError> {
        self.backend.sweep_dedupe(limit).await
    }

    pub async fn claim_inbox(&self, req: ClaimRequest) -> Result<InboxClaim, StoreError> {
        self.backend.claim_inbox(req).await
    }

    pub async fn ack_inbox(&self, ids: Vec<String>, lease: String) -> Result<AckResult, StoreError> {
        self.backend.ack_inbox(ids, lease).await
    }

    pub async fn nack_inbox(&self, ids: Vec<String>, lease: String, delay_ms: u64) -> Result<AckResult, StoreError> {
        self.backend.nack_inbox(ids, lease, delay_ms).await
    }

    pub async fn inbox_len(&self) -> Result<u64, StoreError> {
        self.backend.inbox_len().await
    }

    pub async fn enqueue(&self, msg: NewMessage) -> Result<EnqueueOutcome, StoreError> {
        self.backend.enqueue(msg).await
    }

    pub async fn message(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        self.backend.message(id).await
    }

    /// When the next message is due, in clock ms (a read: idle workers look before they
    /// claim, so an idle daemon commits no empty claim transaction, and sleep until then).
    /// `None`: nothing is queued that will come due by time alone. A shared store may answer
    /// only "due now" (`Some(now)`) or `None`; its loops poll anyway, since other processes
    /// queue work it is not told about ([`Store::shared`]).
    pub async fn next_outbox_due(&self, ordered: bool) -> Result<Option<u64>, StoreError> {
        self.backend.next_outbox_due(ordered).await
    }

    /// Whether other processes may write this store (PostgreSQL), so that loops must poll
    /// for work rather than wait to be told of it.
    pub fn shared(&self) -> bool {
        self.kind() == "postgres"
    }

    pub async fn claim_outbox(&self, max: usize, lease_ms: u64, ordered: bool) -> Result<Vec<ClaimedMessage>, StoreError> {
        self.backend.claim_outbox(max, lease_ms, ordered).await
    }

    pub async fn renew_outbox_lease(&self, id: String, token: u64, lease_ms: u64) -> Result<bool, StoreError> {
        self.backend.renew_outbox_lease(id, token, lease_ms).await
    }

    pub async fn record_attempt(&self, id: String, token: u64, attempt: Option<Attempt>, disposition: Disposition) -> Result<RecordResult, StoreError> {
        self.backend.record_attempt(id, token, attempt, disposition).await
    }

    pub async fn queued_count(&self, account: &str) -> Result<u64, StoreError> {
        self.backend.queued_count(account).await
    }

    pub async fn list_messages(&self, status: Option<MessageStatus>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.backend.list_messages(status, limit).await
    }

    pub async fn sweep_idempotency(&self, limit: usize) -> Result<usize, StoreError> {
        self.backend.sweep_idempotency(limit).await
    }

    pub async fn outbox_census(&self) -> Result<OutboxCensus, StoreError> {
        self.backend.outbox_census().await
    }

    pub async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.backend.dlq_list(limit).await
    }

    pub async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.backend.dlq_get(id).await
    }

    pub async fn dlq_len(&self) -> Result<u64, StoreError> {
        self.backend.dlq_len().await
    }

    pub async fn dlq_redrive(&self, ids: Option<Vec<String>>) -> Result<RedriveResult, StoreError> {
        self.backend.dlq_redrive(ids).await
    }

    pub async fn lease_acquire(&self, resource: &str, holder: &str, ttl_ms: u64) -> Result<Acquire, StoreError> {
        self.backend.lease_acquire(resource, holder, ttl_ms).await
    }

    pub async fn lease_renew(&self, resource: &str, token: u64, ttl_ms: u64) -> Result<bool, StoreError> {
        self.backend.lease_renew(resource, token, ttl_ms).await
    }

    pub async fn lease_release(&self, resource: &str, token: u64) -> Result<bool, StoreError> {
        self.backend.lease_release(resource, token).await
    }

    pub async fn lease_get(&self, resource: &str) -> Result<Option<LeaseRecord>, StoreError> {
        self.backend.lease_get(resource).await
    }

    pub async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.kv_get(plugin, key).await
    }

    pub async fn kv_set(&self, plugin: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        self.backend.kv_set(plugin, key, value).await
    }

    /// When the next push delivery is due (a read; as [`Store::next_outbox_due`]).
    pub async fn next_push_due(&self) -> Result<Option<u64>, StoreError> {
        self.backend.next_push_due().await
    }

    pub async fn claim_push(&self, max: usize, lease_ms: u64) -> Result<Vec<ClaimedPush>, StoreError> {
        self.backend.claim_push(max, lease_ms).await
    }

    pub async fn record_push(&self, id: u64, token: u64, disposition: PushDisposition) -> Result<bool, StoreError> {
        self.backend.record_push(id, token, disposition).await
    }

    pub async fn push_len(&self) -> Result<u64, StoreError> {
        self.backend.push_len().await
    }

    pub async fn create_tool_call(&self, call: ToolCall) -> Result<(), StoreError> {
        self.backend.create_tool_call(call).await
    }

    pub async fn tool_call(&self, id: &str) -> Result<Option<ToolCall>, StoreError> {
        self.backend.tool_call(id).await
    }

    pub async fn set_prompt_message(&self, id: String, message_id: String) -> Result<(), StoreError> {
        self.backend.set_prompt_message(id, message_id).await
    }

    pub async fn start_approved_call(&self, id: String) -> Result<Option<ToolCall>, StoreError> {
        self.backend.start_approved_call(id).await
    }

    pub async fn finish_tool_call(&self, id: String, end: CallEnd) -> Result<Option<ToolCall>, StoreError> {
        self.backend.finish_tool_call(id, end).await
    }

    pub async fn fail_pending_call(&self, id: String, code: String, message: String) -> Result<(), StoreError> {
        self.backend.fail_pending_call(id, code, message).await
    }

    pub async fn expire_approvals(&self, limit: usize) -> Result<usize, StoreError> {
        self.backend.expire_approvals(limit).await
    }

    pub async fn approved_calls(&self) -> Result<Vec<String>, StoreError> {
        self.backend.approved_calls().await
    }

    /// When the next pending approval expires (a read; as [`Store::next_outbox_due`]).
    pub async fn next_approval_expiry(&self) -> Result<Option<u64>, StoreError> {
        self.backend.next_approval_expiry().await
    }

    pub async fn fail_interrupted_calls(&self) -> Result<usize, StoreError> {
        self.backend.fail_interrupted_calls().await
    }

    pub async fn history(&self, account: &str, conversation: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        self.backend.history(account, conversation, limit).await
    }



    /// A consistent copy of the whole store in a new redb file (redb only).
    pub async fn backup_to(&self, path: &Path) -> Result<BackupSummary, StoreError> {
        self.backend.backup_to(path).await
    }

    /// One round trip through the write path: proves that writes still commit.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }

    /// (transactions, requests) group-committed so far.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.backend.commit_stats()
    }

    /// How often the database was reopened after an I/O error such as a full disk (redb).
    pub fn reopens(&self) -> u64 {
        self.backend.reopens()
    }

    pub fn on_commit(&self, f: CommitObserver) {
        self.backend.on_commit(f)
    }

    /// Finishes what was submitted and releases the engine.
    pub async fn close(&self) {
        self.backend.close().await
    }
}
