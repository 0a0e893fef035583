//! The generic `webhook` channel: Standard Webhooks in, Standard Webhooks out. It is also the
//! smallest complete channel plugin, so it doubles as the example to copy.
//!
//! * Inbound: any sender that signs with Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//!   `webhook-signature`; the host verifies them with `webhook_secret` before this plugin runs)
//!   and POSTs a JSON object. Each request is one `message` event whose id is the
//!   `webhook-id` header, so a redelivery is a duplicate ([`inbound`]).
//! * Outbound: `POST {url}` with a JSON body, signed the same way with the same secret
//!   ([`outbound`], [`sign`]). The receiver verifies it with any Standard Webhooks library.

pub mod inbound;
pub mod outbound;
pub mod sign;

use switchboard_sdk::{
    Channel, ChannelInfo, DeliveryOutcome, HttpRequest, HttpResponse, InboundEvent,
    OutboundMessage, ParseError, WasmHost,
};

pub struct Webhook;

impl Channel for Webhook {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "webhook".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            verify_scheme: "standard-webhooks".into(),
            capabilities: vec!["text".into(), "media".into(), "template".into()],
        }
    }

    /// Standard Webhooks has no handshake.
    fn handshake(_request: HttpRequest) -> Option<HttpResponse> {
        None
    }

    fn parse_inbound(request: HttpRequest) -> Result<Vec<InboundEvent>, ParseError> {
        inbound::parse(&request)
    }

    fn deliver(message: OutboundMessage) -> DeliveryOutcome {
        outbound::deliver(&WasmHost, &message)
    }
}

#[cfg(target_arch = "wasm32")]
switchboard_sdk::export!(Webhook);
