//! `GET /v1/conversations/{id}/messages`: a conversation's kept messages, newest first.

use super::ApiError;
use super::auth::Authorized;
use crate::app::App;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct HistoryQuery {
    /// Needed when more than one account is configured.
    account: Option<String>,
    limit: Option<usize>,
}

pub async fn messages(
    _: Authorized,
    State(app): State<Arc<App>>,
    Path(conversation): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let config = app.current_config();
    let account = match q.account {
        Some(a) if config.accounts.contains_key(&a) => a,
        Some(a) => return Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_account", format!("unknown account `{a}`"))),
        None if config.accounts.len() == 1 => config.accounts.keys().next().cloned().unwrap_or_default(),
        None => {
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "give `?account=` (more than one account is configured)"));
        }
    };
    let limit = q.limit.unwrap_or(config.inbox.history_limit).clamp(1, config.inbox.history_limit);
    let messages = app.store.history(&account, &conversation, limit).await?;
    Ok(Json(serde_json::json!({ "account": account, "conversation": conversation, "messages": messages })))
}
