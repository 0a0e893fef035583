//! `POST /v1/messages`, `GET /v1/messages/{id}`.

use super::auth::{Authorized, json_body};
use super::{ApiError, CORRELATION_HEADER};
use crate::app::{App, correlation_id};
use crate::model::{Media, MessageBody, Template};
use crate::outbox::{self, SendRequest};
use crate::store::Priority;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateMessage {
    account: String,
    to: String,
    text: Option<String>,
    media: Option<Media>,
    template: Option<Template>,
    conversation: Option<String>,
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    priority: Priority,
}

const MAX_IDEMPOTENCY_KEY: usize = 255;

pub async fn create(_: Authorized, State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", m);
    let req: CreateMessage = json_body(&body)?;
    let body = match (req.text, req.media, req.template) {
        (Some(t), None, None) if !t.is_empty() => MessageBody::Text(t),
        (None, Some(m), None) => MessageBody::Media(m),
        (None, None, Some(t)) => MessageBody::Template(t),
        _ => return Err(bad("give exactly one of `text` (non-empty), `media` or `template`")),
    };
    if req.to.is_empty() {
        return Err(bad("`to` is empty"));
    }
    let key = match headers.get("idempotency-key") {
        Some(v) => {
            let k = v.to_str().map_err(|_| bad("Idempotency-Key must be visible ASCII"))?;
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY {
                return Err(bad("Idempotency-Key must be 1 to 255 characters"));
            }
            Some(k.to_string())
        }
        None => None,
    };
    let cid = correlation_id(headers.get(CORRELATION_HEADER).and_then(|v| v.to_str().ok()));
    let (row, created) = outbox::submit(
        &app,
        SendRequest {
            account: req.account,
            to: req.to,
            conversation: req.conversation,
            body,
            metadata: req.metadata,
            idempotency_key: key,
            correlation_id: cid,
            priority: req.priority,
        },
    )
    .await?;
    let mut resp = (StatusCode::ACCEPTED, Json(serde_json::json!({ "id": row.id, "status": row.status }))).into_response();
    if let Ok(v) = HeaderValue::from_str(&row.correlation_id) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    if !created {
        resp.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

pub async fn show(_: Authorized, State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match app.store.message(&id).await? {
        Some(row) => Ok(Json(row).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no message `{id}`"))),
    }
}
