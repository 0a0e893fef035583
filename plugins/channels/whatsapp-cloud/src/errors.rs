//! WhatsApp / Graph API error objects and their classification.
//!
//! The same error object shape (`code`, `title`, `message`, `error_data.details`) arrives in
//! two places: synchronously in a Graph API error response (`{"error": {...}}`) and
//! asynchronously in a `failed` status webhook (`statuses[].errors[]`). Classification is on
//! the error `code`, never on the HTTP status (throttling arrives as HTTP 400).

use serde_json::Value;

/// The code Meta uses when a free-form message is sent outside the 24-hour window.
pub const OUTSIDE_WINDOW: i64 = 131047;

/// How an error code should be handled by the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttled: wait (Retry-After if given) and try again.
    RateLimited,
    /// Temporary: retry with backoff.
    Retryable,
    /// Will never succeed as sent.
    Permanent,
    /// Not in our table: decided by the HTTP status.
    Unknown,
}

/// Classifies a WhatsApp Cloud API / Graph API error code (see shared/PROVIDERS.md).
pub fn classify_code(code: i64) -> Class {
    match code {
        130429 | 131056 | 80007 | 4 => Class::RateLimited,
        1 | 2 | 131000 | 131016 | 131057 => Class::Retryable,
        131047 | 131026 | 100 | 190 | 0 | 10 | 368 | 131031 | 131048 | 131049 | 131051 | 131052 => {
            Class::Permanent
        }
        132000..=132999 => Class::Permanent,
        _ => Class::Unknown,
    }
}

/// The numeric `code` of an error object (Meta sends a number; a numeric string is accepted).
pub fn error_code(err: &Value) -> Option<i64> {
    match err.get("code")? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The code as a string for `failure.code`: the number verbatim, or `"unknown"`.
pub fn code_string(err: &Value) -> String {
    match err.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => "unknown".to_string(),
    }
}

/// A human reason: `message` (or `title`) plus `error_data.details` when present; for 131047 it
/// says that a template message is required.
pub fn reason(err: &Value) -> String {
    let message = str_field(err, "message").or_else(|| str_field(err, "title"));
    let details = err.get("error_data").and_then(|d| str_field(d, "details"));
    let mut reason = match (message, details) {
        (Some(m), Some(d)) if m != d => format!("{m}: {d}"),
        (Some(m), _) => m.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "WhatsApp returned an error without a message".to_string(),
    };
    if error_code(err) == Some(OUTSIDE_WINDOW) {
        reason.push_str(
            " (outside the 24-hour customer-service window: a template message is required \
             until the customer replies)",
        );
    }
    reason
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_matches_providers_md() {
        for c in [130429, 131056, 80007, 4] {
            assert_eq!(classify_code(c), Class::RateLimited, "{c}");
        }
        for c in [1, 2, 131000, 131016, 131057] {
            assert_eq!(classify_code(c), Class::Retryable, "{c}");
        }
        for c in [
            131047, 131026, 100, 190, 0, 10, 368, 131031, 131048, 131049, 131051, 131052, 132000,
            132001, 132015, 132999,
        ] {
            assert_eq!(classify_code(c), Class::Permanent, "{c}");
        }
        for c in [3, 131009, 133000, 131999, -1] {
            assert_eq!(classify_code(c), Class::Unknown, "{c}");
        }
    }

    #[test]
    fn code_accepts_numbers_and_numeric_strings() {
        assert_eq!(error_code(&json!({"code": 131056})), Some(131056));
        assert_eq!(error_code(&json!({"code": "190"})), Some(190));
        assert_eq!(error_code(&json!({"code": "x"})), None);
        assert_eq!(error_code(&json!({})), None);
        assert_eq!(code_string(&json!({"code": 131056})), "131056");
        assert_eq!(code_string(&json!({})), "unknown");
    }

    #[test]
    fn reason_joins_message_and_details() {
        let e = json!({"message": "(#131026) Message undeliverable", "error_data": {"details": "Message Undeliverable."}});
        assert_eq!(
            reason(&e),
            "(#131026) Message undeliverable: Message Undeliverable."
        );
        assert_eq!(
            reason(&json!({"title": "Rate limit hit"})),
            "Rate limit hit"
        );
        assert_eq!(reason(&json!({"error_data": {"details": "d"}})), "d");
        assert!(reason(&json!({})).contains("without a message"));
        let r = reason(&json!({"code": 131047, "message": "Re-engagement message"}));
        assert!(r.starts_with("Re-engagement message"));
        assert!(r.contains("template message is required"), "{r}");
    }
}
