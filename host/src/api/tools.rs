//! `GET /v1/tools`, `POST /v1/tools/{name}/invoke`, `GET /v1/approvals/{id}`.

use super::auth::{Authorized, json_body};
use super::{ApiError, CORRELATION_HEADER};
use crate::agent::{approvals, tools};
use crate::app::{App, correlation_id};
use crate::store::ToolCall;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Longest long-poll of an invoke or an approval read.
const MAX_WAIT_MS: u64 = 60_000;

pub async fn list(_: Authorized, State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "tools": tools::list(&app) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvokeBody {
    #[serde(default)]
    args: serde_json::Value,
    account: Option<String>,
    conversation: Option<String>,
    to: Option<String>,
    #[serde(default)]
    wait_ms: u64,
}

pub async fn invoke(
    _: Authorized,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > tools::MAX_ARGS_BYTES + 4 * 1024 {
        return Err(tools::ToolsError::ArgsTooLarge { size: body.len() }.into());
    }
    let b: InvokeBody = json_body(&body)?;
    let cid = correlation_id(headers.get(CORRELATION_HEADER).and_then(|v| v.to_str().ok()));
    let req = tools::Invoke {
        tool: name,
        args: if b.args.is_null() { serde_json::json!({}) } else { b.args },
        account: b.account,
        conversation: b.conversation,
        to: b.to,
        correlation_id: cid,
        wait: Duration::from_millis(b.wait_ms.min(MAX_WAIT_MS)),
    };
    let call = tools::invoke(&app, req).await?;
    Ok(call_response(call))
}

#[derive(Deserialize)]
pub struct WaitQuery {
    wait_ms: Option<u64>,
}

pub async fn approval(
    _: Authorized,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let wait = Duration::from_millis(q.wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
    match approvals::wait_for(&app, &id, wait).await? {
        Some(call) => Ok(call_response(call)),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no tool call or approval `{id}`"))),
    }
}

/// 200 once the call is final (succeeded, failed, denied, expired), else 202.
fn call_response(call: ToolCall) -> Response {
    let status = if call.status.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
    let cid = call.correlation_id.clone();
    let mut resp = (status, Json(call)).into_response();
    if let Ok(v) = HeaderValue::from_str(&cid) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    resp
}
