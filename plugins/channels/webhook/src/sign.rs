//! Standard Webhooks signing (https://www.standardwebhooks.com): `webhook-signature` is
//! `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")), where the key is
//! the base64 part of the `whsec_…` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_sdk::Failure;

/// The HMAC key of a `whsec_<base64>` secret (a bare base64 key is accepted too).
pub fn key(secret: &str) -> Result<Vec<u8>, Failure> {
    let s = secret.trim();
    let b64 = s.strip_prefix("whsec_").unwrap_or(s);
    let bad = || Failure::new("config", "webhook_secret is not whsec_<base64>");
    let key = STANDARD
        .decode(b64)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64))
        .map_err(|_| bad())?;
    if key.is_empty() {
        return Err(bad());
    }
    Ok(key)
}

/// `v1,<base64 signature>`.
pub fn signature(key: &[u8], id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification (and its reference libraries).
    #[test]
    fn spec_vector() {
        let k = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_secrets() {
        assert_eq!(key("whsec_").unwrap_err().code, "config");
        assert_eq!(key("whsec_!!!").unwrap_err().code, "config");
        assert_eq!(key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap().len(), 24);
    }
}
