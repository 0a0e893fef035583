//! [`Backend`] for the redb store: each method is the inherent one of the same name.

use super::RedbStore;
use crate::store::backend::Backend;
use crate::store::*;
use std::path::Path;

#[async_trait::async_trait]
impl Backend for RedbStore {
    fn kind(&self) -> &'static str {
        "redb"
    }

    async fn ingest_with(&self, req: IngestRequest, opts: IngestOptions) -> Result<Ingested, StoreError> {
        RedbStore::ingest_with(self, req, opts).await
    }

    async fn ingest_polled(&self, req: IngestRequest, opts: IngestOptions, lease_resource: &str, token: u64, cursor: Option<String>) -> Result<Polled, StoreError> {
        RedbStore::ingest_polled(self, req, opts, lease_resource, token, cursor).await
    }

    async fn poll_cursor(&self, account: &str) -> Result<Option<String>, StoreError> {
        RedbStore::poll_cursor(self, account)
    }

    async fn last_inbound_ms(&self, account: &str, conversation: &str) -> Result<Option<u64>, StoreError> {
        RedbStore::last_inbound_ms(self, account, conversation)
    }

    async fn sweep_dedupe(&self, limit: usize) -> Result<usize, StoreError> {
        RedbStore::sweep_dedupe(self, limit).await
    }

    async fn claim_inbox(&self, req: ClaimRequest) -> Result<InboxClaim, StoreError> {
        RedbStore::claim_inbox(self, req).await
    }

    async fn ack_inbox(&self, ids: Vec<String>, lease: String) -> Result<AckResult, StoreError> {
        RedbStore::ack_inbox(self, ids, lease).await
    }

    async fn nack_inbox(&self, ids: Vec<String>, lease: String, delay_ms: u64) -> Result<AckResult, StoreError> {
        RedbStore::nack_inbox(self, ids, lease, delay_ms).await
    }

    async fn inbox_len(&self) -> Result<u64, StoreError> {
        RedbStore::inbox_len(self)
    }

    async fn enqueue(&self, msg: NewMessage) -> Result<EnqueueOutcome, StoreError> {
        RedbStore::enqueue(self, msg).await
    }

    async fn message(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        RedbStore::message(self, id)
    }

    async fn next_outbox_due(&self, _ordered: bool) -> Result<Option<u64>, StoreError> {
        // Ordered claims park blocked messages out of the due index: it is exact either way.
        RedbStore::next_outbox_due(self)
    }

    async fn claim_outbox(&self, max: usize, lease_ms: u64, ordered: bool) -> Result<Vec<ClaimedMessage>, StoreError> {
        RedbStore::claim_outbox(self, max, lease_ms, ordered).await
    }

    async fn renew_outbox_lease(&self, id: String, token: u64, lease_ms: u64) -> Result<bool, StoreError> {
        RedbStore::renew_outbox_lease(self, id, token, lease_ms).await
    }

    async fn record_attempt(&self, id: String, token: u64, attempt: Option<Attempt>, disposition: Disposition) -> Result<RecordResult, StoreError> {
        RedbStore::record_attempt(self, id, token, attempt, disposition).await
    }

    async fn queued_count(&self, account: &str) -> Result<u64, StoreError> {
        RedbStore::queued_count(self, account)
    }

    async fn list_messages(&self, status: Option<MessageStatus>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        RedbStore::list_messages(self, status, limit)
    }

    async fn sweep_idempotency(&self, limit: usize) -> Result<usize, StoreError> {
        RedbStore::sweep_idempotency(self, limit).await
    }

    async fn outbox_census(&self) -> Result<OutboxCensus, StoreError> {
        RedbStore::outbox_census(self)
    }

    async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        RedbStore::dlq_list(self, limit)
    }

    async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        RedbStore::dlq_get(self, id)
    }

    async fn dlq_len(&self) -> Result<u64, StoreError> {
        RedbStore::dlq_len(self)
    }

    async fn dlq_redrive(&self, ids: Option<Vec<String>>) -> Result<RedriveResult, StoreError> {
        RedbStore::dlq_redrive(self, ids).await
    }

    async fn lease_acquire(&self, resource: &str, holder: &str, ttl_ms: u64) -> Result<Acquire, StoreError> {
        RedbStore::lease_acquire(self, resource, holder, ttl_ms).await
    }

    async fn lease_renew(&self, resource: &str, token: u64, ttl_ms: u64) -> Result<bool, StoreError> {
        RedbStore::lease_renew(self, resource, token, ttl_ms).await
    }

    async fn lease_release(&self, resource: &str, token: u64) -> Result<bool, StoreError> {
        RedbStore::lease_release(self, resource, token).await
    }

    async fn lease_get(&self, resource: &str) -> Result<Option<LeaseRecord>, StoreError> {
        RedbStore::lease_get(self, resource)
    }

    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        RedbStore::kv_get(self, plugin, key)
    }

    async fn kv_set(&self, plugin: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        RedbStore::kv_set(self, plugin, key, value).await
    }

    async fn next_push_due(&self) -> Result<Option<u64>, StoreError> {
        RedbStore::next_push_due(self)
    }

    async fn claim_push(&self, max: usize, lease_ms: u64) -> Result<Vec<ClaimedPush>, StoreError> {
        RedbStore::claim_push(self, max, lease_ms).await
    }

    async fn record_push(&self, id: u64, token: u64, disposition: PushDisposition) -> Result<bool, StoreError> {
        RedbStore::record_push(self, id, token, disposition).await
    }

    async fn push_len(&self) -> Result<u64, StoreError> {
        RedbStore::push_len(self)
    }

    async fn create_tool_call(&self, call: ToolCall) -> Result<(), StoreError> {
        RedbStore::create_tool_call(self, call).await
    }

    async fn tool_call(&self, id: &str) -> Result<Option<ToolCall>, StoreError> {
        RedbStore::tool_call(self, id)
    }

    async fn set_prompt_message(&self, id: String, message_id: String) -> Result<(), StoreError> {
        RedbStore::set_prompt_message(self, id, message_id).await
    }

    async fn start_approved_call(&self, id: String) -> Result<Option<ToolCall>, StoreError> {
        RedbStore::start_approved_call(self, id).await
    }

    async fn finish_tool_call(&self, id: String, end: CallEnd) -> Result<Option<ToolCall>, StoreError> {
        RedbStore::finish_tool_call(self, id, end).await
    }

    async fn fail_pending_call(&self, id: String, code: String, message: String) -> Result<(), StoreError> {
        RedbStore::fail_pending_call(self, id, code, message).await
    }

    async fn expire_approvals(&self, limit: usize) -> Result<usize, StoreError> {
        RedbStore::expire_approvals(self, limit).await
    }

    async fn approved_calls(&self) -> Result<Vec<String>, StoreError> {
        RedbStore::approved_calls(self)
    }

    async fn next_approval_expiry(&self) -> Result<Option<u64>, StoreError> {
        RedbStore::next_approval_expiry(self)
    }

    async fn fail_interrupted_calls(&self) -> Result<usize, StoreError> {
        RedbStore::fail_interrupted_calls(self).await
    }

    async fn history(&self, account: &str, conversation: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        RedbStore::history(self, account, conversation, limit)
    }



    async fn import(&self, _records: Vec<ExportRecord>) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported { op: "store import", backend: "redb", hint: "import targets PostgreSQL; copy a redb store with `switchboard backup`" })
    }

    async fn backup_to(&self, path: &Path) -> Result<BackupSummary, StoreError> {
        RedbStore::backup_to(self, path).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        RedbStore::ping(self).await
    }

    fn commit_stats(&self) -> (u64, u64) {
        RedbStore::commit_stats(self)
    }

    fn reopens(&self) -> u64 {
        RedbStore::reopens(self)
    }

    fn on_commit(&self, f: CommitObserver) {
        RedbStore::on_commit(self, f)
    }

    async fn close(&self) {
        RedbStore::close(self).await
    }

}
