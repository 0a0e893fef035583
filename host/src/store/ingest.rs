//! Inbound webhook events: dedupe, inbox rows, conversation state and outbound status changes,
//! all in the caller's one (group-committed) transaction.

use super::history::HistoryOptions;
use crate::model::{EventKind, InboundEvent};

#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub account: String,
    pub correlation_id: String,
    pub events: Vec<InboundEvent>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    pub stored: usize,
    pub duplicates: usize,
    pub status_updates: usize,
}

/// How one account's events are routed and what they may resolve (from its config).
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Senders whose YES/NO resolves the conversation's pending approvals.
    pub approvers: Vec<String>,
    /// Push delivery of the account's events, when configured.
    pub push: Option<PushRoute>,
    /// Conversation history and session limits; `None` keeps no history.
    pub history: Option<HistoryOptions>,
}

/// Which events go to the push queue, and whether they stay pullable too.
#[derive(Debug, Clone, Default)]
pub struct PushRoute {
    /// `None`: every kind.
    pub kinds: Option<Vec<EventKind>>,
    pub pull_too: bool,
}

/// What a stored webhook set in motion besides the inbox rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestEffects {
    /// Tool calls approved by a YES in this webhook: run them now that it is durable.
    pub approved_calls: Vec<String>,
    /// Approvals resolved (YES or NO).
    pub approvals_resolved: usize,
    /// Events queued for push delivery.
    pub pushed: usize,
    /// Events queued in the pull inbox.
    pub pullable: usize,
}

/// The result of [`Store::ingest_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    Stored(IngestOutcome, IngestEffects),
    /// Nothing was written: a message would open a session beyond the account's cap.
    SessionLimit { open: usize },
}

/// The result of [`Store::ingest_polled`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Written (or refused by the session limit, with nothing written and the cursor kept).
    Stored(Ingested),
    /// The lease token no longer holds the poller's lease: nothing was written.
    Fenced,
}
