//! [`Backend`] for the PostgreSQL store: each method is the inherent one of the same name.

use super::PgStore;
use crate::store::backend::Backend;
use crate::store::*;
use std::path::Path;

#[async_trait::async_trait]
impl Backend for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    async fn ingest_with(&self, req: IngestRequest, opts: IngestOptions) -> Result<Ingested, StoreError> {
        PgStore::ingest_with(self, req, opts).await
    }

    async fn ingest_polled(&self, req: IngestRequest, opts: IngestOptions, lease_resource: &str, token: u64, cursor: Option<String>) -> Result<Polled, StoreError> {
        PgStore::ingest_polled(self, req, opts, lease_resource, token, cursor).await
    }

    async fn poll_cursor(&self, account: &str) -> Result<Option<String>, StoreError> {
        PgStore::poll_cursor(self, account).await
    }

    async fn last_inbound_ms(&self, account: &str, conversation: &str) -> Result<Option<u64>, StoreError> {
        PgStore::last_inbound_ms(self, account, conversation).await
    }

    async fn sweep_dedupe(&self, limit: usize) -> Result<usize, StoreError> {
        PgStore::sweep_dedupe(self, limit).await
    }

    async fn claim_inbox(&self, req: ClaimRequest) -> Result<InboxClaim, StoreError> {
        PgStore::claim_inbox(self, req).await
    }

    async fn ack_inbox(&self, ids: Vec<String>, lease: String) -> Result<AckResult, StoreError> {
        PgStore::ack_inbox(self, ids, lease).await
    }

    async fn nack_inbox(&self, ids: Vec<String>, lease: String, delay_ms: u64) -> Result<AckResult, StoreError> {
        PgStore::nack_inbox(self, ids, lease, delay_ms).await
    }

    async fn inbox_len(&self) -> Result<u64, StoreError> {
        PgStore::inbox_len(self).await
    }

    async fn enqueue(&self, msg: NewMessage) -> Result<EnqueueOutcome, StoreError> {
        PgStore::enqueue(self, msg).await
    }

    async fn message(&self, id: &str) -> Result<Option<OutboxRow>, StoreError> {
        PgStore::message(self, id).await
    }

    async fn next_outbox_due(&self, ordered: bool) -> Result<Option<u64>, StoreError> {
        PgStore::next_outbox_due(self, ordered).await
    }

    async fn claim_outbox(&self, max: usize, lease_ms: u64, ordered: bool) -> Result<Vec<ClaimedMessage>, StoreError> {
        PgStore::claim_outbox(self, max, lease_ms, ordered).await
    }

    async fn renew_outbox_lease(&self, id: String, token: u64, lease_ms: u64) -> Result<bool, StoreError> {
        PgStore::renew_outbox_lease(self, id, token, lease_ms).await
    }

    async fn record_attempt(&self, id: String, token: u64, attempt: Option<Attempt>, disposition: Disposition) -> Result<RecordResult, StoreError> {
        PgStore::record_attempt(self, id, token, attempt, disposition).await
    }

    async fn queued_count(&self, account: &str) -> Result<u64, StoreError> {
        PgStore::queued_count(self, account).await
    }

    async fn list_messages(&self, status: Option<MessageStatus>, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        PgStore::list_messages(self, status, limit).await
    }

    async fn sweep_idempotency(&self, limit: usize) -> Result<usize, StoreError> {
        PgStore::sweep_idempotency(self, limit).await
    }

    async fn outbox_census(&self) -> Result<OutboxCensus, StoreError> {
        PgStore::outbox_census(self).await
    }

    async fn dlq_list(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        PgStore::dlq_list(self, limit).await
    }

    async fn dlq_get(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        PgStore::dlq_get(self, id).await
    }

    async fn dlq_len(&self) -> Result<u64, StoreError> {
        PgStore::dlq_len(self).await
    }

    async fn dlq_redrive(&self, ids: Option<Vec<String>>) -> Result<RedriveResult, StoreError> {
        PgStore::dlq_redrive(self, ids).await
    }

    async fn lease_acquire(&self, resource: &str, holder: &str, ttl_ms: u64) -> Result<Acquire, StoreError> {
        PgStore::lease_acquire(self, resource, holder, ttl_ms).await
    }

    async fn lease_renew(&self, resource: &str, token: u64, ttl_ms: u64) -> Result<bool, StoreError> {
        PgStore::lease_renew(self, resource, token, ttl_ms).await
    }

    async fn lease_release(&self, resource: &str, token: u64) -> Result<bool, StoreError> {
        PgStore::lease_release(self, resource, token).await
    }

    async fn lease_get(&self, resource: &str) -> Result<Option<LeaseRecord>, StoreError> {
        PgStore::lease_get(self, resource).await
    }

    async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        PgStore::kv_get(self, plugin, key).await
    }

    async fn kv_set(&self, plugin: &str, key: &str, value: Option<Vec<u8>>) -> Result<(), StoreError> {
        PgStore::kv_set(self, plugin, key, value).await
    }

    async fn next_push_due(&self) -> Result<Option<u64>, StoreError> {
        PgStore::next_push_due(self).await
    }

    async fn claim_push(&self, max: usize, lease_ms: u64) -> Result<Vec<ClaimedPush>, StoreError> {
        PgStore::claim_push(self, max, lease_ms).await
    }

    async fn record_push(&self, id: u64, token: u64, disposition: PushDisposition) -> Result<bool, StoreError> {
        PgStore::record_push(self, id, token, disposition).await
    }

    async fn push_len(&self) -> Result<u64, StoreError> {
        PgStore::push_len(self).await
    }

    async fn create_tool_call(&self, call: ToolCall) -> Result<(), StoreError> {
        PgStore::create_tool_call(self, call).await
    }

    async fn tool_call(&self, id: &str) -> Result<Option<ToolCall>, StoreError> {
        PgStore::tool_call(self, id).await
    }

    async fn set_prompt_message(&self, id: String, message_id: String) -> Result<(), StoreError> {
        PgStore::set_prompt_message(self, id, message_id).await
    }

    async fn start_approved_call(&self, id: String) -> Result<Option<ToolCall>, StoreError> {
        PgStore::start_approved_call(self, id).await
    }

    async fn finish_tool_call(&self, id: String, end: CallEnd) -> Result<Option<ToolCall>, StoreError> {
        PgStore::finish_tool_call(self, id, end).await
    }

    async fn fail_pending_call(&self, id: String, code: String, message: String) -> Result<(), StoreError> {
        PgStore::fail_pending_call(self, id, code, message).await
    }

    async fn expire_approvals(&self, limit: usize) -> Result<usize, StoreError> {
        PgStore::expire_approvals(self, limit).await
    }

    async fn approved_calls(&self) -> Result<Vec<String>, StoreError> {
        PgStore::approved_calls(self).await
    }

    async fn next_approval_expiry(&self) -> Result<Option<u64>, StoreError> {
        PgStore::next_approval_expiry(self).await
    }

    async fn fail_interrupted_calls(&self) -> Result<usize, StoreError> {
        PgStore::fail_interrupted_calls(self).await
    }

    async fn history(&self, account: &str, conversation: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        PgStore::history(self, account, conversation, limit).await
    }



    async fn import(&self, records: Vec<ExportRecord>) -> Result<u64, StoreError> {
        PgStore::import(self, records).await
    }

    async fn backup_to(&self, path: &Path) -> Result<BackupSummary, StoreError> {
        PgStore::backup_to(self, path).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        PgStore::ping(self).await
    }

    fn commit_stats(&self) -> (u64, u64) {
        PgStore::commit_stats(self)
    }

    fn reopens(&self) -> u64 {
        0
    }

    fn on_commit(&self, f: CommitObserver) {
        PgStore::on_commit(self, f)
    }

    async fn close(&self) {
        PgStore::close(self).await
    }

}
