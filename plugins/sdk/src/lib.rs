//! Guest-side SDK for Switchboard plugins (channel adapters and agent tools).
//!
//! It generates the bindings for the `channel-adapter` and `agent-tool` worlds of `switchboard:plugin@0.2.0`
//! (see `wit/switchboard.wit`) once, re-exports the WIT types under short names, and adds
//! the few helpers every channel needs:
//!
//! * [`http`]: build an outbound [`HttpRequest`] (JSON body, bearer token) and read
//!   requests/responses (headers, JSON, form bodies, query strings);
//! * [`config`]: read a required secret or setting with a clear `config` failure;
//! * [`log`]: one-line log helpers;
//! * [`Host`]: the host imports behind a trait, so a plugin's `deliver` logic can be unit
//!   tested natively with a fake host ([`WasmHost`] is the real one, [`testing::MockHost`]
//!   a scripted one).
//!
//! A plugin implements [`Channel`] and exports it:
//!
//! ```ignore
//! struct MyChannel;
//! impl switchboard_sdk::Channel for MyChannel { /* describe, handshake, parse_inbound, deliver */ }
//! switchboard_sdk::export!(MyChannel);
//! ```
//!
//! An agent tool implements [`Tool`] and exports it with `switchboard_sdk::export_tool!(MyTool);`
//! (bindings of the `agent-tool` world, in [`tool`], sharing the types and host imports above).
//! Each world's component type is linked in only by its export macro, so a channel plugin does
//! not carry the tool world and vice versa.

wit_bindgen::generate!({
    world: "channel-adapter",
    path: "../../wit",
    pub_export_macro: true,
    default_bindings_module: "switchboard_sdk",
    additional_derives: [PartialEq, Eq],
});

/// The generated export trait; every [`Channel`] implements it (blanket impl below), so
/// `export!` takes any `Channel`.
pub use exports::switchboard::plugin::channel::Guest as ChannelExports;
/// The raw host imports (`log`, `now_ms`, `kv_get`, `kv_set`, `secret`, `setting`, `http_fetch`).
pub use switchboard::plugin::host as imports;
/// The WIT types (`HttpRequest`, `InboundEvent`, `DeliveryOutcome`, ...).
pub use switchboard::plugin::types::*;

/// The `agent-tool` world: the `tool` export, reusing the types and host bindings above.
pub mod tool {
    wit_bindgen::generate!({
        world: "agent-tool",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_tool",
        default_bindings_module: "switchboard_sdk::tool",
        with: {
            "switchboard:plugin/types@0.2.0": crate::switchboard::plugin::types,
            "switchboard:plugin/host@0.2.0": crate::switchboard::plugin::host,
        },
    });
}
/// `switchboard_sdk::export_tool!(MyTool);` exports an agent tool.
pub use tool::export_tool;
/// The trait an agent tool implements.
pub use tool::exports::switchboard::plugin::tool::Guest as Tool;

/// Re-exported so plugins use the same `serde_json` as the helpers.
pub use serde_json;

/// The trait a channel plugin implements: the `channel` interface of the WIT, with a default
/// for what most channels do not need (`poll`: only polled providers such as Telegram's
/// `getUpdates` implement it).
///
/// Every call is a fresh start as far as correctness goes, but not necessarily a fresh
/// instance: the host may run the same account's next `handshake`/`parse_inbound`/`deliver`
/// on an instance whose last call finished cleanly (never another account's, never after a
/// trap). Globals may therefore survive between calls; use them only as a cache, and keep
/// anything that must last in the host's kv.
pub trait Channel {
    fn describe() -> ChannelInfo;
    /// A provider's handshake (GET subscription checks, signed POST challenges such as Slack's
    /// `url_verification`), or `None`. The host calls it for POSTs after verification and
    /// before `parse_inbound`.
    fn handshake(request: HttpRequest) -> Option<HttpResponse>;
    fn parse_inbound(request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError>;
    fn deliver(message: OutboundMessage) -> DeliveryOutcome;
    /// Long-poll channels only: what arrived after `cursor`. The default says this channel
    /// does not poll.
    fn poll(cursor: Option<String>) -> Result<PollBatch, String> {
        let _ = cursor;
        Err("this channel does not poll".to_string())
    }
}

impl<T: Channel> ChannelExports for T {
    fn describe() -> ChannelInfo {
        <T as Channel>::describe()
    }
    fn handshake(request: HttpRequest) -> Option<HttpResponse> {
        <T as Channel>::handshake(request)
    }
    fn parse_inbound(request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
        <T as Channel>::parse_inbound(request)
    }
    fn deliver(message: OutboundMessage) -> DeliveryOutcome {
        <T as Channel>::deliver(message)
    }
    fn poll(cursor: Option<String>) -> Result<PollBatch, String> {
        <T as Channel>::poll(cursor)
    }
}

pub mod config;
pub mod http;
pub mod log;
pub mod testing;
#[cfg(feature = "proptest")]
pub mod hostile;

mod host_trait;
pub use host_trait::{Host, WasmHost};

impl Failure {
    pub fn new(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Failure {
            code: code.into(),
            reason: reason.into(),
        }
    }
}

impl Transient {
    /// A temporary failure retried after the host's backoff (see [`Transient::after`]).
    pub fn new(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Transient {
            code: code.into(),
            reason: reason.into(),
            after_ms: None,
        }
    }

    /// Retried after the delay the provider asked for (`Retry-After`), when it gave one.
    pub fn after(self, after_ms: Option<u64>) -> Self {
        Transient { after_ms, ..self }
    }
}

impl From<Failure> for Transient {
    /// A provider error this channel retries: its code and reason, kept on the attempt.
    fn from(f: Failure) -> Self {
        Transient::new(f.code, f.reason)
    }
}

impl DeliveryOutcome {
    /// `permanent(failure{code, reason})`.
    pub fn permanent(code: impl Into<String>, reason: impl Into<String>) -> Self {
        DeliveryOutcome::Permanent(Failure::new(code, reason))
    }

    /// `retry(transient{code, reason})`, after the host's backoff.
    pub fn retry(code: impl Into<String>, reason: impl Into<String>) -> Self {
        DeliveryOutcome::Retry(Transient::new(code, reason))
    }

    /// A provider answer without an error code of its own (a 5xx proxy page, an empty 503),
    /// retried: code `http-<status>`, after the response's `Retry-After` if it has one.
    pub fn retry_http(resp: &HttpResponse) -> Self {
        DeliveryOutcome::Retry(
            Transient::new(format!("http-{}", resp.status), format!("HTTP {} from the provider", resp.status))
                .after(resp.retry_after_ms()),
        )
    }

    /// The usual outcome when the host's `http-fetch` itself failed: timeouts, transport
    /// errors and oversized responses are retried (the request may or may not have reached
    /// the provider); a denied or malformed request will never succeed as sent.
    pub fn from_http_error(err: &HttpError) -> Self {
        match err {
            HttpError::Timeout => DeliveryOutcome::retry("timeout", "the provider did not answer in time"),
            HttpError::Transport(why) => DeliveryOutcome::retry("transport", why.clone()),
            HttpError::TooLarge => {
                DeliveryOutcome::retry("too-large", "the provider's answer was over the host's size limit")
            }
            HttpError::Denied(why) => DeliveryOutcome::permanent("denied", why.clone()),
            HttpError::InvalidRequest(why) => {
                DeliveryOutcome::permanent("invalid-request", why.clone())
            }
        }
    }
}

impl ParseError {
    pub fn malformed(why: impl Into<String>) -> Self {
        ParseError::Malformed(why.into())
    }
    pub fn unexpected(why: impl Into<String>) -> Self {
        ParseError::Unexpected(why.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_map_to_outcomes() {
        let code = |o: DeliveryOutcome| match o {
            DeliveryOutcome::Retry(t) => format!("retry {} after {:?}", t.code, t.after_ms),
            DeliveryOutcome::Permanent(f) => format!("permanent {}", f.code),
            other => format!("{other:?}"),
        };
        assert_eq!(code(DeliveryOutcome::from_http_error(&HttpError::Timeout)), "retry timeout after None");
        assert_eq!(
            DeliveryOutcome::from_http_error(&HttpError::Transport("reset".into())),
            DeliveryOutcome::retry("transport", "reset")
        );
        assert_eq!(code(DeliveryOutcome::from_http_error(&HttpError::TooLarge)), "retry too-large after None");
        assert_eq!(
            DeliveryOutcome::from_http_error(&HttpError::Denied("evil.example".into())),
            DeliveryOutcome::permanent("denied", "evil.example")
        );
        assert_eq!(code(DeliveryOutcome::from_http_error(&HttpError::InvalidRequest("bad url".into()))), "permanent invalid-request");
    }

    #[test]
    fn an_answer_without_a_code_retries_on_its_status_and_retry_after() {
        let mut resp = HttpResponse::new(503, "<html>down</html>");
        resp.headers.push(("retry-after".into(), "2".into()));
        let DeliveryOutcome::Retry(t) = DeliveryOutcome::retry_http(&resp) else { panic!("retry") };
        assert_eq!((t.code.as_str(), t.after_ms), ("http-503", Some(2_000)));
        let t = Transient::from(Failure::new("131000", "Something went wrong")).after(None);
        assert_eq!((t.code.as_str(), t.reason.as_str(), t.after_ms), ("131000", "Something went wrong", None));
    }
}
