//! Switchboard channel plugin for the Telegram Bot API.
//!
//! * Webhook mode: Telegram POSTs one `Update` per request; the host verifies
//!   `X-Telegram-Bot-Api-Secret-Token` (`telegram-secret-token` with `secret_token`), then
//!   [`inbound`] turns the update into one event whose id is the `update_id` (so a redelivered
//!   update is a duplicate).
//! * Outbound: `sendMessage` (and `sendPhoto`, `sendDocument`, … for media) through the host's
//!   `http-fetch` ([`outbound`]); the answer is classified on `error_code`, `description` and
//!   `parameters` ([`errors`]): 429 waits `parameters.retry_after`, a group upgraded to a
//!   supergroup (`migrate_to_chat_id`) is re-sent to the new chat at once, 403 (blocked,
//!   kicked) is permanent.
//!
//! * Long-poll mode (`mode = "poll"`): the host's poller calls `poll`, which runs
//!   `getUpdates` from the committed offset ([`poll`]); the same update → event mapping.
//!
//! Chat ids are 64-bit (supergroups and channels are below -10^12): they are handled as `i64`.

pub mod errors;
pub mod inbound;
pub mod outbound;
pub mod poll;

use switchboard_sdk::{
    Channel, ChannelInfo, DeliveryOutcome, HttpRequest, HttpResponse, InboundEvent,
    OutboundMessage, ParseError, PollBatch, WasmHost,
};

pub const NAME: &str = "telegram";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const VERIFY_SCHEME: &str = "telegram-secret-token";
/// `poll`: the account may run in long-poll mode (`mode = "poll"`) instead of webhooks.
pub const CAPABILITIES: [&str; 3] = ["text", "media", "poll"];

pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        name: NAME.to_string(),
        version: VERSION.to_string(),
        verify_scheme: VERIFY_SCHEME.to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    }
}

pub struct Telegram;

impl Channel for Telegram {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    /// Telegram has no handshake (setWebhook is called by the operator).
    fn handshake(_request: HttpRequest) -> Option<HttpResponse> {
        None
    }

    fn parse_inbound(request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
        inbound::parse(&request.body)
    }

    fn deliver(message: OutboundMessage) -> DeliveryOutcome {
        outbound::deliver(&WasmHost, &message)
    }

    /// Long-poll mode: one `getUpdates` after `cursor` ([`poll`]).
    fn poll(cursor: Option<String>) -> Result<PollBatch, String> {
        let batch = poll::poll(&WasmHost, cursor.as_deref())?;
        Ok(PollBatch { events: batch.events, cursor: batch.cursor })
    }
}

#[cfg(target_arch = "wasm32")]
switchboard_sdk::export!(Telegram);

#[cfg(test)]
mod tests;
