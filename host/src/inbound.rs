//! Webhook intake: account → verification → plugin handshake → plugin parse → one durable
//! store write.
//!
//! Order matters and is the invariant: nothing is parsed by a plugin or written to the store
//! before the request is verified. Some providers send signed POSTs that want a synchronous
//! answer instead of being stored (Slack `url_verification`, Discord `PING`): after
//! verification the plugin's `handshake` sees the request first, and if it answers, that answer
//! is the response and nothing is stored.

use crate::accounts::AccountState;
use crate::app::App;
use crate::model::{HttpRequest, HttpResponse};
use crate::runtime::{self, CallError};
use crate::store::{IngestOutcome, IngestRequest, Ingested, StoreError};
use crate::verify::{self, Handshake, Scheme, VerifyError};

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("unknown account `{0}`")]
    UnknownAccount(String),
    #[error("account `{account}` is not running: {}", reasons.join("; "))]
    NotReady { account: String, reasons: Vec<String> },
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    #[error("handshake rejected")]
    HandshakeRejected,
    #[error("not a handshake this channel understands")]
    NotHandshake,
    #[error("plugin could not parse the webhook: {0}")]
    Parse(String),
    #[error(transparent)]
    Plugin(#[from] CallError),
    #[error(
        "account `{account}` has {open} open sessions, its limit (inbox.max_open_sessions); \
         nothing was stored, retry later"
    )]
    SessionLimit { account: String, open: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn ready(app: &App, id: &str) -> Result<std::sync::Arc<crate::accounts::AccountCtx>, InboundError> {
    match app.accounts.get(id) {
        None => Err(InboundError::UnknownAccount(id.to_string())),
        Some(AccountState::Refused { reasons, .. }) => {
            Err(InboundError::NotReady { account: id.to_string(), reasons: reasons.clone() })
        }
        Some(AccountState::Ready(ctx)) => Ok(ctx),
    }
}

/// What became of a verified webhook POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Parsed and stored (durably) as inbox events.
    Stored(IngestOutcome),
    /// A signed handshake the plugin answered itself (Slack `url_verification`, Discord
    /// `PING`): send this response; nothing was stored.
    Answered(HttpResponse),
}

/// Verifies, then lets the plugin answer a signed handshake, else parses and stores one
/// webhook delivery. Answers only after the write is durable.
pub async fn receive(app: &App, account: &str, req: HttpRequest, correlation_id: &str) -> Result<Received, InboundError> {
    let ctx = ready(app, account)?;
    let input = verify::VerifyInput {
        secret: ctx.scheme.secret_name().and_then(|n| ctx.secret(n)),
        public_url: ctx.public_url.as_deref(),
        now_ms: app.clock.now_ms(),
    };
    verify::verify(ctx.scheme, &input, &req).map_err(|e| match e {
        // The operator's fault, not the request's: fail closed as "not ready" (503), not 401.
        VerifyError::NoSecret | VerifyError::BadSecret(_) => {
            InboundError::NotReady { account: account.to_string(), reasons: vec![e.to_string()] }
        }
        e => InboundError::Verify(e),
    })?;
    // Verified: a signed handshake (Slack url_verification, Discord PING) is answered by the
    // plugin and stored nowhere.
    let events = match app.runtime.receive(&ctx, req).await? {
        runtime::Received::Answered(answer) => return Ok(Received::Answered(answer)),
        runtime::Received::Parsed(events) => events.map_err(InboundError::Parse)?,
    };
    // One transaction: inbox/push rows, history, and approval replies (an authorized YES/NO
    // resolves the conversation's pending approvals here, so a duplicate webhook cannot resolve
    // twice); approved tool calls run after it is durable (`agent::approvals`).
    let req = IngestRequest { account: account.to_string(), correlation_id: correlation_id.to_string(), events };
    match app.store.ingest_with(req, crate::agent::ingest_options(app, account)).await? {
        Ingested::Stored(outcome, effects) => {
            crate::agent::after_ingest(app, &effects);
            Ok(Received::Stored(outcome))
        }
        Ingested::SessionLimit { open } => Err(InboundError::SessionLimit { account: account.to_string(), open }),
    }
}

/// Answers a provider's GET handshake. Meta's is answered by the host (it needs the
/// verify token, a secret); other channels may answer their own through the plugin.
pub async fn handshake(app: &App, account: &str, req: HttpRequest) -> Result<HttpResponse, InboundError> {
    let ctx = ready(app, account)?;
    if ctx.scheme == Scheme::MetaSha256 {
        let query = req.url.split_once('?').map_or("", |(_, q)| q);
        let token = ctx.secret("verify_token").ok_or(InboundError::NotReady {
            account: account.to_string(),
            reasons: vec!["secret `verify_token` is not configured".into()],
        })?;
        return match verify::meta_handshake(query, token) {
            Handshake::Accept(challenge) => Ok(HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: challenge.into_bytes(),
            }),
            Handshake::Reject => Err(InboundError::HandshakeRejected),
            Handshake::NotHandshake => Err(InboundError::NotHandshake),
        };
    }
    app.runtime.handshake(&ctx, req).await?.ok_or(InboundError::NotHandshake)
}
