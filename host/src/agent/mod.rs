//! The agent side: what Switchboard does for the AI agents behind it beyond the pull inbox.
//!
//! * [`tools`]: agent tools (`agent-tool` plugins) listed and invoked, arguments checked
//!   against the tool's schema ([`schema`]), every invocation recorded;
//! * [`approvals`]: a tool that needs a human's YES asks through the conversation's channel;
//!   an authorized reply (resolved in the webhook's own ingest transaction) runs it, silence
//!   until the timeout fails it;
//! * [`push`]: accounts with `deliver_to` get their events POSTed, signed with Standard
//!   Webhooks, with leases, retries, backoff and dead letters, in order per conversation.

pub mod approvals;
pub mod push;
pub mod schema;
pub mod tools;

use crate::app::App;
use crate::store::{HistoryOptions, IngestOptions, PushRoute};
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Wake-ups shared by the agent-side services (in-memory; everything they act on is durable).
#[derive(Default)]
pub struct AgentState {
    /// Pullable inbox events were stored (wakes long-polling claims).
    pub inbox_wake: Notify,
    /// Events were queued for push (wakes the push worker).
    pub push_wake: Notify,
    /// Calls were approved, or one began to await approval (wakes the approvals task, which
    /// runs approved calls and expires unanswered ones).
    pub approved_wake: Notify,
    /// Some tool call changed state (wakes long-polling invokes and approval reads).
    pub calls_changed: Notify,
    /// Shutdown began: long-polls answer at once with what they have.
    pub stopping: std::sync::atomic::AtomicBool,
}

impl AgentState {
    /// Ends every long-poll now (shutdown must not wait for them).
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.inbox_wake.notify_waiters();
        self.calls_changed.notify_waiters();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Starts the push worker and the approvals task.
pub fn spawn(app: Arc<App>, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(push::run(app.clone(), shutdown.clone())),
        tokio::spawn(approvals::run(app, shutdown)),
    ]
}

/// How `account`'s webhook events are stored: its approvers, its push route, and the
/// history and session limits of `[inbox]` (from the config in force now).
pub fn ingest_options(app: &App, account: &str) -> IngestOptions {
    let config = app.current_config();
    let history = Some(history_options(&config));
    let Some(a) = config.accounts.get(account) else {
        return IngestOptions { history, ..Default::default() };
    };
    IngestOptions {
        approvers: a.agent.approvers.clone(),
        push: a.agent.push.as_ref().map(|p| PushRoute { kinds: p.events.clone(), pull_too: p.pull_and_push }),
        history,
    }
}

pub fn history_options(config: &crate::config::Config) -> HistoryOptions {
    HistoryOptions {
        limit: config.inbox.history_limit,
        session_timeout_ms: config.inbox.session_timeout_ms,
        max_open_sessions: config.inbox.max_open_sessions,
    }
}

/// After a webhook's events are durable: wake whoever waits for them.
pub fn after_ingest(app: &App, effects: &crate::store::IngestEffects) {
    if effects.pullable > 0 {
        app.agent.inbox_wake.notify_waiters();
    }
    if effects.pushed > 0 {
        app.agent.push_wake.notify_one();
    }
    if !effects.approved_calls.is_empty() {
        app.agent.approved_wake.notify_one();
    }
    if effects.approvals_resolved > 0 || !effects.approved_calls.is_empty() {
        app.agent.calls_changed.notify_waiters();
    }
}

/// Claims from the pull inbox; with nothing claimable, waits up to `wait` for an ingest to
/// store events (woken at once; re-checked every 250 ms for events that become visible by
/// time: nacked with a delay, or whose lease expired).
pub async fn claim_inbox(app: &App, req: crate::store::ClaimRequest, wait: std::time::Duration) -> Result<crate::store::InboxClaim, crate::store::StoreError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let woken = app.agent.inbox_wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let claim = app.store.claim_inbox(req.clone()).await?;
        let now = tokio::time::Instant::now();
        if !claim.events.is_empty() || claim.held_limit.is_some() || now >= deadline || app.agent.is_stopping() {
            return Ok(claim);
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep((deadline - now).min(std::time::Duration::from_millis(250))) => {}
        }
    }
}
