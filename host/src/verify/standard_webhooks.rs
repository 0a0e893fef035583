//! Standard Webhooks (standardwebhooks.com; the official `standardwebhooks` libraries):
//! `webhook-id`, `webhook-timestamp` (Unix seconds), `webhook-signature` holding one or more
//! space-separated `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` entries. Entries
//! of other versions (`v1a,…` asymmetric, `v2,…`) are skipped; any matching `v1` entry accepts.
//! Timestamps more than 5 minutes from now are refused (checked after the signature, so
//! [`VerifyError::StaleTimestamp`] is never a forgery).
//!
//! The secret is `whsec_<base64 key>`; like the official libraries, a bare base64 key without
//! the prefix is accepted too, with or without `=` padding.

use super::{BASE64, VerifyError, check_fresh, parse_unix_secs};
use crate::model::HttpRequest;
use crate::redact::Secret;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";
const PREFIX: &str = "whsec_";

/// The HMAC key of a `whsec_…` (or bare base64) secret.
pub fn standard_webhooks_key(secret: &Secret) -> Result<Vec<u8>, VerifyError> {
    let s = secret.expose().trim();
    let b64 = s.strip_prefix(PREFIX).unwrap_or(s);
    let key = BASE64.decode(b64).map_err(|_| VerifyError::BadSecret("webhook_secret is not whsec_<base64>"))?;
    if key.is_empty() {
        return Err(VerifyError::BadSecret("webhook_secret is empty"));
    }
    Ok(key)
}

/// Verifies a Standard Webhooks delivery with the account's `webhook_secret` at `now_ms`.
pub fn verify_standard_webhooks(webhook_secret: &Secret, now_ms: u64, req: &HttpRequest) -> Result<(), VerifyError> {
    let key = standard_webhooks_key(webhook_secret)?;
    let id = req.header(ID).filter(|v| !v.is_empty()).ok_or(VerifyError::Missing(ID))?;
    let ts_raw = req.header(TIMESTAMP).filter(|v| !v.is_empty()).ok_or(VerifyError::Missing(TIMESTAMP))?;
    let header = req.header(SIGNATURE).filter(|v| !v.is_empty()).ok_or(VerifyError::Missing(SIGNATURE))?;
    let ts = parse_unix_secs(ts_raw, TIMESTAMP)?;

    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(ts_raw.as_bytes());
    mac.update(b".");
    mac.update(&req.body);
    let expected = mac.finalize().into_bytes();

    let mut well_formed = false;
    let mut matched = subtle::Choice::from(0);
    for entry in header.split(' ').filter(|e| !e.is_empty()) {
        let Some((version, sig)) = entry.split_once(',') else { continue };
        well_formed = true;
        if version != "v1" {
            continue;
        }
        // An undecodable v1 entry cannot match; another entry still may.
        if let Ok(sig) = BASE64.decode(sig) {
            matched |= expected.as_slice().ct_eq(&sig);
        }
    }
    if !well_formed {
        return Err(VerifyError::Malformed(SIGNATURE));
    }
    if !bool::from(matched) {
        return Err(VerifyError::Mismatch);
    }
    check_fresh(ts, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The spec's / official libraries' example (standard-webhooks `test_sign_function`).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID_V: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    const NOW: u64 = 1_614_265_330_000;

    fn req(sig: &str, body: &[u8]) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: "/webhooks/sw".into(),
            headers: vec![(ID.into(), ID_V.into()), (TIMESTAMP.into(), TS.into()), (SIGNATURE.into(), sig.into())],
            body: body.to_vec(),
            timeout_ms: None,
        }
    }

    #[test]
    fn spec_example_with_and_without_prefix() {
        for s in [SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert_eq!(verify_standard_webhooks(&Secret::new(s), NOW, &req(SIG, BODY.as_bytes())), Ok(()), "{s}");
        }
        // Unpadded signature base64 decodes to the same bytes.
        assert_eq!(verify_standard_webhooks(&Secret::new(SECRET), NOW, &req(SIG.trim_end_matches('='), BODY.as_bytes())), Ok(()));
    }

    #[test]
    fn spec_example_rejections() {
        let s = Secret::new(SECRET);
        // The libraries' "invalid signature" (last char changed).
        let bad = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert_eq!(verify_standard_webhooks(&s, NOW, &req(bad, BODY.as_bytes())), Err(VerifyError::Mismatch));
        assert_eq!(verify_standard_webhooks(&s, NOW, &req(SIG, b"{\"test\": 2432232315}")), Err(VerifyError::Mismatch));
        assert!(matches!(
            verify_standard_webhooks(&s, NOW + 301_000, &req(SIG, BODY.as_bytes())),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert!(verify_standard_webhooks(&s, NOW - 301_000, &req(SIG, BODY.as_bytes())).is_err());
        assert_eq!(verify_standard_webhooks(&s, NOW, &req("g0hM9SsE", BODY.as_bytes())), Err(VerifyError::Malformed(SIGNATURE)));
        // Same signature under another version is skipped.
        assert_eq!(
            verify_standard_webhooks(&s, NOW, &req(&SIG.replace("v1,", "v1a,"), BODY.as_bytes())),
            Err(VerifyError::Mismatch)
        );
        let mut no_id = req(SIG, BODY.as_bytes());
        no_id.headers.remove(0);
        assert_eq!(verify_standard_webhooks(&s, NOW, &no_id), Err(VerifyError::Missing(ID)));
        assert!(matches!(
            verify_standard_webhooks(&Secret::new("whsec_not base64!"), NOW, &req(SIG, BODY.as_bytes())),
            Err(VerifyError::BadSecret(_))
        ));
    }

    #[test]
    fn several_signatures_in_one_header() {
        let s = Secret::new(SECRET);
        let other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let header = format!("v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {other} {SIG} v1,!!notb64");
        assert_eq!(verify_standard_webhooks(&s, NOW, &req(&header, BODY.as_bytes())), Ok(()));
        assert_eq!(
            verify_standard_webhooks(&s, NOW, &req(&format!("{other} v1a,xyz"), BODY.as_bytes())),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn fixtures_from_the_official_sdk() {
        super::super::vectors::check(super::super::Scheme::StandardWebhooks, include_str!("vectors/standard_webhooks.json"));
    }

    proptest! {
        #[test]
        fn any_single_byte_change_to_the_body_rejects(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            idx in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let s = Secret::new(SECRET);
            let key = standard_webhooks_key(&s).unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(format!("{ID_V}.{TS}.").as_bytes());
            mac.update(&body);
            let sig = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
            prop_assert_eq!(verify_standard_webhooks(&s, NOW, &req(&sig, &body)), Ok(()));
            let mut changed = body.clone();
            let i = idx.index(changed.len());
            changed[i] ^= xor;
            prop_assert_eq!(verify_standard_webhooks(&s, NOW, &req(&sig, &changed)), Err(VerifyError::Mismatch));
        }
    }
}
