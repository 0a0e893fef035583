//! Operator endpoints behind the API token: the dead-letter queue and queue stats. The CLI
//! (`switchboard dlq ...`) uses these, because the daemon holds the store open.

use super::ApiError;
use super::auth::{Authorized, json_body};
use crate::app::App;
use crate::store::MessageStatus;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
    status: Option<MessageStatus>,
}

pub async fn dlq_list(_: Authorized, State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Result<Json<serde_json::Value>, ApiError> {
    let items = app.store.dlq_list(q.limit.unwrap_or(100).min(10_000))?;
    Ok(Json(serde_json::json!({ "items": items })))
}

pub async fn dlq_show(_: Authorized, State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    match app.store.dlq_get(&id)? {
        Some(dl) => Ok(Json(serde_json::to_value(dl).expect("serializable"))),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("`{id}` is not in the dead-letter queue"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Redrive {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

pub async fn dlq_redrive(_: Authorized, State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let r: Redrive = json_body(&body)?;
    if r.all == !r.ids.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "give either `ids` or `all: true`"));
    }
    let out = app.store.dlq_redrive(if r.all { None } else { Some(r.ids) }).await?;
    tracing::info!(redriven = out.redriven.len(), not_found = out.not_found.len(), "dead letters redriven");
    app.outbox_wake.notify_waiters();
    Ok(Json(serde_json::to_value(out).expect("serializable")))
}

pub async fn outbox_list(_: Authorized, State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Result<Json<serde_json::Value>, ApiError> {
    let items = app.store.list_messages(q.status, q.limit.unwrap_or(100).min(10_000))?;
    Ok(Json(serde_json::json!({ "items": items })))
}

pub async fn stats(_: Authorized, State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut queued = serde_json::Map::new();
    for (id, _) in app.accounts.iter() {
        queued.insert(id.clone(), app.store.queued_count(id)?.into());
    }
    Ok(Json(serde_json::json!({
        "inbox": app.store.inbox_len()?,
        "dead_letters": app.store.dlq_len()?,
        "outbox_unfinished_by_account": queued,
    })))
}
