//! Requests signed the way each provider signs them, for one fixed secret per scheme: what
//! the verification tests and `benches/verify.rs` feed [`super::verify`]. The daemon never
//! calls this (it only ever checks signatures).

use super::{BASE64, Scheme, standard_webhooks_key};
use crate::model::HttpRequest;
use crate::redact::Secret;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A usable secret for each scheme (Discord's is the public key of [`discord_key`]).
pub fn secret_for(s: Scheme) -> Secret {
    match s {
        Scheme::StandardWebhooks => Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        Scheme::DiscordEd25519 => Secret::new(hex::encode(discord_key().verifying_key().to_bytes())),
        Scheme::TelegramSecretToken => Secret::new("Tg_secret-token_0123"),
        _ => Secret::new("hostile-input-secret"),
    }
}

fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

pub const NOW_MS: u64 = 1_700_000_000_000;
pub const PUBLIC_URL: &str = "https://hooks.example/webhooks/a";

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `body` signed as the provider of `scheme` would sign it, at [`NOW_MS`], for
/// [`secret_for`] and (Twilio) [`PUBLIC_URL`].
pub fn signed(scheme: Scheme, body: &[u8]) -> HttpRequest {
    let secret = secret_for(scheme);
    let key = secret.expose().as_bytes();
    let ts = (NOW_MS / 1000).to_string();
    let headers: Vec<(&str, String)> = match scheme {
        Scheme::MetaSha256 | Scheme::GithubSha256 => {
            vec![("x-hub-signature-256", format!("sha256={}", hex::encode(hmac256(key, &[body]))))]
        }
        Scheme::Twilio => {
            let mut params = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
            for (k, v) in form_urlencoded::parse(body) {
                params.entry(k.into_owned()).or_default().insert(v.into_owned());
            }
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).unwrap();
            mac.update(PUBLIC_URL.as_bytes());
            for (k, vs) in &params {
                for v in vs {
                    mac.update(k.as_bytes());
                    mac.update(v.as_bytes());
                }
            }
            vec![("x-twilio-signature", BASE64.encode(mac.finalize().into_bytes()))]
        }
        Scheme::TelegramSecretToken => vec![("x-telegram-bot-api-secret-token", secret.expose().to_string())],
        Scheme::SlackV0 => {
            let sig = hmac256(key, &[b"v0:", ts.as_bytes(), b":", body]);
            vec![("x-slack-request-timestamp", ts), ("x-slack-signature", format!("v0={}", hex::encode(sig)))]
        }
        Scheme::StandardWebhooks => {
            let k = standard_webhooks_key(&secret).unwrap();
            let sig = hmac256(&k, &[b"msg_1.", ts.as_bytes(), b".", body]);
            vec![("webhook-id", "msg_1".into()), ("webhook-timestamp", ts), ("webhook-signature", format!("v1,{}", BASE64.encode(sig)))]
        }
        Scheme::DiscordEd25519 => {
            let msg = [ts.as_bytes(), body].concat();
            let sig = discord_key().sign(&msg);
            vec![("x-signature-ed25519", hex::encode(sig.to_bytes())), ("x-signature-timestamp", ts)]
        }
        Scheme::None => vec![],
    };
    HttpRequest {
        method: "POST".into(),
        url: "/webhooks/a".into(),
        headers: headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        body: body.to_vec(),
        timeout_ms: None,
    }
}
