//! Meta (WhatsApp Cloud API, Messenger, Instagram) webhooks.

use super::VerifyError;
use crate::model::HttpRequest;
use crate::redact::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const HEADER: &str = "x-hub-signature-256";

/// HMAC-SHA256 of the raw body, exactly as received: Meta signs its own `\uXXXX`-escaped
/// serialisation, so re-serialising the JSON would break valid signatures.
pub fn verify_meta_sha256(app_secret: &Secret, req: &HttpRequest) -> Result<(), VerifyError> {
    let header = req.header(HEADER).ok_or(VerifyError::Missing(HEADER))?;
    let hex_sig = header.trim().strip_prefix("sha256=").ok_or(VerifyError::Malformed(HEADER))?;
    let sig = hex::decode(hex_sig).map_err(|_| VerifyError::Malformed(HEADER))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(&req.body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sig).map_err(|_| VerifyError::Mismatch)
}

/// The answer to Meta's subscription handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    /// 200 with this body.
    Accept(String),
    /// 403: wrong token or mode.
    Reject,
    /// No `hub.*` parameters: not a handshake.
    NotHandshake,
}

/// `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…` → echo the challenge when the
/// token matches. Query values are form-encoded (`+` is a space).
pub fn meta_handshake(query: &str, verify_token: &Secret) -> Handshake {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "hub.mode" => mode = Some(v.into_owned()),
            "hub.verify_token" => token = Some(v.into_owned()),
            "hub.challenge" => challenge = Some(v.into_owned()),
            _ => {}
        }
    }
    if mode.is_none() && token.is_none() && challenge.is_none() {
        return Handshake::NotHandshake;
    }
    let token_ok = token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(verify_token.expose().as_bytes())));
    match (mode.as_deref(), token_ok, challenge) {
        (Some("subscribe"), true, Some(c)) => Handshake::Accept(c),
        _ => Handshake::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signed(secret: &str, body: &[u8]) -> HttpRequest {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        HttpRequest {
            method: "POST".into(),
            url: "/webhooks/wa".into(),
            headers: vec![(HEADER.into(), format!("sha256={sig}"))],
            body: body.to_vec(),
            timeout_ms: None,
        }
    }

    #[test]
    fn accepts_a_body_signed_with_the_app_secret() {
        let req = signed("s3cret", br#"{"object":"whatsapp_business_account"}"#);
        assert_eq!(verify_meta_sha256(&Secret::new("s3cret"), &req), Ok(()));
    }

    #[test]
    fn accepts_uppercase_hex_too() {
        let mut req = signed("s3cret", b"{}");
        let v = req.headers[0].1.to_uppercase().replace("SHA256=", "sha256=");
        req.headers[0].1 = v;
        assert_eq!(verify_meta_sha256(&Secret::new("s3cret"), &req), Ok(()));
    }

    #[test]
    fn signs_the_raw_bytes_not_a_reserialisation() {
        // Meta escapes non-ASCII as \uXXXX and signs that form.
        let raw = br#"{"text":"caf\u00e9"}"#;
        let req = signed("k", raw);
        assert_eq!(verify_meta_sha256(&Secret::new("k"), &req), Ok(()));
        let mut changed = req.clone();
        changed.body = "{\"text\":\"café\"}".as_bytes().to_vec();
        assert_eq!(verify_meta_sha256(&Secret::new("k"), &changed), Err(VerifyError::Mismatch));
    }

    #[test]
    fn rejects_changed_body_wrong_secret_and_missing_header() {
        let req = signed("s3cret", b"{\"a\":1}");
        let mut flipped = req.clone();
        flipped.body[5] ^= 1;
        assert_eq!(verify_meta_sha256(&Secret::new("s3cret"), &flipped), Err(VerifyError::Mismatch));
        assert_eq!(verify_meta_sha256(&Secret::new("other"), &req), Err(VerifyError::Mismatch));
        let mut bare = req.clone();
        bare.headers.clear();
        assert_eq!(verify_meta_sha256(&Secret::new("s3cret"), &bare), Err(VerifyError::Missing(HEADER)));
        let mut sha1_only = req;
        sha1_only.headers = vec![("x-hub-signature".into(), "sha1=abcd".into())];
        assert!(verify_meta_sha256(&Secret::new("s3cret"), &sha1_only).is_err(), "legacy sha1 alone is not enough");
    }

    #[test]
    fn handshake_echoes_the_challenge_only_for_the_right_token() {
        let t = Secret::new("my token");
        assert_eq!(
            meta_handshake("hub.mode=subscribe&hub.verify_token=my+token&hub.challenge=1158201444", &t),
            Handshake::Accept("1158201444".into())
        );
        assert_eq!(meta_handshake("hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1", &t), Handshake::Reject);
        assert_eq!(meta_handshake("hub.mode=unsubscribe&hub.verify_token=my+token&hub.challenge=1", &t), Handshake::Reject);
        assert_eq!(meta_handshake("", &t), Handshake::NotHandshake);
    }

    proptest! {
        /// Arbitrary bodies and `X-Hub-Signature-256` values (invalid UTF-8 made lossy, huge,
        /// near-valid) never panic and never verify; the real signature does, in either hex
        /// case and with unrelated headers around it; any other body under it does not.
        #[test]
        fn hostile_signatures_and_bodies(
            body in prop::collection::vec(any::<u8>(), 0..1024),
            other in prop::collection::vec(any::<u8>(), 0..1024),
            value in crate::verify::tests::hostile_value(),
            extra in prop::collection::vec(("x-[a-z]{1,10}", crate::verify::tests::hostile_value()), 0..4),
            upper in any::<bool>(),
        ) {
            let s = Secret::new("s3cret");
            let mut good = signed("s3cret", &body);
            if upper {
                good.headers[0].1 = good.headers[0].1.to_uppercase().replacen("SHA256=", "sha256=", 1);
            }
            good.headers.extend(extra);
            prop_assert_eq!(verify_meta_sha256(&s, &good), Ok(()));
            let mut forged = good.clone();
            forged.headers[0].1 = value;
            prop_assert!(verify_meta_sha256(&s, &forged).is_err());
            let mut moved = good.clone();
            moved.body = other.clone();
            prop_assert_eq!(verify_meta_sha256(&s, &moved).is_ok(), other == body);
            prop_assert_eq!(verify_meta_sha256(&Secret::new("s3cret2"), &good), Err(VerifyError::Mismatch));
        }

        /// The GET handshake's query is arbitrary too: never panics, accepts only the token.
        #[test]
        fn hostile_handshake_queries(query in any::<String>(), raw in prop::collection::vec(any::<u8>(), 0..200)) {
            let t = Secret::new("my token");
            for q in [query, String::from_utf8_lossy(&raw).into_owned()] {
                if let Handshake::Accept(_) = meta_handshake(&q, &t) {
                    prop_assert!(q.contains("verify_token=my"), "{q:?}");
                }
            }
        }
    }
}
