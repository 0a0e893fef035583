//! Bot API errors (`{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by
//! the user","parameters":{...}}`) and their classification (shared/PROVIDERS.md).
//!
//! Telegram's only machine-readable parts are `error_code` (an HTTP-like status) and
//! `parameters` (`retry_after` seconds, `migrate_to_chat_id`); `description` is kept verbatim
//! as the failure reason.

use serde_json::Value;

/// A parsed `ok:false` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub error_code: i64,
    pub description: String,
    /// `parameters.retry_after`, in seconds.
    pub retry_after: Option<u64>,
    /// `parameters.migrate_to_chat_id`: the group became this supergroup.
    pub migrate_to_chat_id: Option<i64>,
}

impl ApiError {
    /// Reads an `ok:false` body; `None` if the body is not one.
    pub fn from_body(body: &Value) -> Option<Self> {
        if body.get("ok").and_then(Value::as_bool) != Some(false) {
            return None;
        }
        Some(ApiError {
            error_code: body.get("error_code").and_then(Value::as_i64).unwrap_or(0),
            description: body
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("Telegram returned an error without a description")
                .to_string(),
            retry_after: body.pointer("/parameters/retry_after").and_then(Value::as_u64),
            migrate_to_chat_id: body
                .pointer("/parameters/migrate_to_chat_id")
                .and_then(Value::as_i64),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 429 Too Many Requests: wait this many milliseconds.
    RateLimited(u64),
    /// 5xx (502 Bad Gateway, ...): retry with backoff.
    Retryable,
    /// The chat moved to this id (group → supergroup): send there instead.
    Migrated(i64),
    /// 400 (chat not found, message too long, can't parse entities, ...), 401, 403 (blocked,
    /// kicked, deactivated), 404: will never succeed as sent.
    Permanent,
}

pub fn classify(err: &ApiError) -> Class {
    if let Some(to) = err.migrate_to_chat_id {
        return Class::Migrated(to);
    }
    if err.error_code == 429 || err.retry_after.is_some() {
        return Class::RateLimited(err.retry_after.unwrap_or(0).saturating_mul(1000));
    }
    if err.error_code >= 500 {
        return Class::Retryable;
    }
    Class::Permanent
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> ApiError {
        ApiError::from_body(&v).unwrap()
    }

    #[test]
    fn table_matches_providers_md() {
        let e = err(json!({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}));
        assert_eq!(classify(&e), Class::RateLimited(7_000));
        assert_eq!(classify(&err(json!({"ok":false,"error_code":429,"description":"x"}))), Class::RateLimited(0));
        for d in [
            "Forbidden: bot was blocked by the user",
            "Forbidden: bot was kicked from the group chat",
            "Forbidden: user is deactivated",
            "Forbidden: bot can't initiate conversation with a user",
        ] {
            assert_eq!(classify(&err(json!({"ok":false,"error_code":403,"description":d}))), Class::Permanent, "{d}");
        }
        for d in ["Bad Request: chat not found", "Bad Request: message is too long", "Bad Request: message text is empty", "Bad Request: can't parse entities: x"] {
            assert_eq!(classify(&err(json!({"ok":false,"error_code":400,"description":d}))), Class::Permanent, "{d}");
        }
        assert_eq!(classify(&err(json!({"ok":false,"error_code":401,"description":"Unauthorized"}))), Class::Permanent);
        assert_eq!(classify(&err(json!({"ok":false,"error_code":502,"description":"Bad Gateway"}))), Class::Retryable);
        let m = err(json!({"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001234567890i64}}));
        assert_eq!(classify(&m), Class::Migrated(-1_001_234_567_890));
    }

    #[test]
    fn only_ok_false_bodies_are_errors() {
        assert_eq!(ApiError::from_body(&json!({"ok":true,"result":{}})), None);
        assert_eq!(ApiError::from_body(&json!({"error_code":400})), None);
        let e = err(json!({"ok":false}));
        assert_eq!(e.error_code, 0);
        assert!(e.description.contains("without a description"));
    }
}
