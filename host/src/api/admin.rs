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
    let items = app.store.dlq_list(q.limit.unwrap_or(100).min(10_000)).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

pub async fn dlq_show(_: Authorized, State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    match app.store.dlq_get(&id).await? {
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
    if r.all != r.ids.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "give either `ids` or `all: true`"));
    }
    let out = app.store.dlq_redrive(if r.all { None } else { Some(r.ids) }).await?;
    tracing::info!(redriven = out.redriven.len(), not_found = out.not_found.len(), "dead letters redriven");
    // Whichever queues got entries back: their loops sleep until told (`crate::idle`).
    app.outbox_wake.notify_waiters();
    app.agent.push_wake.notify_one();
    app.agent.inbox_wake.notify_waiters();
    Ok(Json(serde_json::to_value(out).expect("serializable")))
}

pub async fn outbox_list(_: Authorized, State(app): State<Arc<App>>, Query(q): Query<ListQuery>) -> Result<Json<serde_json::Value>, ApiError> {
    let items = app.store.list_messages(q.status, q.limit.unwrap_or(100).min(10_000)).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

pub async fn stats(_: Authorized, State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut queued = serde_json::Map::new();
    for (id, _) in app.accounts.iter() {
        let n = app.store.queued_count(&id).await?;
        queued.insert(id, n.into());
    }
    let (transactions, requests) = app.store.commit_stats();
    Ok(Json(serde_json::json!({
        "store": { "transactions": transactions, "requests": requests },
        "inbox": app.store.inbox_len().await?,
        "dead_letters": app.store.dlq_len().await?,
        "outbox_unfinished_by_account": queued,
    })))
}

/// Name prefix of the temporary snapshot files a backup writes in `data_dir` (removed once
/// streamed, and at startup if a daemon died mid-backup).
pub const BACKUP_TMP_PREFIX: &str = ".backup-";

/// `POST /v1/admin/backup`: a consistent snapshot of the store, taken while the daemon runs
/// and streamed back as a redb file (`switchboard backup --out FILE` saves it). The header
/// `x-switchboard-backup` carries the row counts per table, for the client to check its copy.
pub async fn backup(_: Authorized, State(app): State<Arc<App>>) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    use tokio::io::AsyncReadExt;
    let failed = |e: String| {
        tracing::error!(error = %e, "backup failed");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "backup_failed", e)
    };
    let tmp = app.config.data_dir.join(format!("{BACKUP_TMP_PREFIX}{}.redb", uuid::Uuid::now_v7().simple()));
    let summary = app.store.backup_to(&tmp).await.map_err(|e| match e {
        // A PostgreSQL store is backed up with the database's own tools.
        crate::store::StoreError::Unsupported { .. } => ApiError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", e.to_string()),
        e => failed(e.to_string()),
    })?;
    let file = tokio::fs::File::open(&tmp).await.map_err(|e| failed(e.to_string()))?;
    // The open handle keeps the data until it is streamed; nothing is left behind.
    let _ = tokio::fs::remove_file(&tmp).await;
    tracing::info!(bytes = summary.bytes, "backup snapshot taken; streaming it");
    let chunks = futures_util::stream::unfold(Some(file), |state| async move {
        let mut f = state?;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut resp = axum::body::Body::from_stream(chunks).into_response();
    let h = resp.headers_mut();
    h.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/octet-stream"));
    h.insert(axum::http::header::CONTENT_LENGTH, summary.bytes.into());
    if let Ok(v) = axum::http::HeaderValue::from_str(&serde_json::to_string(&summary.tables).expect("serializable")) {
        h.insert("x-switchboard-backup", v);
    }
    Ok(resp)
}
