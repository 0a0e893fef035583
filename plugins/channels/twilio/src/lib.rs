//! Switchboard channel plugin for Twilio Programmable Messaging (SMS, MMS and WhatsApp).
//!
//! * Webhooks are form posts verified by the host (`twilio`: `X-Twilio-Signature` with the
//!   account's `auth_token` over its `public_url`); [`inbound`] turns incoming messages and
//!   status callbacks into events.
//! * Outbound messages are `POST {api_base}/2010-04-01/Accounts/{account_sid}/Messages.json`
//!   (form-encoded, Basic auth) through the host's `http-fetch` ([`outbound`]); the answer is
//!   classified on Twilio's error `code` ([`errors`]).
//!
//! Twilio's message create is **not idempotent**: a 5xx or a timeout may come after the message
//! was sent. By default such attempts are retried (at-least-once: a rare duplicate SMS rather
//! than a lost one); the `at_most_once = "true"` setting fails them instead.

pub mod errors;
pub mod inbound;
pub mod outbound;

use switchboard_sdk::{
    Channel, ChannelInfo, DeliveryOutcome, HttpRequest, HttpResponse, InboundEvent,
    OutboundMessage, ParseError, WasmHost,
};

pub const NAME: &str = "twilio";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const VERIFY_SCHEME: &str = "twilio";
pub const CAPABILITIES: [&str; 3] = ["text", "media", "template"];

pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        name: NAME.to_string(),
        version: VERSION.to_string(),
        verify_scheme: VERIFY_SCHEME.to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    }
}

pub struct Twilio;

impl Channel for Twilio {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    /// Twilio has no handshake: every POST is a message or a status callback.
    fn handshake(_request: HttpRequest) -> Option<HttpResponse> {
        None
    }

    fn parse_inbound(request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
        inbound::parse(&request.body)
    }

    fn deliver(message: OutboundMessage) -> DeliveryOutcome {
        outbound::deliver(&WasmHost, &message)
    }
}

#[cfg(target_arch = "wasm32")]
switchboard_sdk::export!(Twilio);

#[cfg(test)]
mod tests;
