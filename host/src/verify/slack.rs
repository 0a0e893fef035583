//! Slack request signing (`slack_sdk.signature.SignatureVerifier`):
//! `X-Slack-Signature: v0=<hex HMAC-SHA256(signing_secret, "v0:{ts}:{raw body}")>` with
//! `X-Slack-Request-Timestamp: {ts}` (Unix seconds), rejected when `|now - ts| > 300 s`.
//!
//! The signature is checked before the window, so [`VerifyError::StaleTimestamp`] means "really
//! from Slack but old" (a replay, or clock skew), never a forgery. The hex digest is decoded and
//! compared as bytes, so uppercase hex is accepted too (the SDK compares strings; Slack sends
//! lowercase; accepting both lets through nothing more).

use super::{VerifyError, check_fresh, parse_unix_secs};
use crate::model::HttpRequest;
use crate::redact::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SIGNATURE: &str = "x-slack-signature";
const TIMESTAMP: &str = "x-slack-request-timestamp";

/// Verifies a Slack request with the app's `signing_secret` at `now_ms`.
pub fn verify_slack_v0(signing_secret: &Secret, now_ms: u64, req: &HttpRequest) -> Result<(), VerifyError> {
    let ts_raw = req.header(TIMESTAMP).ok_or(VerifyError::Missing(TIMESTAMP))?;
    let header = req.header(SIGNATURE).ok_or(VerifyError::Missing(SIGNATURE))?;
    let ts = parse_unix_secs(ts_raw, TIMESTAMP)?;
    let hex_sig = header.trim().strip_prefix("v0=").ok_or(VerifyError::Malformed(SIGNATURE))?;
    let sig = hex::decode(hex_sig).map_err(|_| VerifyError::Malformed(SIGNATURE))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(ts_raw.as_bytes());
    mac.update(b":");
    mac.update(&req.body);
    mac.verify_slice(&sig).map_err(|_| VerifyError::Mismatch)?;
    check_fresh(ts, now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// docs.slack.dev "Verifying requests from Slack" (also slack_sdk's own test).
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const TS: &str = "1531420618";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn req(ts: &str, sig: &str, body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: "/webhooks/slack".into(),
            headers: vec![(TIMESTAMP.into(), ts.into()), (SIGNATURE.into(), sig.into())],
            body: body.as_bytes().to_vec(),
            timeout_ms: None,
        }
    }

    #[test]
    fn docs_example() {
        let s = Secret::new(SECRET);
        let now = 1_531_420_618_000;
        assert_eq!(verify_slack_v0(&s, now, &req(TS, SIG, BODY)), Ok(()));
        assert_eq!(verify_slack_v0(&s, now, &req(TS, &SIG.to_uppercase().replace("V0=", "v0="), BODY)), Ok(()));
        assert_eq!(verify_slack_v0(&s, now, &req(TS, SIG, &format!("{BODY}------"))), Err(VerifyError::Mismatch));
        assert_eq!(verify_slack_v0(&s, now, &req("1531420619", SIG, BODY)), Err(VerifyError::Mismatch));
        // Real time is years later: stale.
        assert!(matches!(
            verify_slack_v0(&s, 1_700_000_000_000, &req(TS, SIG, BODY)),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        assert_eq!(verify_slack_v0(&s, now + 300_000, &req(TS, SIG, BODY)), Ok(()));
        assert!(verify_slack_v0(&s, now + 300_001, &req(TS, SIG, BODY)).is_err());
        assert_eq!(verify_slack_v0(&s, now, &req(TS, &SIG[3..], BODY)), Err(VerifyError::Malformed(SIGNATURE)));
        assert_eq!(verify_slack_v0(&s, now, &req("153142061.8", SIG, BODY)), Err(VerifyError::Malformed(TIMESTAMP)));
        let mut bare = req(TS, SIG, BODY);
        bare.headers.remove(0);
        assert_eq!(verify_slack_v0(&s, now, &bare), Err(VerifyError::Missing(TIMESTAMP)));
    }

    #[test]
    fn fixtures_from_the_official_sdk() {
        super::super::vectors::check(super::super::Scheme::SlackV0, include_str!("vectors/slack.json"));
    }

    fn sign(secret: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    proptest! {
        /// Arbitrary timestamps and signatures (lossy invalid UTF-8, huge, signs, fractions)
        /// never panic and never verify; a body signed at `ts` verifies within the window with
        /// unrelated headers added, and not with any other body or timestamp.
        #[test]
        fn hostile_timestamps_signatures_and_bodies(
            body in prop::collection::vec(any::<u8>(), 0..1024),
            other in prop::collection::vec(any::<u8>(), 0..1024),
            ts_value in crate::verify::tests::hostile_value(),
            sig_value in crate::verify::tests::hostile_value(),
            skew in -300_000i64..=300_000,
            extra in prop::collection::vec(("x-[a-z]{1,10}", crate::verify::tests::hostile_value()), 0..4),
        ) {
            let s = Secret::new(SECRET);
            let now = 1_531_420_618_000u64.checked_add_signed(skew).unwrap();
            let mut good = HttpRequest { body: body.clone(), ..req(TS, &sign(SECRET, TS, &body), "") };
            good.headers.extend(extra);
            prop_assert_eq!(verify_slack_v0(&s, now, &good), Ok(()));
            let mut moved = good.clone();
            moved.body = other.clone();
            prop_assert_eq!(verify_slack_v0(&s, now, &moved).is_ok(), other == body);
            let mut ts = good.clone();
            ts.headers[0].1 = ts_value.clone();
            prop_assert_eq!(verify_slack_v0(&s, now, &ts).is_ok(), ts_value == TS);
            let mut sig = good.clone();
            sig.headers[1].1 = sig_value;
            prop_assert!(verify_slack_v0(&s, now, &sig).is_err());
            // A timestamp signed along, but not a Unix-seconds number: refused before any use.
            let odd = HttpRequest { body: body.clone(), ..req(&ts_value, &sign(SECRET, &ts_value, &body), "") };
            if !ts_value.bytes().all(|b| b.is_ascii_digit()) || ts_value.is_empty() {
                prop_assert_eq!(verify_slack_v0(&s, now, &odd), Err(VerifyError::Malformed(TIMESTAMP)));
            }
        }
    }
}
