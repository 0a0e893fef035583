//! Signing a recorded webhook the way its provider would, so `plugin test` can replay it
//! through the daemon's real verification (`switchboard::verify`). One helper per preset the
//! host verifies; the tests below check each against the verifier itself.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use switchboard::model::HttpRequest;
use switchboard::verify::Scheme;

/// The Ed25519 seed `plugin test` signs `discord-ed25519` fixtures with; the test account's
/// `public_key` is set to its public half.
pub const DISCORD_TEST_SEED: [u8; 32] = [0x5b; 32];

/// Adds the signature headers (and, for Twilio JSON bodies, the `bodySHA256` query) that
/// `scheme` expects to `req`, signed with `secret` at `now_ms`. `public_url`: the URL Twilio
/// is configured to call (what it signs). For `discord-ed25519`, `secret` is the hex Ed25519
/// seed (private key), not the account's public key.
pub fn sign(scheme: Scheme, secret: &str, public_url: Option<&str>, now_ms: u64, req: &mut HttpRequest) -> Result<(), String> {
    let ts = (now_ms / 1000).to_string();
    let mut set = |name: &str, value: String| {
        req.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        req.headers.push((name.to_string(), value));
    };
    match scheme {
        Scheme::None => {}
        Scheme::MetaSha256 | Scheme::GithubSha256 => {
            set("x-hub-signature-256", format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &[&req.body]))));
        }
        Scheme::SlackV0 => {
            let mac = hmac_sha256(secret.as_bytes(), &[b"v0:", ts.as_bytes(), b":", &req.body]);
            set("x-slack-request-timestamp", ts);
            set("x-slack-signature", format!("v0={}", hex::encode(mac)));
        }
        Scheme::TelegramSecretToken => set("x-telegram-bot-api-secret-token", secret.to_string()),
        Scheme::StandardWebhooks => {
            let b64 = secret.trim().strip_prefix("whsec_").unwrap_or(secret.trim());
            let key = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
                .map_err(|_| "webhook_secret is not whsec_<base64>".to_string())?;
            // A stable id per body, as a provider's redelivery of the same event would carry.
            let id = format!("msg_{}", &hex::encode(Sha256::digest(&req.body))[..24]);
            let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", &req.body]);
            set("webhook-id", id);
            set("webhook-timestamp", ts);
            set("webhook-signature", format!("v1,{}", BASE64.encode(mac)));
        }
        Scheme::DiscordEd25519 => {
            use ed25519_dalek::{Signer, SigningKey};
            let seed: [u8; 32] = hex::decode(secret.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or("discord-ed25519 signs with a hex 32-byte seed")?;
            let mut msg = ts.as_bytes().to_vec();
            msg.extend_from_slice(&req.body);
            let sig = SigningKey::from_bytes(&seed).sign(&msg);
            set("x-signature-timestamp", ts);
            set("x-signature-ed25519", hex::encode(sig.to_bytes()));
        }
        Scheme::Twilio => {
            let form = req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
            let mut params: Vec<(String, String)> = Vec::new();
            if form {
                params = form_urlencoded::parse(&req.body).into_owned().collect();
                params.sort();
                params.dedup();
            } else {
                // JSON bodies: Twilio puts the body's hash in the URL and signs the URL alone.
                let hash = hex::encode(Sha256::digest(&req.body));
                let sep = if req.url.contains('?') { '&' } else { '?' };
                req.url = format!("{}{sep}bodySHA256={hash}", req.url);
            }
            let url = switchboard::verify::twilio_signed_url(public_url, req).map_err(|e| format!("twilio URL: {e}"))?;
            let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
            mac.update(url.as_bytes());
            for (k, v) in &params {
                mac.update(k.as_bytes());
                mac.update(v.as_bytes());
            }
            let sig = BASE64.encode(mac.finalize().into_bytes());
            req.headers.retain(|(k, _)| k != "x-twilio-signature");
            req.headers.push(("x-twilio-signature".into(), sig));
        }
    }
    Ok(())
}

/// A secret of the right shape that is not `secret`: what a forger would sign with.
pub fn wrong_secret(scheme: Scheme, secret: &str) -> String {
    match scheme {
        Scheme::StandardWebhooks => format!("whsec_{}", BASE64.encode(format!("not {secret}"))),
        Scheme::DiscordEd25519 => hex::encode([0x6c; 32]),
        _ => format!("not-{secret}"),
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::redact::Secret;
    use switchboard::verify::{VerifyError, VerifyInput, verify};

    const NOW: u64 = 1_750_000_000_000;
    const PUBLIC_URL: &str = "https://switchboard.example/webhooks/test";

    fn request(content_type: &str, body: &[u8]) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: "/webhooks/test".into(),
            headers: vec![("content-type".into(), content_type.into())],
            body: body.to_vec(),
            timeout_ms: None,
        }
    }

    /// (scheme, the secret we sign with, the secret the account verifies with)
    fn cases() -> Vec<(Scheme, String, String)> {
        let discord_public = {
            let sk = ed25519_dalek::SigningKey::from_bytes(&DISCORD_TEST_SEED);
            hex::encode(sk.verifying_key().to_bytes())
        };
        let mut v: Vec<(Scheme, String, String)> = [
            (Scheme::MetaSha256, "app-secret"),
            (Scheme::GithubSha256, "gh-secret"),
            (Scheme::SlackV0, "8f742231b10e8888abcd99yyyzzz85a5"),
            (Scheme::TelegramSecretToken, "Abc_123-xyz"),
            (Scheme::StandardWebhooks, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            (Scheme::Twilio, "twilio-auth-token"),
        ]
        .into_iter()
        .map(|(s, k)| (s, k.to_string(), k.to_string()))
        .collect();
        v.push((Scheme::DiscordEd25519, hex::encode(DISCORD_TEST_SEED), discord_public));
        v
    }

    fn check(scheme: Scheme, account_secret: &str, req: &HttpRequest) -> Result<(), VerifyError> {
        let secret = Secret::new(account_secret);
        let input = VerifyInput { secret: Some(&secret), public_url: Some(PUBLIC_URL), now_ms: NOW };
        verify(scheme, &input, req)
    }

    #[test]
    fn every_signed_scheme_round_trips_through_the_verifier() {
        for (scheme, signing, account) in cases() {
            for (ct, body) in [("application/json", &br#"{"a":"caf\u00e9","n":1}"#[..]), ("application/x-www-form-urlencoded", b"To=%2B1555&Body=hi+there&Body=hi+there")] {
                let mut req = request(ct, body);
                sign(scheme, &signing, Some(PUBLIC_URL), NOW, &mut req).unwrap();
                assert_eq!(check(scheme, &account, &req), Ok(()), "{scheme:?} {ct}");

                let mut forged = request(ct, body);
                sign(scheme, &wrong_secret(scheme, &signing), Some(PUBLIC_URL), NOW, &mut forged).unwrap();
                assert!(check(scheme, &account, &forged).is_err(), "{scheme:?} {ct}: a wrong secret must fail");
            }
        }
    }

    #[test]
    fn a_changed_body_fails_every_scheme_that_signs_the_body() {
        for (scheme, signing, account) in cases().into_iter().filter(|(s, ..)| *s != Scheme::TelegramSecretToken) {
            let mut req = request("application/json", br#"{"text":"hello"}"#);
            sign(scheme, &signing, Some(PUBLIC_URL), NOW, &mut req).unwrap();
            req.body = br#"{"text":"hellO"}"#.to_vec();
            assert!(check(scheme, &account, &req).is_err(), "{scheme:?}");
        }
    }
}
