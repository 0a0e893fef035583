//! `POST /webhooks/{account}` and the `GET` handshake.

use super::{ApiError, CORRELATION_HEADER};
use crate::app::{App, correlation_id};
use crate::inbound::{self, InboundError, Received};
use crate::model::{HttpRequest, HttpResponse};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tracing::Instrument;

fn to_request(method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> HttpRequest {
    HttpRequest {
        method: method.as_str().to_string(),
        url: uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.as_str().to_string()),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: body.to_vec(),
        timeout_ms: None,
    }
}

fn with_correlation(mut resp: Response, cid: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cid) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    resp
}

pub async fn post(
    State(app): State<Arc<App>>,
    Path(account): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let cid = correlation_id(headers.get(CORRELATION_HEADER).and_then(|v| v.to_str().ok()));
    let span = tracing::info_span!("webhook", account = %account, correlation_id = %cid);
    let req = to_request(&method, &uri, &headers, body);
    let result = inbound::receive(&app, &account, req, &cid).instrument(span.clone()).await;
    crate::metrics::WebhookReceived::of(&account, &result).emit(&app.metrics);
    let resp = span.in_scope(|| match result {
        Ok(Received::Answered(r)) => {
            tracing::info!(status = r.status, "signed handshake answered by the plugin");
            plugin_response(r)
        }
        Ok(Received::Stored(o)) => {
            tracing::info!(stored = o.stored, duplicates = o.duplicates, status_updates = o.status_updates, "webhook accepted");
            (StatusCode::OK, axum::Json(serde_json::json!({
                "stored": o.stored, "duplicates": o.duplicates, "status_updates": o.status_updates,
            })))
                .into_response()
        }
        Err(e) => {
            log_rejection(&e);
            ApiError::from(e).into_response()
        }
    });
    with_correlation(resp, &cid)
}

fn log_rejection(e: &InboundError) {
    match e {
        InboundError::Plugin(_) | InboundError::Store(_) => tracing::error!(error = %e, "webhook failed"),
        _ => tracing::warn!(error = %e, "webhook rejected"),
    }
}

pub async fn get(
    State(app): State<Arc<App>>,
    Path(account): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let req = to_request(&method, &uri, &headers, Bytes::new());
    match inbound::handshake(&app, &account, req).await {
        Ok(r) => plugin_response(r),
        Err(e) => {
            tracing::warn!(account = %account, error = %e, "handshake rejected");
            ApiError::from(e).into_response()
        }
    }
}

/// A handshake response a plugin (or the host, for Meta) produced.
fn plugin_response(r: HttpResponse) -> Response {
    let mut resp = (StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK), r.body).into_response();
    for (k, v) in r.headers {
        if let (Ok(k), Ok(v)) = (k.parse::<axum::http::HeaderName>(), HeaderValue::from_str(&v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
