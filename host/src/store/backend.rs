//! The one interface both storage engines implement. [`super::Store`] holds an
//! `Arc<dyn Backend>`, so the host above it never knows whether an embedded redb file or a
//! shared PostgreSQL keeps its state. Every method is one atomic unit: what it writes commits
//! together (and is durable before it returns), and guarded writes check their fencing token
//! inside that same unit.

use super::*;
use std::path::Path;

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and errors (`redb`, `postgres`).
    fn kind(&self) -> &'static str;

    // Intake
    async fn ingest_with(&self, req: IngestRequest, opts: IngestOptions) -> Result<Ingested, StoreError>;
    async fn ingest_polled(
        &self,
        req: IngestRequest,
        opts: IngestOptions,
        lease_resource: &str,
        token: u64,
        cursor: Option<String>,
    ) -> Result<Polled, StoreError>;
    async fn poll_cursor(&self, account: &str) -> Result<Option<String>, StoreError>;
    async fn last_inbound_ms(&self, account: &str, conversation: &str) -> Result<Option<u64>, StoreError>;
    async fn sweep_dedupe(&self, limit: usize) -> Result<usize, StoreError>;

    // Pull inbox
    async fn claim_inbox(&self, req: ClaimRequest) -> Result<InboxClaim, StoreError>;
    async fn ack_inbox(&self, ids: Vec<String>, lease: String) -> Result<AckResult, StoreError>;
    async fn nack_inbox(&self, ids: Vec<String>, lease: String, delay_ms: u64) -> Result<AckResult, StoreError>;
    async fn inbox_len(&self) -> Result<u64, StoreError>;

    // Outbox
    async fn enqueue(&self, msg: NewMessage) -> Result<EnqueueOutcome, StoreError>;
    async fn message(&self, id: &str) -> Result<Option<OutboxRow>, StoreError>;
    /// When the next message is due (a read: idle workers look before they claim, and sleep
    /// until then). With `ordered`, messages waiting behind their conversation's head do not
    /// count. See [`crate::store::Store::next_outbox_due`] for what a backend may answer.
    async fn next_outbox_due(&self, ordered: bool) -> Result<Option<u64>, StoreError>;
    async fn claim_outbox(&self, max: usize, lease_ms: u64, ordered: bool) -> Result<Vec<ClaimedMessage>, StoreError>;
    async fn renew_outbox_lease(&self, id: String, token: u64, lease_ms: u64) -> Result<bool, StoreError>;
    async fn record_attempt(&self, id: String, token: u64, attempt: Option<Attempt>, disposition: Disposition) -> Result<RecordResult, StoreError>;
    async fn queued_count(&self, account: &str) -> Result<u64, StoreError>;
    async fn list_messages(&self, status: Option<MessageStatus>, limit: usize) -> Result<Vec<OutboxRow>, StoreError>;
    async fn sweep_idempotency(&self, limit: usize) -> Result<usize, StoreError>;
    async fn outbox_census(&self) -> Result<OutboxCensus, StoreError>;

    // Dead letters
    async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError>;
    async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError>;
    async fn dlq_len(&self) -> Result<u64, StoreError>;
    async fn dlq_redrive(&self, ids: Option<Vec<String>>) -> Result<RedriveResult, StoreError>;

    // Resource leases
    async fn lease_acquire(&self, resource: &str, holder: &str, ttl_ms: u64) -> Result<Acquire, StoreError>;
    async fn lease_renew(&self, resource: &str, token: u64, ttl_ms: u64) -> Result<bool, StoreError>;
    async fn lease_release(&self, resource: &str, token: u64) -> Result<bool, StoreError>;
    async fn lease_get(&self, resource: &str) -> Result<Option<LeaseRecord>, StoreError>;

    // Plugin key/value
    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn kv_set(&self, plugin: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError>;

    // Push queue
    /// When the next push delivery is due (a read; as [`Backend::next_outbox_due`]).
    async fn next_push_due(&self) -> Result<Option<u64>, StoreError>;
    async fn claim_push(&self, max: usize, lease_ms: u64) -> Result<Vec<ClaimedPush>, StoreError>;
    async fn record_push(&self, id: u64, token: u64, disposition: PushDisposition) -> Result<bool, StoreError>;
    async fn push_len(&self) -> Result<u64, StoreError>;

    // Agent tools
    async fn create_tool_call(&self, call: ToolCall) -> Result<(), StoreError>;
    async fn tool_call(&self, id: &str) -> Result<Option<ToolCall>, StoreError>;
    async fn set_prompt_message(&self, id: String, message_id: String) -> Result<(), StoreError>;
    async fn start_approved_call(&self, id: String) -> Result<Option<ToolCall>, StoreError>;
    async fn finish_tool_call(&self, id: String, end: CallEnd) -> Result<Option<ToolCall>, StoreError>;
    async fn fail_pending_call(&self, id: String, code: String, message: String) -> Result<(), StoreError>;
    async fn expire_approvals(&self, limit: usize) -> Result<usize, StoreError>;
    async fn approved_calls(&self) -> Result<Vec<String>, StoreError>;
    /// When the next pending approval expires (as [`Backend::next_outbox_due`]).
    async fn next_approval_expiry(&self) -> Result<Option<u64>, StoreError>;
    async fn fail_interrupted_calls(&self) -> Result<usize, StoreError>;

    // History
    async fn history(&self, account: &str, conversation: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError>;

    // Operations
    /// Writes exported records (`switchboard store import`); idempotent. Returns how many
    /// rows were new.
    async fn import(&self, records: Vec<ExportRecord>) -> Result<u64, StoreError>;
    /// A consistent copy of the whole store in a new redb file (redb only).
    async fn backup_to(&self, path: &Path) -> Result<BackupSummary, StoreError>;
    /// One round trip through the write path: proves that writes still commit.
    async fn ping(&self) -> Result<(), StoreError>;
    /// (transactions, requests) group-committed so far.
    fn commit_stats(&self) -> (u64, u64);
    /// How often the engine reopened its database after an I/O error (redb; 0 elsewhere).
    fn reopens(&self) -> u64;
    fn on_commit(&self, f: CommitObserver);
    /// Finishes what was submitted and releases the engine.
    async fn close(&self);
}
