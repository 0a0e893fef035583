//! Agent-tool invocations and their approvals. Every invocation is a record (with its
//! correlation id); one that needs a human's YES waits as `awaiting_approval`, indexed by its
//! conversation (so one reply resolves all of that conversation's) and by its expiry.
//!
//! Approval state changes are durable before anything acts on them: a YES found in a webhook
//! moves the call to `approved` in the webhook's own ingest transaction; the runner then moves
//! it `approved → running` (at most once) before the tool runs. A restart re-runs `approved`
//! calls and fails `running` ones (the tool may or may not have finished: never run twice).

use crate::store::tools::*;
use super::tables::{self, APPROVALS_EXPIRY, APPROVALS_PENDING, APPROVED_CALLS, RUNNING_CALLS, TOOL_CALLS, key2};
use super::{RedbStore, StoreError};
use redb::{ReadableTable, WriteTransaction};


fn load(txn: &WriteTransaction, id: &str) -> Result<Option<ToolCall>, StoreError> {
    let t = txn.open_table(TOOL_CALLS)?;
    t.get(id)?.map(|v| tables::decode("tool_calls", v.value())).transpose()
}

fn save(txn: &WriteTransaction, call: &ToolCall) -> Result<(), StoreError> {
    txn.open_table(TOOL_CALLS)?.insert(call.id.as_str(), tables::encode(call).as_slice())?;
    Ok(())
}

fn conv_key(call: &ToolCall) -> String {
    key2(call.account.as_deref().unwrap_or(""), call.conversation.as_deref().unwrap_or(""))
}

/// Takes a call out of the pending indexes (it got an answer or expired).
fn unindex_pending(txn: &WriteTransaction, call: &ToolCall) -> Result<(), StoreError> {
    txn.open_table(APPROVALS_PENDING)?.remove((conv_key(call).as_str(), call.id.as_str()))?;
    if let Some(a) = &call.approval {
        txn.open_table(APPROVALS_EXPIRY)?.remove((a.expires_at_ms, call.id.as_str()))?;
    }
    Ok(())
}

/// Applies an authorized YES (`approve`) or NO to every pending approval of the conversation,
/// inside the caller's (ingest) transaction. Approvals already past their expiry expire
/// instead. Returns the ids that were approved (to run once the transaction is durable) and
/// how many were resolved in all.
pub(super) fn resolve_in(
    txn: &WriteTransaction,
    account: &str,
    conversation: &str,
    approve: bool,
    by: &str,
    now: u64,
) -> Result<(Vec<String>, usize), StoreError> {
    let key = key2(account, conversation);
    let ids: Vec<String> = {
        let t = txn.open_table(APPROVALS_PENDING)?;
        t.range((key.as_str(), "")..=(key.as_str(), "\u{10FFFF}"))?
            .map(|r| r.map(|(k, _)| k.value().1.to_string()))
            .collect::<Result<_, _>>()?
    };
    let (mut approved, mut resolved) = (Vec::new(), 0);
    for id in ids {
        let Some(mut call) = load(txn, &id)? else { continue };
        unindex_pending(txn, &call)?;
        if call.status != CallStatus::AwaitingApproval {
            continue;
        }
        let expired = call.approval.as_ref().is_some_and(|a| a.expires_at_ms <= now);
        call.status = match (expired, approve) {
            (true, _) => CallStatus::Expired,
            (false, true) => CallStatus::Approved,
            (false, false) => CallStatus::Denied,
        };
        if call.status == CallStatus::Expired {
            call.error = Some(serde_json::json!({ "code": "approval_expired", "message": "nobody approved the call before its timeout" }));
        } else {
            resolved += 1;
            if let Some(a) = &mut call.approval {
                a.resolved_by = Some(by.to_string());
                a.resolved_at_ms = Some(now);
            }
        }
        if call.status == CallStatus::Denied {
            call.error = Some(serde_json::json!({ "code": "approval_denied", "message": format!("{by} answered NO") }));
        }
        call.updated_at_ms = now;
        if call.status == CallStatus::Approved {
            txn.open_table(APPROVED_CALLS)?.insert(call.id.as_str(), ())?;
            approved.push(call.id.clone());
        }
        save(txn, &call)?;
    }
    Ok((approved, resolved))
}

impl RedbStore {
    /// Records a new invocation: `Running` (it runs now) or `AwaitingApproval` (with its
    /// approval; it is indexed under its conversation and expiry).
    pub async fn create_tool_call(&self, call: ToolCall) -> Result<(), StoreError> {
        self.write(move |txn| {
            if call.status == CallStatus::AwaitingApproval {
                let expires = call.approval.as_ref().map_or(0, |a| a.expires_at_ms);
                txn.open_table(APPROVALS_PENDING)?.insert((conv_key(&call).as_str(), call.id.as_str()), ())?;
                txn.open_table(APPROVALS_EXPIRY)?.insert((expires, call.id.as_str()), ())?;
            }
            if call.status == CallStatus::Running {
                txn.open_table(RUNNING_CALLS)?.insert(call.id.as_str(), ())?;
            }
            save(txn, &call)
        })
        .await
    }

    pub fn tool_call(&self, id: &str) -> Result<Option<ToolCall>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(TOOL_CALLS)?;
        t.get(id)?.map(|v| tables::decode("tool_calls", v.value())).transpose()
    }

    /// Notes which outbound message carried the approval prompt.
    pub async fn set_prompt_message(&self, id: String, message_id: String) -> Result<(), StoreError> {
        self.write(move |txn| {
            let Some(mut call) = load(txn, &id)? else { return Ok(()) };
            if let Some(a) = &mut call.approval {
                a.prompt_message_id = Some(message_id);
            }
            save(txn, &call)
        })
        .await
    }

    /// `approved → running`, once: `None` if the call is not (or no longer) approved.
    pub async fn start_approved_call(&self, id: String) -> Result<Option<ToolCall>, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            txn.open_table(APPROVED_CALLS)?.remove(id.as_str())?;
            let Some(mut call) = load(txn, &id)? else { return Ok(None) };
            if call.status != CallStatus::Approved {
                return Ok(None);
            }
            call.status = CallStatus::Running;
            call.updated_at_ms = now;
            txn.open_table(RUNNING_CALLS)?.insert(call.id.as_str(), ())?;
            save(txn, &call)?;
            Ok(Some(call))
        })
        .await
    }

    /// Records how a running call ended.
    pub async fn finish_tool_call(&self, id: String, end: CallEnd) -> Result<Option<ToolCall>, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            txn.open_table(RUNNING_CALLS)?.remove(id.as_str())?;
            let Some(mut call) = load(txn, &id)? else { return Ok(None) };
            match end {
                CallEnd::Succeeded(v) => {
                    call.status = CallStatus::Succeeded;
                    call.result = Some(v);
                }
                CallEnd::Failed { code, message } => {
                    call.status = CallStatus::Failed;
                    call.error = Some(serde_json::json!({ "code": code, "message": message }));
                }
            }
            call.updated_at_ms = now;
            save(txn, &call)?;
            Ok(Some(call))
        })
        .await
    }

    /// A call whose approval could not even be asked for (the prompt was refused).
    pub async fn fail_pending_call(&self, id: String, code: String, message: String) -> Result<(), StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let Some(mut call) = load(txn, &id)? else { return Ok(()) };
            unindex_pending(txn, &call)?;
            call.status = CallStatus::Failed;
            call.error = Some(serde_json::json!({ "code": code, "message": message }));
            call.updated_at_ms = now;
            save(txn, &call)
        })
        .await
    }

    /// Expires pending approvals whose timeout has passed; returns how many.
    pub async fn expire_approvals(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.now_ms();
        // Look (a read) before writing: this runs every 100 ms, and an empty write transaction
        // would still be a durable commit (an fsync) each time.
        {
            let txn = self.read()?;
            if txn.open_table(APPROVALS_EXPIRY)?.range((0, "")..(now + 1, ""))?.next().is_none() {
                return Ok(0);
            }
        }
        self.write(move |txn| {
            let due: Vec<String> = {
                let t = txn.open_table(APPROVALS_EXPIRY)?;
                t.range((0, "")..(now + 1, ""))?
                    .take(limit)
                    .map(|r| r.map(|(k, _)| k.value().1.to_string()))
                    .collect::<Result<_, _>>()?
            };
            let mut n = 0;
            for id in due {
                let Some(mut call) = load(txn, &id)? else { continue };
                unindex_pending(txn, &call)?;
                if call.status != CallStatus::AwaitingApproval {
                    continue;
                }
                call.status = CallStatus::Expired;
                call.error = Some(serde_json::json!({ "code": "approval_expired", "message": "nobody approved the call before its timeout" }));
                call.updated_at_ms = now;
                save(txn, &call)?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }

    /// Calls approved but not started (e.g. the daemon stopped in between).
    /// When the next pending approval expires (a read).
    pub fn next_approval_expiry(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(APPROVALS_EXPIRY)?;
        Ok(t.first()?.map(|(k, _)| k.value().0))
    }

    pub fn approved_calls(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(APPROVED_CALLS)?;
        t.iter()?.map(|r| r.map(|(k, _)| k.value().to_string()).map_err(StoreError::from)).collect()
    }

    /// At startup: calls left `running` by a previous process fail (the tool may have run;
    /// running it again could do it twice). Returns how many.
    pub async fn fail_interrupted_calls(&self) -> Result<usize, StoreError> {
        let now = self.now_ms();
        self.write(move |txn| {
            let ids: Vec<String> = {
                let t = txn.open_table(RUNNING_CALLS)?;
                t.iter()?.map(|r| r.map(|(k, _)| k.value().to_string())).collect::<Result<_, _>>()?
            };
            let mut n = 0;
            for id in ids {
                txn.open_table(RUNNING_CALLS)?.remove(id.as_str())?;
                let Some(mut call) = load(txn, &id)? else { continue };
                if call.status != CallStatus::Running {
                    continue;
                }
                n += 1;
                call.status = CallStatus::Failed;
                call.error = Some(serde_json::json!({ "code": "interrupted", "message": "the daemon stopped while the tool ran; it was not retried" }));
                call.updated_at_ms = now;
                save(txn, &call)?;
            }
            Ok(n)
        })
        .await
    }
}
