//! Agent-tool invocations and their approvals. Every invocation is a record (with its
//! correlation id); one that needs a human's YES waits as `awaiting_approval`, indexed by its
//! conversation (so one reply resolves all of that conversation's) and by its expiry.
//!
//! Approval state changes are durable before anything acts on them: a YES found in a webhook
//! moves the call to `approved` in the webhook's own ingest transaction; the runner then moves
//! it `approved → running` (at most once) before the tool runs. A restart re-runs `approved`
//! calls and fails `running` ones (the tool may or may not have finished: never run twice).

use super::tables::{self, APPROVALS_EXPIRY, APPROVALS_PENDING, APPROVED_CALLS, RUNNING_CALLS, TOOL_CALLS, key2};
use super::{Store, StoreError};
use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// Waiting for an authorized YES/NO in its conversation.
    AwaitingApproval,
    /// YES received; the tool runs next.
    Approved,
    Running,
    Succeeded,
    /// The tool said no, or the sandbox stopped it, or a restart interrupted it.
    Failed,
    /// NO received.
    Denied,
    /// Nobody answered before the approval timeout.
    Expired,
}

impl CallStatus {
    pub fn is_final(self) -> bool {
        matches!(self, CallStatus::Succeeded | CallStatus::Failed | CallStatus::Denied | CallStatus::Expired)
    }
}

/// The approval side of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalInfo {
    pub expires_at_ms: u64,
    /// The outbound message that carried the prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub tool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    pub args: serde_json::Value,
    pub correlation_id: String,
    pub status: CallStatus,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// `{"code","message"}` of a failed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum CallEnd {
    Succeeded(serde_json::Value),
    Failed { code: String, message: String },
}

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

impl Store {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::{EventKind, InboundEvent};
    use crate::store::{IngestOptions, IngestRequest, Ingested, StoreOptions};
    use std::sync::Arc;

    fn pending(id: &str, expires_at_ms: u64) -> ToolCall {
        ToolCall {
            id: id.into(),
            tool: "t".into(),
            account: Some("a".into()),
            conversation: Some("c".into()),
            args: serde_json::json!({}),
            correlation_id: "cid".into(),
            status: CallStatus::AwaitingApproval,
            created_at_ms: 0,
            updated_at_ms: 0,
            approval: Some(ApprovalInfo { expires_at_ms, prompt_message_id: None, resolved_by: None, resolved_at_ms: None }),
            result: None,
            error: None,
        }
    }

    fn reply(id: &str, sender: &str, text: &str) -> IngestRequest {
        let event = InboundEvent {
            provider_event_id: id.into(),
            kind: EventKind::Message,
            conversation: "c".into(),
            sender: Some(sender.into()),
            text: Some(text.into()),
            timestamp_ms: None,
            status: None,
            payload: serde_json::json!({}),
        };
        IngestRequest { account: "a".into(), correlation_id: "x".into(), events: vec![event] }
    }

    #[tokio::test]
    async fn a_yes_approves_all_pending_calls_of_the_conversation_once_and_a_crash_never_reruns() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let store = Store::open(&dir.path().join("s.redb"), Arc::new(clock.clone()), StoreOptions::default()).unwrap();
        store.create_tool_call(pending("c1", 10_000)).await.unwrap();
        store.create_tool_call(pending("c2", 10_000)).await.unwrap();
        let opts = IngestOptions { approvers: vec!["+100".into()], ..Default::default() };

        let stranger = store.ingest_with(reply("e1", "999", "yes"), opts.clone()).await.unwrap();
        assert!(matches!(stranger, Ingested::Stored(_, ref fx) if fx.approved_calls.is_empty()));
        let yes = store.ingest_with(reply("e2", "100", " YES "), opts.clone()).await.unwrap();
        let Ingested::Stored(_, fx) = yes else { panic!() };
        assert_eq!(fx.approved_calls, ["c1", "c2"]);
        let dup = store.ingest_with(reply("e2", "100", " YES "), opts.clone()).await.unwrap();
        assert!(matches!(dup, Ingested::Stored(o, ref fx) if o.duplicates == 1 && fx.approved_calls.is_empty()));
        assert_eq!(store.approved_calls().unwrap(), ["c1", "c2"]);

        assert!(store.start_approved_call("c1".into()).await.unwrap().is_some());
        assert!(store.start_approved_call("c1".into()).await.unwrap().is_none(), "started once");
        // The process dies while c1 runs: the next start fails it instead of running it again.
        store.close().await;
        drop(store);
        let store = Store::open(&dir.path().join("s.redb"), Arc::new(clock.clone()), StoreOptions::default()).unwrap();
        assert_eq!(store.fail_interrupted_calls().await.unwrap(), 1);
        assert_eq!(store.tool_call("c1").unwrap().unwrap().status, CallStatus::Failed);
        assert_eq!(store.approved_calls().unwrap(), ["c2"], "approved but not started: still queued");
    }

    #[tokio::test]
    async fn unanswered_approvals_expire_and_a_late_yes_approves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let store = Store::open(&dir.path().join("s.redb"), Arc::new(clock.clone()), StoreOptions::default()).unwrap();
        store.create_tool_call(pending("c1", 5_000)).await.unwrap();
        assert_eq!(store.expire_approvals(10).await.unwrap(), 0);
        clock.set_ms(5_000);
        assert_eq!(store.expire_approvals(10).await.unwrap(), 1);
        assert_eq!(store.tool_call("c1").unwrap().unwrap().status, CallStatus::Expired);
        let opts = IngestOptions { approvers: vec!["100".into()], ..Default::default() };
        let Ingested::Stored(_, fx) = store.ingest_with(reply("e1", "100", "yes"), opts).await.unwrap() else { panic!() };
        assert!(fx.approved_calls.is_empty());
    }
}
