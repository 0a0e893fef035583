//! Discord interactions: `X-Signature-Ed25519: <hex signature>` over
//! `X-Signature-Timestamp` + raw body, verified with the application's hex public key (the
//! official `discord-interactions` library does the same through libsodium).
//!
//! Verification uses `ed25519-dalek`'s `verify_strict` (rejects non-canonical signatures and
//! small-order keys / `R`, close to libsodium); Discord's honest signatures always pass it.
//!
//! **Timestamp window (our decision; Discord does not require it):** a valid signature whose
//! timestamp is more than 5 minutes from now is refused as stale. Discord expects an answer
//! within 3 seconds and does not retry interactions, so a genuine request is never that old,
//! while without the check a captured request could be replayed forever. The timestamp must
//! then be Unix seconds (what Discord sends).

use super::{VerifyError, check_fresh, parse_unix_secs};
use crate::model::HttpRequest;
use crate::redact::Secret;
use ed25519_dalek::{Signature, VerifyingKey};

const SIGNATURE: &str = "x-signature-ed25519";
const TIMESTAMP: &str = "x-signature-timestamp";

/// The application's public key from its hex form (Developer Portal → General Information).
pub fn discord_public_key(secret: &Secret) -> Result<VerifyingKey, VerifyError> {
    let bytes = hex::decode(secret.expose().trim()).map_err(|_| VerifyError::BadSecret("public_key is not hex"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| VerifyError::BadSecret("public_key is not 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| VerifyError::BadSecret("public_key is not an Ed25519 key"))?;
    if key.is_weak() {
        return Err(VerifyError::BadSecret("public_key is a weak (small-order) key"));
    }
    Ok(key)
}

/// Verifies a Discord interaction with the application's `public_key` at `now_ms`.
pub fn verify_discord_ed25519(public_key: &Secret, now_ms: u64, req: &HttpRequest) -> Result<(), VerifyError> {
    let key = discord_public_key(public_key)?;
    let sig_hex = req.header(SIGNATURE).ok_or(VerifyError::Missing(SIGNATURE))?;
    let ts_raw = req.header(TIMESTAMP).ok_or(VerifyError::Missing(TIMESTAMP))?;
    let sig = hex::decode(sig_hex.trim()).map_err(|_| VerifyError::Malformed(SIGNATURE))?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| VerifyError::Malformed(SIGNATURE))?;
    let sig = Signature::from_bytes(&sig);
    let mut message = Vec::with_capacity(ts_raw.len() + req.body.len());
    message.extend_from_slice(ts_raw.as_bytes());
    message.extend_from_slice(&req.body);
    key.verify_strict(&message, &sig).map_err(|_| VerifyError::Mismatch)?;
    check_fresh(parse_unix_secs(ts_raw, TIMESTAMP)?, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use proptest::prelude::*;

    const TS: &str = "1700000000";
    const NOW: u64 = 1_700_000_001_000;

    fn signed(seed: u8, ts: &str, body: &[u8]) -> (Secret, HttpRequest) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let mut msg = ts.as_bytes().to_vec();
        msg.extend_from_slice(body);
        let sig = sk.sign(&msg);
        let req = HttpRequest {
            method: "POST".into(),
            url: "/webhooks/discord".into(),
            headers: vec![(SIGNATURE.into(), hex::encode(sig.to_bytes())), (TIMESTAMP.into(), ts.into())],
            body: body.to_vec(),
            timeout_ms: None,
        };
        (Secret::new(hex::encode(sk.verifying_key().to_bytes())), req)
    }

    #[test]
    fn accepts_a_signed_ping_and_rejects_tampering() {
        let (pk, req) = signed(7, TS, br#"{"type":1}"#);
        assert_eq!(verify_discord_ed25519(&pk, NOW, &req), Ok(()));
        let mut body = req.clone();
        body.body = br#"{"type":2}"#.to_vec();
        assert_eq!(verify_discord_ed25519(&pk, NOW, &body), Err(VerifyError::Mismatch));
        let mut ts = req.clone();
        ts.headers[1].1 = "1700000001".into();
        assert_eq!(verify_discord_ed25519(&pk, NOW, &ts), Err(VerifyError::Mismatch), "timestamp is signed");
        let (other, _) = signed(8, TS, b"");
        assert_eq!(verify_discord_ed25519(&other, NOW, &req), Err(VerifyError::Mismatch));
        let mut short = req.clone();
        short.headers[0].1.truncate(100);
        assert_eq!(verify_discord_ed25519(&pk, NOW, &short), Err(VerifyError::Malformed(SIGNATURE)));
        let mut missing = req;
        missing.headers.remove(1);
        assert_eq!(verify_discord_ed25519(&pk, NOW, &missing), Err(VerifyError::Missing(TIMESTAMP)));
    }

    #[test]
    fn refuses_old_timestamps_even_with_a_valid_signature() {
        let (pk, req) = signed(7, TS, br#"{"type":1}"#);
        assert!(matches!(
            verify_discord_ed25519(&pk, NOW + 600_000, &req),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        let (pk, odd) = signed(7, "soon", br#"{"type":1}"#);
        assert_eq!(verify_discord_ed25519(&pk, NOW, &odd), Err(VerifyError::Malformed(TIMESTAMP)));
    }

    #[test]
    fn bad_public_keys_are_the_operators_fault() {
        let (_, req) = signed(7, TS, b"{}");
        for bad in ["zz", "abcd", &"00".repeat(32)] {
            let e = verify_discord_ed25519(&Secret::new(bad), NOW, &req).unwrap_err();
            assert!(matches!(e, VerifyError::BadSecret(_)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn fixtures_from_the_official_library() {
        super::super::vectors::check(super::super::Scheme::DiscordEd25519, include_str!("vectors/discord.json"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_single_byte_change_to_the_body_rejects(
            body in proptest::collection::vec(any::<u8>(), 1..256),
            idx in any::<prop::sample::Index>(),
            xor in 1u8..=255,
        ) {
            let (pk, req) = signed(9, TS, &body);
            prop_assert_eq!(verify_discord_ed25519(&pk, NOW, &req), Ok(()));
            let mut changed = req.clone();
            let i = idx.index(changed.body.len());
            changed.body[i] ^= xor;
            prop_assert_eq!(verify_discord_ed25519(&pk, NOW, &changed), Err(VerifyError::Mismatch));
        }
    }
}
