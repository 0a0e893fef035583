//! `POST /v1/inbox/claim|ack|nack`: pull delivery with leases.

use super::ApiError;
use super::auth::{Authorized, json_body};
use crate::app::App;
use crate::store::ClaimRequest;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claim {
    max: Option<usize>,
    lease_ms: Option<u64>,
    consumer: Option<String>,
    account: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settle {
    ids: Vec<String>,
    lease: String,
    #[serde(default)]
    delay_ms: u64,
}

pub async fn claim(_: Authorized, State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let c: Claim = json_body(&body)?;
    let cfg = &app.config.inbox;
    let lease_ms = c.lease_ms.unwrap_or(cfg.default_lease_ms);
    if lease_ms == 0 || lease_ms > cfg.max_lease_ms {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("lease_ms must be between 1 and {}", cfg.max_lease_ms),
        ));
    }
    let claim = app
        .store
        .claim_inbox(ClaimRequest {
            max: c.max.unwrap_or(10).clamp(1, cfg.max_claim),
            lease_ms,
            consumer: c.consumer.unwrap_or_else(|| "default".into()),
            account: c.account,
            max_deliveries: cfg.max_deliveries,
        })
        .await?;
    Ok(Json(serde_json::to_value(claim).expect("serializable")))
}

pub async fn ack(_: Authorized, State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let s: Settle = json_body(&body)?;
    let r = app.store.ack_inbox(s.ids, s.lease).await?;
    Ok(Json(serde_json::to_value(r).expect("serializable")))
}

pub async fn nack(_: Authorized, State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let s: Settle = json_body(&body)?;
    let r = app.store.nack_inbox(s.ids, s.lease, s.delay_ms).await?;
    Ok(Json(serde_json::to_value(r).expect("serializable")))
}
