//! Switchboard channel plugin for the WhatsApp Business Platform (Cloud API).
//!
//! * Webhooks are verified by the host (`meta-sha256`: `X-Hub-Signature-256` with the
//!   account's `app_secret`), and the host also answers Meta's `hub.challenge` handshake with
//!   `verify_token`; this plugin only turns verified bodies into events ([`inbound`]).
//! * Outbound messages go to the Graph API through the host's `http-fetch` ([`outbound`]),
//!   and the answer is classified on WhatsApp's error code ([`errors`]).
//!
//! The modules are pure (the host is a parameter), so `cargo test` runs them natively.

pub mod errors;
pub mod inbound;
pub mod outbound;

use switchboard_sdk::{
    Channel, ChannelInfo, DeliveryOutcome, HttpRequest, HttpResponse, InboundEvent,
    OutboundMessage, ParseError, WasmHost,
};

pub const NAME: &str = "whatsapp-cloud";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const VERIFY_SCHEME: &str = "meta-sha256";
pub const CAPABILITIES: [&str; 4] = ["text", "media", "template", "window-24h"];

pub fn channel_info() -> ChannelInfo {
    ChannelInfo {
        name: NAME.to_string(),
        version: VERSION.to_string(),
        verify_scheme: VERIFY_SCHEME.to_string(),
        capabilities: CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    }
}

pub struct WhatsAppCloud;

impl Channel for WhatsAppCloud {
    fn describe() -> ChannelInfo {
        channel_info()
    }

    /// For `meta-sha256` the host answers `GET ?hub.mode=subscribe&hub.verify_token=..&
    /// hub.challenge=..` itself (it holds `verify_token`), so there is nothing to do here.
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

// The component exports exist only in the wasm build: natively this crate is an rlib for the
// unit tests (and a native cdylib cannot carry export names such as `...channel@0.2.0#deliver`).
#[cfg(target_arch = "wasm32")]
switchboard_sdk::export!(WhatsAppCloud);

#[cfg(test)]
mod tests;
