use crate::inbound::InboundError;
use crate::outbox::SendError;
use crate::store::StoreError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API failure: a status, a stable machine code, and a message for humans.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.code == STORE_UNAVAILABLE || self.code == SANDBOX_BUSY {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        resp
    }
}

/// A store failure is the daemon's, not the request's (a full disk, an I/O error): 503 with
/// Retry-After, so a provider retries the webhook later instead of dropping it.
const STORE_UNAVAILABLE: &str = "store_unavailable";
/// Every sandbox instance is in use (`CallError::Busy`): 503 with Retry-After as well.
const SANDBOX_BUSY: &str = "sandbox_busy";

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, STORE_UNAVAILABLE, "storage failed; nothing was acknowledged, retry")
    }
}

impl From<InboundError> for ApiError {
    fn from(e: InboundError) -> Self {
        let (status, code) = match &e {
            InboundError::UnknownAccount(_) => (StatusCode::NOT_FOUND, "unknown_account"),
            InboundError::NotReady { .. } => (StatusCode::SERVICE_UNAVAILABLE, "account_not_ready"),
            InboundError::Verify(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            InboundError::HandshakeRejected => (StatusCode::FORBIDDEN, "handshake_rejected"),
            InboundError::NotHandshake => (StatusCode::BAD_REQUEST, "not_a_handshake"),
            InboundError::Parse(_) => (StatusCode::BAD_REQUEST, "unparseable_webhook"),
            // The sandbox is saturated: the daemon's capacity, like a busy store, so the
            // provider retries later (503 with Retry-After).
            InboundError::Plugin(crate::runtime::CallError::Busy(_)) => (StatusCode::SERVICE_UNAVAILABLE, SANDBOX_BUSY),
            InboundError::Plugin(_) => (StatusCode::INTERNAL_SERVER_ERROR, "plugin_error"),
            InboundError::SessionLimit { .. } => (StatusCode::TOO_MANY_REQUESTS, "session_limit"),
            InboundError::Store(s) => return ApiError::from(s.clone()),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        let (status, code) = match &e {
            SendError::UnknownAccount(_) => (StatusCode::NOT_FOUND, "unknown_account"),
            SendError::NotReady { .. } => (StatusCode::SERVICE_UNAVAILABLE, "account_not_ready"),
            SendError::OutsideWindow { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "outside_window"),
            SendError::KeyConflict(_) => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            SendError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            SendError::SessionLimit { .. } => (StatusCode::TOO_MANY_REQUESTS, "session_limit"),
            SendError::Store(s) => return ApiError::from(s.clone()),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::agent::tools::ToolsError> for ApiError {
    fn from(e: crate::agent::tools::ToolsError) -> Self {
        use crate::agent::tools::ToolsError;
        let (status, code) = match e {
            ToolsError::UnknownTool(_) => (StatusCode::NOT_FOUND, "unknown_tool"),
            ToolsError::ArgsTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "args_too_large"),
            ToolsError::InvalidArgs { .. } => (StatusCode::BAD_REQUEST, "invalid_args"),
            ToolsError::NeedsConversation(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ToolsError::Prompt(send) => {
                let inner = ApiError::from(send);
                return ApiError::new(inner.status, inner.code, format!("could not ask for approval: {}", inner.message));
            }
            ToolsError::Store(s) => return ApiError::from(s),
        };
        ApiError::new(status, code, e.to_string())
    }
}
