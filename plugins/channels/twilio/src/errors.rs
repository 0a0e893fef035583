//! Twilio error codes (https://www.twilio.com/docs/api/errors) and their classification.
//!
//! The same numeric codes arrive synchronously in a REST error body
//! (`{"code":21211,"message":"...","more_info":"...","status":400}`) and asynchronously as
//! `ErrorCode` in a `failed`/`undelivered` status callback (e.g. 63016 for WhatsApp outside the
//! 24-hour window). Classification is on the code; the HTTP status decides only for codes not
//! in the table.

/// How an error code should be handled by the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Throttled: wait (Retry-After if given) and try again.
    RateLimited,
    /// Temporary: retry with backoff. (For 5xx-class codes the message may have been sent:
    /// see the crate docs on idempotency.)
    Retryable,
    /// Will never succeed as sent.
    Permanent,
    /// Not in the table: decided by the HTTP status.
    Unknown,
}

/// (code, class, meaning), from shared/PROVIDERS.md.
pub const TABLE: &[(i64, Class, &str)] = &[
    (20429, Class::RateLimited, "Too Many Requests"),
    (63018, Class::RateLimited, "Rate limit exceeded for Channel"),
    (63017, Class::RateLimited, "Rate limit exceeded"),
    // Ambiguous in PROVIDERS.md: throttling of the sender, not a property of this message.
    (21611, Class::RateLimited, "This 'From' number has exceeded the maximum number of queued messages"),
    (63038, Class::RateLimited, "Account exceeded the daily messages limit"),
    (30001, Class::Retryable, "Queue overflow"),
    (20500, Class::Retryable, "Internal Server Error"),
    (20503, Class::Retryable, "Service unavailable"),
    (63016, Class::Permanent, "Outside messaging window: a WhatsApp template (ContentSid) is required until the user replies"),
    (21211, Class::Permanent, "Invalid 'To' Phone Number"),
    (21610, Class::Permanent, "Attempt to send to unsubscribed recipient"),
    (63003, Class::Permanent, "Channel could not find To address"),
    (20003, Class::Permanent, "Authentication Error"),
];

pub fn classify_code(code: i64) -> Class {
    TABLE
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(Class::Unknown, |(_, class, _)| *class)
}

/// The table's meaning of a code, for status callbacks that carry only `ErrorCode`.
pub fn meaning(code: i64) -> Option<&'static str> {
    TABLE.iter().find(|(c, _, _)| *c == code).map(|(_, _, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_providers_md() {
        for c in [20429, 63018, 63017, 21611, 63038] {
            assert_eq!(classify_code(c), Class::RateLimited, "{c}");
        }
        for c in [30001, 20500, 20503] {
            assert_eq!(classify_code(c), Class::Retryable, "{c}");
        }
        for c in [63016, 21211, 21610, 63003, 20003] {
            assert_eq!(classify_code(c), Class::Permanent, "{c}");
        }
        for c in [0, 21212, 30003, 99999] {
            assert_eq!(classify_code(c), Class::Unknown, "{c}");
        }
        assert!(meaning(63016).unwrap().contains("template"));
        assert_eq!(meaning(1), None);
    }
}
