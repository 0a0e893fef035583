//! The HTTP surface. Handlers are thin: decode, call a service, encode.

mod admin;
mod auth;
mod conversations;
mod error;
mod health;
mod inbox;
mod messages;
mod tools;
mod webhooks;

pub use admin::BACKUP_TMP_PREFIX;
pub use error::ApiError;

use crate::app::App;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::sync::Arc;

/// Bodies of `/v1` requests (messages, claims) are small; cap them independently of webhooks.
const API_BODY_LIMIT: usize = 256 * 1024;

pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// The most header bytes (names and values) a request may carry; more is a 431. Providers send
/// a few hundred bytes; common proxies allow 8–32 KiB. hyper alone would take ~400 KiB.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

async fn limit_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let size: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if size > MAX_HEADER_BYTES {
        tracing::warn!(size, limit = MAX_HEADER_BYTES, path = req.uri().path(), "request headers too large");
        let message = format!("request headers of {size} bytes (limit {MAX_HEADER_BYTES})");
        return ApiError::new(axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", message).into_response();
    }
    next.run(req).await
}

pub fn router(app: Arc<App>) -> Router {
    let webhook_limit = app.config.max_body_bytes;
    let webhooks = Router::new()
        .route("/webhooks/{account}", post(webhooks::post).get(webhooks::get))
        .layer(DefaultBodyLimit::max(webhook_limit));
    let v1 = Router::new()
        .route("/v1/messages", post(messages::create))
        .route("/v1/messages/{id}", get(messages::show))
        .route("/v1/inbox/claim", post(inbox::claim))
        .route("/v1/inbox/ack", post(inbox::ack))
        .route("/v1/inbox/nack", post(inbox::nack))
        .route("/v1/conversations/{id}/messages", get(conversations::messages))
        .route("/v1/tools", get(tools::list))
        .route("/v1/tools/{name}/invoke", post(tools::invoke))
        .route("/v1/approvals/{id}", get(tools::approval))
        .route("/v1/dlq", get(admin::dlq_list))
        .route("/v1/dlq/redrive", post(admin::dlq_redrive))
        .route("/v1/dlq/{id}", get(admin::dlq_show))
        .route("/v1/outbox", get(admin::outbox_list))
        .route("/v1/stats", get(admin::stats))
        .route("/v1/admin/backup", post(admin::backup))
        .layer(DefaultBodyLimit::max(API_BODY_LIMIT));
    Router::new()
        .merge(webhooks)
        .merge(v1)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(axum::middleware::from_fn(limit_headers))
        .with_state(app)
}
