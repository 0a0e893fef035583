//! Slack Web API errors (`{"ok":false,"error":"channel_not_found"}`, usually with HTTP 200)
//! and their classification. Slack documents them per method
//! (https://api.slack.com/methods/chat.postMessage#errors) plus common ones for every method.
//! HTTP 429 (with `Retry-After`) is the rate limit; `ok:false` bodies are classified on
//! `error`; an error not in the table is permanent on HTTP 2xx/4xx and retried on 5xx.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    RateLimited,
    Retryable,
    Permanent,
    Unknown,
}

/// (error, class, meaning).
pub const TABLE: &[(&str, Class, &str)] = &[
    ("ratelimited", Class::RateLimited, "The request has been rate limited (HTTP 429, Retry-After)"),
    ("rate_limited", Class::RateLimited, "The request has been rate limited"),
    ("message_limit_exceeded", Class::RateLimited, "Members on this team are sending too many messages"),
    ("internal_error", Class::Retryable, "The server could not complete the operation"),
    ("fatal_error", Class::Retryable, "The server could not complete the operation, likely due to a transient issue"),
    ("service_unavailable", Class::Retryable, "The service is temporarily unavailable"),
    ("request_timeout", Class::Retryable, "The method was called via POST and the request timed out"),
    ("channel_not_found", Class::Permanent, "Value passed for channel was invalid"),
    ("not_in_channel", Class::Permanent, "The bot is not a member of the channel: invite it first"),
    ("is_archived", Class::Permanent, "Channel has been archived"),
    ("msg_too_long", Class::Permanent, "Message text is too long"),
    ("no_text", Class::Permanent, "No message text provided"),
    ("too_many_attachments", Class::Permanent, "Too many attachments were provided"),
    ("invalid_blocks", Class::Permanent, "The blocks are invalid"),
    ("invalid_blocks_format", Class::Permanent, "The blocks are not a JSON array of objects"),
    ("cannot_reply_to_message", Class::Permanent, "This message cannot be replied to"),
    ("restricted_action", Class::Permanent, "A workspace preference prevents posting to this channel"),
    ("restricted_action_read_only_channel", Class::Permanent, "The channel is read-only"),
    ("restricted_action_thread_only_channel", Class::Permanent, "The channel is thread-only: set thread_ts"),
    ("restricted_action_non_threadable_channel", Class::Permanent, "The channel cannot have threads"),
    ("duplicate_channel_not_found", Class::Permanent, "The channel for reply_broadcast was not found"),
    ("invalid_auth", Class::Permanent, "Invalid bot_token"),
    ("not_authed", Class::Permanent, "No token provided"),
    ("account_inactive", Class::Permanent, "The token's user or bot was deleted or the workspace deactivated"),
    ("token_revoked", Class::Permanent, "The token was revoked"),
    ("token_expired", Class::Permanent, "The token expired"),
    ("no_permission", Class::Permanent, "The token lacks permission"),
    ("missing_scope", Class::Permanent, "The token lacks a scope (chat:write)"),
    ("not_allowed_token_type", Class::Permanent, "The token type is not allowed for this method"),
    ("ekm_access_denied", Class::Permanent, "Administrators suspended the ability to post"),
    ("team_access_not_granted", Class::Permanent, "The token has no access to the workspace"),
    ("invalid_arguments", Class::Permanent, "The method was called with invalid arguments"),
    ("invalid_arg_name", Class::Permanent, "The method was called with an invalid argument name"),
    ("invalid_charset", Class::Permanent, "Invalid charset"),
];

pub fn classify(error: &str) -> Class {
    TABLE
        .iter()
        .find(|(e, _, _)| *e == error)
        .map_or(Class::Unknown, |(_, c, _)| *c)
}

pub fn meaning(error: &str) -> Option<&'static str> {
    TABLE.iter().find(|(e, _, _)| *e == error).map(|(_, _, m)| *m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        assert_eq!(classify("ratelimited"), Class::RateLimited);
        for e in ["internal_error", "fatal_error", "service_unavailable", "request_timeout"] {
            assert_eq!(classify(e), Class::Retryable, "{e}");
        }
        for e in ["channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_auth", "token_revoked", "missing_scope"] {
            assert_eq!(classify(e), Class::Permanent, "{e}");
        }
        assert_eq!(classify("something_new"), Class::Unknown);
        assert!(meaning("not_in_channel").unwrap().contains("invite"));
        // No duplicates.
        for (i, (e, _, _)) in TABLE.iter().enumerate() {
            assert!(TABLE[i + 1..].iter().all(|(o, _, _)| o != e), "{e}");
        }
    }
}
