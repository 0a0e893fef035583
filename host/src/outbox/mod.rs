//! Outbound messages: accepting them from the API (idempotently) and the worker that
//! delivers them through the account's plugin.

pub mod backoff;
pub mod policy;
pub mod worker;

use crate::app::App;
use crate::model::MessageBody;
use crate::store::{EnqueueOutcome, NewMessage, OutboxRow, Priority, StoreError};
use sha2::{Digest, Sha256};

/// Customer-service window length for channels that declare `window-24h`.
pub const WINDOW_MS: u64 = 24 * 3_600_000;

pub struct SendRequest {
    pub account: String,
    pub to: String,
    pub conversation: Option<String>,
    pub body: MessageBody,
    pub metadata: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    pub correlation_id: String,
    pub priority: Priority,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("unknown account `{0}`")]
    UnknownAccount(String),
    #[error("account `{account}` is not running: {}", reasons.join("; "))]
    NotReady { account: String, reasons: Vec<String> },
    #[error(
        "the 24-hour customer-service window for this conversation closed at {closed_at_ms} (ms since epoch); \
         free-form messages need an open window, send a template message instead"
    )]
    OutsideWindow { closed_at_ms: u64 },
    #[error("Idempotency-Key was already used for a different request (message {0})")]
    KeyConflict(String),
    #[error("account `{account}` has {queued} unfinished messages, its queue cap; retry later")]
    QueueFull { account: String, queued: u64 },
    #[error(
        "account `{account}` has {open} open sessions, its limit (inbox.max_open_sessions); \
         a message to a conversation without an open session must wait"
    )]
    SessionLimit { account: String, open: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues a message. Returns the row and whether it was created now (`false`: the same
/// Idempotency-Key and request were seen before and this is the original message).
pub async fn submit(app: &App, req: SendRequest) -> Result<(OutboxRow, bool), SendError> {
    let ctx = match app.accounts.get(&req.account) {
        None => return Err(SendError::UnknownAccount(req.account)),
        Some(crate::accounts::AccountState::Refused { reasons, .. }) => {
            return Err(SendError::NotReady { account: req.account.clone(), reasons: reasons.clone() });
        }
        Some(crate::accounts::AccountState::Ready(ctx)) => ctx.clone(),
    };
    let conversation = req.conversation.clone().unwrap_or_else(|| req.to.clone());
    // Only a window we *know* is closed is refused (the store checks it in the enqueue's
    // transaction); with no record (e.g. history from before this daemon) the provider
    // decides and its error is classified as usual.
    let window_ms = (req.body.is_free_form() && has_window(app, &ctx.plugin)).then_some(WINDOW_MS);
    let config = app.current_config();
    // Only a message with an Idempotency-Key is ever compared with another.
    let fingerprint = match &req.idempotency_key {
        Some(_) => {
            let canon = serde_json::json!([req.account, req.to, conversation, req.body, req.metadata, req.priority]);
            hex::encode(Sha256::digest(canon.to_string().as_bytes()))
        }
        None => String::new(),
    };
    let outcome = app
        .store
        .enqueue(NewMessage {
            account: req.account,
            to: req.to,
            conversation,
            body: req.body,
            metadata: req.metadata,
            idempotency_key: req.idempotency_key,
            fingerprint,
            correlation_id: req.correlation_id,
            priority: req.priority,
            max_queued: config.delivery.max_queued,
            idempotency_ttl_ms: config.delivery.idempotency_ttl_ms,
            window_ms,
            // Recorded in the enqueue's own transaction: one durable write per message, and
            // the session cap checked where it cannot race another message.
            history: Some(crate::agent::history_options(&config)),
        })
        .await?;
    match outcome {
        EnqueueOutcome::Created(row) => {
            crate::metrics::MessageQueued(&row).emit(&app.metrics);
            app.outbox_wake.notify_one();
            Ok((row, true))
        }
        EnqueueOutcome::Existing(row) => Ok((row, false)),
        EnqueueOutcome::KeyConflict { id } => Err(SendError::KeyConflict(id)),
        EnqueueOutcome::QueueFull { queued } => Err(SendError::QueueFull { account: ctx.id.clone(), queued }),
        EnqueueOutcome::OutsideWindow { closed_at_ms } => Err(SendError::OutsideWindow { closed_at_ms }),
        EnqueueOutcome::SessionLimit { open } => Err(SendError::SessionLimit { account: ctx.id.clone(), open }),
    }
}

fn has_window(app: &App, plugin: &str) -> bool {
    app.runtime.capabilities(plugin).iter().any(|c| c == "window-24h")
}
