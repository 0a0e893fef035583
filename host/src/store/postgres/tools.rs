//! Agent-tool invocations and their approvals. The call's status column is the index: pending
//! approvals are `awaiting_approval` rows (by conversation and by expiry), approved-not-started
//! are `approved`, running ones `running`. Every transition locks the row, so a call is
//! approved, started and finished at most once across daemons.

use super::{PgStore, Tx, enum_text, execute, from_json, i, query, query_opt, to_json};
use crate::store::{CallEnd, CallStatus, StoreError, ToolCall};

async fn load(tx: &Tx<'_>, id: &str) -> Result<Option<ToolCall>, StoreError> {
    let row = query_opt(tx, "SELECT call FROM tool_calls WHERE id = $1 FOR UPDATE", &[&id]).await?;
    row.map(|r| from_json("tool_calls", r.get(0))).transpose()
}

/// Writes the call; `runner` names the daemon that runs it (set when it becomes `running`).
async fn save_as(tx: &Tx<'_>, call: &ToolCall, runner: Option<&str>) -> Result<(), StoreError> {
    let expires = call.approval.as_ref().map(|a| i(a.expires_at_ms));
    execute(
        tx,
        "INSERT INTO tool_calls (id, account, conversation, status, approval_expires, runner, call) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET account = EXCLUDED.account, conversation = EXCLUDED.conversation, status = EXCLUDED.status,
             approval_expires = EXCLUDED.approval_expires, runner = COALESCE(EXCLUDED.runner, tool_calls.runner), call = EXCLUDED.call",
        &[&call.id, &call.account.as_deref().unwrap_or(""), &call.conversation.as_deref().unwrap_or(""), &enum_text(&call.status), &expires, &runner, &to_json(call)],
    )
    .await?;
    Ok(())
}

async fn save(tx: &Tx<'_>, call: &ToolCall) -> Result<(), StoreError> {
    save_as(tx, call, None).await
}

fn expired_error() -> serde_json::Value {
    serde_json::json!({ "code": "approval_expired", "message": "nobody approved the call before its timeout" })
}

/// Applies an authorized YES (`approve`) or NO to every pending approval of the conversation,
/// inside the caller's (ingest) transaction. Returns the approved ids and how many resolved.
pub(super) async fn resolve_in(
    tx: &Tx<'_>,
    account: &str,
    conversation: &str,
    approve: bool,
    by: &str,
    now: u64,
) -> Result<(Vec<String>, usize), StoreError> {
    let rows = query(
        tx,
        "SELECT call FROM tool_calls WHERE account = $1 AND conversation = $2 AND status = 'awaiting_approval' ORDER BY id FOR UPDATE",
        &[&account, &conversation],
    )
    .await?;
    let (mut approved, mut resolved) = (Vec::new(), 0);
    for r in rows {
        let mut call: ToolCall = from_json("tool_calls", r.get(0))?;
        let expired = call.approval.as_ref().is_some_and(|a| a.expires_at_ms <= now);
        call.status = match (expired, approve) {
            (true, _) => CallStatus::Expired,
            (false, true) => CallStatus::Approved,
            (false, false) => CallStatus::Denied,
        };
        if call.status == CallStatus::Expired {
            call.error = Some(expired_error());
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
            approved.push(call.id.clone());
        }
        save(tx, &call).await?;
    }
    Ok((approved, resolved))
}

impl PgStore {
    pub async fn create_tool_call(&self, call: ToolCall) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let runner = (call.status == CallStatus::Running).then_some(self.instance.as_str());
        save_as(&tx, &call, runner).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn tool_call(&self, id: &str) -> Result<Option<ToolCall>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT call FROM tool_calls WHERE id = $1", &[&id]).await?;
        tx.commit().await?;
        row.map(|r| from_json("tool_calls", r.get(0))).transpose()
    }

    /// Notes which outbound message carried the approval prompt.
    pub async fn set_prompt_message(&self, id: String, message_id: String) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        if let Some(mut call) = load(&tx, &id).await? {
            if let Some(a) = &mut call.approval {
                a.prompt_message_id = Some(message_id);
            }
            save(&tx, &call).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `approved → running`, once: `None` if the call is not (or no longer) approved.
    pub async fn start_approved_call(&self, id: String) -> Result<Option<ToolCall>, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let Some(mut call) = load(&tx, &id).await? else { return Ok(None) };
        if call.status != CallStatus::Approved {
            return Ok(None);
        }
        call.status = CallStatus::Running;
        call.updated_at_ms = now;
        save_as(&tx, &call, Some(&self.instance)).await?;
        tx.commit().await?;
        Ok(Some(call))
    }

    /// Records how a running call ended.
    pub async fn finish_tool_call(&self, id: String, end: CallEnd) -> Result<Option<ToolCall>, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let Some(mut call) = load(&tx, &id).await? else { return Ok(None) };
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
        save(&tx, &call).await?;
        tx.commit().await?;
        Ok(Some(call))
    }

    /// A call whose approval could not even be asked for (the prompt was refused).
    pub async fn fail_pending_call(&self, id: String, code: String, message: String) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        if let Some(mut call) = load(&tx, &id).await? {
            call.status = CallStatus::Failed;
            call.error = Some(serde_json::json!({ "code": code, "message": message }));
            call.updated_at_ms = now;
            save(&tx, &call).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Expires pending approvals whose timeout has passed; returns how many.
    pub async fn expire_approvals(&self, limit: usize) -> Result<usize, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let rows = query(
            &tx,
            "SELECT call FROM tool_calls WHERE status = 'awaiting_approval' AND approval_expires <= $1
             ORDER BY approval_expires, id LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&i(now), &(limit as i64)],
        )
        .await?;
        let n = rows.len();
        for r in rows {
            let mut call: ToolCall = from_json("tool_calls", r.get(0))?;
            call.status = CallStatus::Expired;
            call.error = Some(expired_error());
            call.updated_at_ms = now;
            save(&tx, &call).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// When the next pending approval expires (a read).
    pub async fn next_approval_expiry(&self) -> Result<Option<u64>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = query_opt(&tx, "SELECT MIN(approval_expires) FROM tool_calls WHERE status = 'awaiting_approval'", &[]).await?;
        tx.commit().await?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)).map(|t| t.max(0) as u64))
    }

    /// Calls approved but not started (e.g. the daemon stopped in between).
    pub async fn approved_calls(&self) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let rows = query(&tx, "SELECT id FROM tool_calls WHERE status = 'approved' ORDER BY id", &[]).await?;
        tx.commit().await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// At startup: calls left `running` by a daemon that is gone fail (the tool may have run;
    /// running it again could do it twice). A daemon is gone when none of its connections is
    /// left (`pg_stat_activity`, by `application_name`): calls another live daemon is running
    /// are left alone. The daemons must connect as the same role to see each other.
    pub async fn fail_interrupted_calls(&self) -> Result<usize, StoreError> {
        let now = self.now_ms();
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let rows = query(
            &tx,
            "SELECT call FROM tool_calls t WHERE status = 'running' AND (runner IS NULL OR NOT EXISTS (
                 SELECT 1 FROM pg_stat_activity a WHERE a.application_name = $1 || t.runner))
             ORDER BY id FOR UPDATE",
            &[&super::APP_PREFIX],
        )
        .await?;
        let n = rows.len();
        for r in rows {
            let mut call: ToolCall = from_json("tool_calls", r.get(0))?;
            call.status = CallStatus::Failed;
            call.error = Some(serde_json::json!({ "code": "interrupted", "message": "the daemon stopped while the tool ran; it was not retried" }));
            call.updated_at_ms = now;
            save(&tx, &call).await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}
