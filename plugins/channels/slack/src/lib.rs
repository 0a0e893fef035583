//! Switchboard channel plugin for Slack (Events API in, `chat.postMessage` out).
//!
//! * Every request is verified by the host (`slack-v0`: `X-Slack-Signature` with the app's
//!   `signing_secret`, 5-minute window) before the plugin sees it.
//! * The Events API `url_verification` challenge is a signed POST: [`Channel::handshake`]
//!   answers it (the host calls `handshake` after verification, before `parse-inbound`), so
//!   nothing is stored.
//! * `event_callback`s become events ([`inbound`]) keyed on `event_id`, so Slack's retries
//!   (`X-Slack-Retry-Num: 1, 2, 3` with the same `event_id`) are stored once. The bot's own
//!   messages (`bot_id` present, or `user` = the `bot_user_id` setting) are ignored.
//! * Outbound `chat.postMessage` with the bearer `bot_token` ([`outbound`]); HTTP 429's
//!   `Retry-After` is honoured and `ok:false` errors are classified ([`errors`]).

pub mod errors;
pub mod inbound;
pub mod outbound;

use switchboard_sdk::{
    Channel, ChannelInfo, DeliveryOutcome, Host, HttpRequest, HttpResponse, InboundEvent,
    OutboundMessage, ParseError, WasmHost,
};

pub const NAME: &str = "slack";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const VERIFY_SCHEME: &str = "slack-v0";
pub const CAPABILITIES: [&str; 2] = ["text", "media"];

pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        name: NAME.to_string(),
        version: VERSION.to_string(),
        verify_scheme: VERIFY_SCHEME.to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    }
}

pub struct Slack;

impl Channel for Slack {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    /// Answers the Events API `url_verification` challenge (a verified POST).
    fn handshake(request: HttpRequest) -> Option<HttpResponse> {
        inbound::url_verification(&request)
    }

    fn parse_inbound(request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
        let bot_user_id = WasmHost.setting("bot_user_id");
        inbound::parse(&request.body, bot_user_id.as_deref())
    }

    fn deliver(message: OutboundMessage) -> DeliveryOutcome {
        outbound::deliver(&WasmHost, &message)
    }
}

#[cfg(target_arch = "wasm32")]
switchboard_sdk::export!(Slack);

#[cfg(test)]
mod tests;
