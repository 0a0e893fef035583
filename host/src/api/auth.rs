//! Bearer-token authentication for `/v1`.

use super::ApiError;
use crate::app::App;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Proof that the request carried one of the configured API tokens.
pub struct Authorized;

impl FromRequestParts<Arc<App>> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let tokens = app.api_tokens.load();
        if tokens.is_empty() {
            return Err(unauthorized("no api_tokens are configured; the API is closed"));
        }
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("missing `Authorization: Bearer <token>`"))?;
        // Check every token so timing does not reveal which one matched.
        let ok = tokens
            .iter()
            .fold(0u8, |acc, t| acc | t.expose().as_bytes().ct_eq(presented.as_bytes()).unwrap_u8());
        if ok == 1 { Ok(Authorized) } else { Err(unauthorized("invalid token")) }
    }
}

/// Decodes a JSON body with a 400 that says what is wrong.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))
}
