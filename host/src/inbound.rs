//! Webhook intake: account → verification → plugin parse → one durable store write.
//!
//! Order matters and is the invariant: nothing is parsed by a plugin or written to the store
//! before the request is verified.

use crate::accounts::AccountState;
use crate::app::App;
use crate::model::{HttpRequest, HttpResponse};
use crate::runtime::CallError;
use crate::store::{IngestOutcome, IngestRequest, StoreError};
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn ready<'a>(app: &'a App, id: &str) -> Result<&'a std::sync::Arc<crate::accounts::AccountCtx>, InboundError> {
    match app.accounts.get(id) {
        None => Err(InboundError::UnknownAccount(id.to_string())),
        Some(AccountState::Refused { reasons, .. }) => {
            Err(InboundError::NotReady { account: id.to_string(), reasons: reasons.clone() })
        }
        Some(AccountState::Ready(ctx)) => Ok(ctx),
    }
}

/// Verifies, parses and stores one webhook delivery. Answers only after the write is durable.
pub async fn receive(app: &App, account: &str, req: HttpRequest, correlation_id: &str) -> Result<IngestOutcome, InboundError> {
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
    let events = app.runtime.parse_inbound(ctx, req).await?.map_err(InboundError::Parse)?;
    let outcome = app
        .store
        .ingest(IngestRequest { account: account.to_string(), correlation_id: correlation_id.to_string(), events })
        .await?;
    Ok(outcome)
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
    app.runtime.handshake(ctx, req).await?.ok_or(InboundError::NotHandshake)
}
