//! Human approval of tool calls, through the conversation's own channel.
//!
//! `request` records the call as `awaiting_approval` (durable first), then sends the prompt
//! as an ordinary outbound message ("… Reply YES or NO"), idempotent on the call id. The reply
//! is found by the webhook intake: in the same ingest transaction that stores a message, an
//! authorized sender's YES/NO (per-account `approvers`) resolves **every** pending approval of
//! that conversation (`store::tools::resolve_in`), so a redelivered webhook (a duplicate)
//! cannot resolve twice and a crash cannot lose a YES that was acknowledged. Approved calls
//! are run by [`run`] from the durable `approved` queue once that transaction committed;
//! unanswered ones expire on the daemon's clock.

use super::tools::{self, ToolsError};
use crate::app::App;
use crate::model::MessageBody;
use crate::outbox::{self, SendRequest};
use crate::store::{ApprovalInfo, CallStatus, Priority, StoreError, ToolCall};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often pending approvals are checked for expiry (and approved calls picked up).
const TICK: Duration = Duration::from_millis(100);

/// The prompt sent to the conversation.
pub fn prompt_text(call: &ToolCall) -> String {
    let mut args = call.args.to_string();
    if args.chars().count() > 300 {
        args = args.chars().take(300).collect::<String>() + "…";
    }
    format!("Approval needed: the assistant wants to run `{}` with {args}. Reply YES or NO.", call.tool)
}

/// Records `call` as awaiting approval, sends the prompt, and waits up to `wait` for the outcome.
pub(super) async fn request(app: &App, mut call: ToolCall, to: Option<String>, wait: Duration) -> Result<ToolCall, ToolsError> {
    let (Some(account), Some(conversation)) = (call.account.clone(), call.conversation.clone()) else {
        return Err(ToolsError::NeedsConversation(call.tool));
    };
    let timeout = app.current_config().approvals.timeout_ms;
    call.status = CallStatus::AwaitingApproval;
    call.approval = Some(ApprovalInfo {
        expires_at_ms: call.created_at_ms + timeout,
        prompt_message_id: None,
        resolved_by: None,
        resolved_at_ms: None,
    });
    app.store.create_tool_call(call.clone()).await?;
    // The approvals task sleeps until the next expiry it knows of; this one may be sooner.
    app.agent.approved_wake.notify_one();
    tracing::info!(call_id = %call.id, tool = %call.tool, account = %account, correlation_id = %call.correlation_id, "tool call awaits approval");
    let sent = outbox::submit(
        app,
        SendRequest {
            account: account.clone(),
            to: to.unwrap_or_else(|| conversation.clone()),
            conversation: Some(conversation),
            body: MessageBody::Text(prompt_text(&call)),
            metadata: None,
            idempotency_key: Some(format!("approval:{}", call.id)),
            correlation_id: call.correlation_id.clone(),
            priority: Priority::High,
        },
    )
    .await;
    match sent {
        Ok((row, _)) => app.store.set_prompt_message(call.id.clone(), row.id).await?,
        Err(e) => {
            app.store.fail_pending_call(call.id.clone(), "prompt_failed".into(), e.to_string()).await?;
            return Err(ToolsError::Prompt(e));
        }
    }
    Ok(wait_for(app, &call.id, wait).await?.unwrap_or(call))
}

/// The call `id`, once it reached a final state or `wait` passed (long-poll).
pub async fn wait_for(app: &App, id: &str, wait: Duration) -> Result<Option<ToolCall>, StoreError> {
    let deadline = Instant::now() + wait;
    loop {
        let changed = app.agent.calls_changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let call = app.store.tool_call(id).await?;
        let now = Instant::now();
        if call.as_ref().is_none_or(|c| c.status.is_final()) || now >= deadline || app.agent.is_stopping() {
            return Ok(call);
        }
        tokio::select! {
            _ = changed => {}
            // Expiry moves on the daemon's clock, which may not be the wall clock: look again.
            _ = tokio::time::sleep((deadline - now).min(TICK)) => {}
        }
    }
}

/// Fails calls a previous process left running, then until shutdown: expires approvals whose
/// timeout passed and runs approved calls (each once).
pub async fn run(app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    match app.store.fail_interrupted_calls().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(calls = n, "tool calls interrupted by the last stop were failed, not re-run"),
        Err(e) => tracing::error!(error = %e, "could not fail interrupted tool calls"),
    }
    loop {
        if *shutdown.borrow() {
            app.agent.stop();
            return;
        }
        // Listen before looking (see `outbox::worker`).
        let woken = app.agent.approved_wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let moved = app.clock.moved();
        match app.store.expire_approvals(1_000).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(calls = n, "approvals expired unanswered");
                app.agent.calls_changed.notify_waiters();
            }
            Err(e) => tracing::error!(error = %e, "expiring approvals failed"),
        }
        match app.store.approved_calls().await {
            Ok(ids) => {
                for id in ids {
                    let app = app.clone();
                    tokio::spawn(async move { run_approved(&app, id).await });
                }
            }
            Err(e) => tracing::error!(error = %e, "reading approved calls failed"),
        }
        // Sleep until the next approval expires; a reply that approves a call wakes this loop.
        let sleep = match app.store.next_approval_expiry().await {
            Ok(next) => crate::idle::sleep_for(next, app.clock.now_ms(), TICK, app.store.shared()),
            Err(_) => TICK,
        };
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(sleep) => {}
            _ = crate::clock::moved(moved) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn run_approved(app: &App, id: String) {
    match app.store.start_approved_call(id.clone()).await {
        Ok(Some(call)) => {
            let by = call.approval.as_ref().and_then(|a| a.resolved_by.as_deref()).map(crate::redact::mask_phone).unwrap_or_default();
            tracing::info!(call_id = %id, tool = %call.tool, by = %by, "approved tool call runs");
            if let Err(e) = tools::run(app, call).await {
                tracing::error!(call_id = %id, error = %e, "recording the tool call's outcome failed");
            }
        }
        Ok(None) => {} // another pass already started it
        Err(e) => tracing::error!(call_id = %id, error = %e, "starting an approved tool call failed"),
    }
}
