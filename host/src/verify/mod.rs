//! Webhook verification presets. The host verifies every webhook with the scheme the
//! account's plugin declares **before** the plugin parses it or anything is stored; a plugin
//! cannot skip this. Every compare is constant-time; a missing secret fails closed.

mod meta;

pub use meta::{Handshake, meta_handshake, verify_meta_sha256};

use crate::model::HttpRequest;
use crate::redact::Secret;

/// A verification preset, named as in plugin manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `X-Hub-Signature-256: sha256=<hex>` over the raw body with the `app_secret`.
    MetaSha256,
    /// No verification: only for accounts marked `insecure = true` in config.
    None,
}

impl Scheme {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "meta-sha256" => Some(Scheme::MetaSha256),
            "none" => Some(Scheme::None),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scheme::MetaSha256 => "meta-sha256",
            Scheme::None => "none",
        }
    }

    /// The account secret this scheme verifies with.
    pub fn secret_name(self) -> Option<&'static str> {
        match self {
            Scheme::MetaSha256 => Some("app_secret"),
            Scheme::None => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing signature header {0}")]
    MissingSignature(&'static str),
    #[error("malformed signature header {0}")]
    Malformed(&'static str),
    #[error("signature does not match")]
    Mismatch,
    #[error("verification secret is not configured")]
    NoSecret,
}

/// Verifies `req` under `scheme` with `secret`.
pub fn verify(scheme: Scheme, secret: Option<&Secret>, req: &HttpRequest) -> Result<(), VerifyError> {
    match scheme {
        Scheme::None => Ok(()),
        Scheme::MetaSha256 => verify_meta_sha256(secret.ok_or(VerifyError::NoSecret)?, req),
    }
}
