//! Telegram Bot API webhooks: `setWebhook(secret_token=…)` makes Telegram send
//! `X-Telegram-Bot-Api-Secret-Token` with that exact value on every update. There is no
//! signature over the body; the token (1–256 of `A-Z a-z 0-9 _ -`) is compared exactly,
//! case-sensitively, in constant time.

use super::VerifyError;
use crate::model::HttpRequest;
use crate::redact::Secret;
use subtle::ConstantTimeEq;

const HEADER: &str = "x-telegram-bot-api-secret-token";

/// Verifies a Telegram webhook with the account's `secret_token`.
pub fn verify_telegram_secret_token(secret_token: &Secret, req: &HttpRequest) -> Result<(), VerifyError> {
    let got = req.header(HEADER).ok_or(VerifyError::Missing(HEADER))?;
    let want = secret_token.expose();
    if want.is_empty() {
        return Err(VerifyError::BadSecret("the secret is empty"));
    }
    // No trimming: the value must be exactly the configured token. `ct_eq` on slices of
    // different lengths is false without comparing contents (the length is not a secret).
    if bool::from(got.as_bytes().ct_eq(want.as_bytes())) { Ok(()) } else { Err(VerifyError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(token: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: "/webhooks/tg".into(),
            headers: token.map(|t| vec![(HEADER.to_string(), t.to_string())]).unwrap_or_default(),
            body: br#"{"update_id":1}"#.to_vec(),
            timeout_ms: None,
        }
    }

    #[test]
    fn exact_case_sensitive_match_only() {
        let s = Secret::new("Abc_123-xyz");
        assert_eq!(verify_telegram_secret_token(&s, &req(Some("Abc_123-xyz"))), Ok(()));
        for bad in ["abc_123-xyz", "Abc_123-xy", "Abc_123-xyzz", " Abc_123-xyz", ""] {
            assert_eq!(verify_telegram_secret_token(&s, &req(Some(bad))), Err(VerifyError::Mismatch), "{bad:?}");
        }
        assert_eq!(verify_telegram_secret_token(&s, &req(None)), Err(VerifyError::Missing(HEADER)));
        assert!(verify_telegram_secret_token(&Secret::new(""), &req(Some(""))).is_err(), "empty never matches");
    }

    #[test]
    fn fixtures() {
        super::super::vectors::check(super::super::Scheme::TelegramSecretToken, include_str!("vectors/telegram.json"));
    }

    proptest! {
        /// Only the exact token verifies: arbitrary values (lossy invalid UTF-8, huge, the
        /// token with any change) never do and never panic; unrelated headers don't matter;
        /// the first of duplicated headers counts.
        #[test]
        fn only_the_exact_token(
            token in "[A-Za-z0-9_-]{1,256}",
            value in crate::verify::tests::hostile_value(),
            idx in any::<prop::sample::Index>(),
            xor in 1u8..128,
            extra in prop::collection::vec(("x-[a-z]{1,10}", crate::verify::tests::hostile_value()), 0..4),
        ) {
            let s = Secret::new(token.clone());
            let mut good = req(Some(&token));
            good.headers.extend(extra);
            prop_assert_eq!(verify_telegram_secret_token(&s, &good), Ok(()));
            let mut other = good.clone();
            other.headers[0].1 = value.clone();
            prop_assert_eq!(verify_telegram_secret_token(&s, &other).is_ok(), value == token);
            let mut changed = token.clone().into_bytes();
            let i = idx.index(changed.len());
            changed[i] ^= xor;
            let changed = String::from_utf8_lossy(&changed).into_owned();
            prop_assert_eq!(verify_telegram_secret_token(&s, &req(Some(&changed))), Err(VerifyError::Mismatch));
            let mut dup = good.clone();
            dup.headers.insert(0, (HEADER.to_uppercase(), changed));
            prop_assert_eq!(verify_telegram_secret_token(&s, &dup), Err(VerifyError::Mismatch));
        }
    }
}
