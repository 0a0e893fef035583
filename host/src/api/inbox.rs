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
    /// Only this conversation's events.
    conversation: Option<String>,
    /// Long-poll: with nothing to claim, wait up to this long for events to arrive.
    #[serde(default)]
    wait_ms: u64,
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
    let current = app.current_config();
    let cfg = &current.inbox;
    let lease_ms = c.lease_ms.unwrap_or(cfg.default_lease_ms);
    if lease_ms == 0 || lease_ms > cfg.max_lease_ms {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("lease_ms must be between 1 and {}", cfg.max_lease_ms),
        ));
    }
    let consumer = c.consumer.unwrap_or_else(|| "default".into());
    let req = ClaimRequest {
        max: c.max.unwrap_or(10).clamp(1, cfg.max_claim),
        lease_ms,
        consumer: consumer.clone(),
        account: c.account,
        conversation: c.conversation,
        max_deliveries: cfg.max_deliveries,
        max_held: cfg.max_per_consumer,
    };
    let wait = std::time::Duration::from_millis(c.wait_ms.min(cfg.max_wait_ms));
    let claim = crate::agent::claim_inbox(&app, req, wait).await?;
    if let Some(held) = claim.held_limit {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "consumer_limit",
            format!("consumer `{consumer}` holds {held} unacknowledged events, its limit (inbox.max_per_consumer); ack or nack some first"),
        ));
    }
    crate::metrics::InboxClaimed { events: claim.events.len(), expired: claim.expired_leases }.emit(&app.metrics);
    Ok(Json(serde_json::to_value(claim).expect("serializable")))
}

pub async fn ack(_: Authorized, State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let s: Settle = json_body(&body)?;
    let r = app.store.ack_inbox(s.ids, s.lease).await?;
    crate::metrics::InboxSettleRejected { rejected: r.rejected.len() }.emit(&app.metrics);
    Ok(Json(serde_json::to_value(r).expect("serializable")))
}

pub async fn nack(_: Authorized, State(app): State<Arc<App>>, body: Bytes) -> Result<Json<serde_json::Value>, ApiError> {
    let s: Settle = json_body(&body)?;
    let r = app.store.nack_inbox(s.ids, s.lease, s.delay_ms).await?;
    crate::metrics::InboxSettleRejected { rejected: r.rejected.len() }.emit(&app.metrics);
    Ok(Json(serde_json::to_value(r).expect("serializable")))
}
