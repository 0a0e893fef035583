//! GitHub webhooks: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(webhook_secret, raw body)>`.
//! The legacy `X-Hub-Signature` (SHA-1) alone is not accepted.

use super::VerifyError;
use crate::model::HttpRequest;
use crate::redact::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const HEADER: &str = "x-hub-signature-256";

/// Verifies a GitHub webhook with the account's `webhook_secret`. The hex digest is decoded
/// (either case) and compared in constant time.
pub fn verify_github_sha256(webhook_secret: &Secret, req: &HttpRequest) -> Result<(), VerifyError> {
    let header = req.header(HEADER).ok_or(VerifyError::Missing(HEADER))?;
    let hex_sig = header.trim().strip_prefix("sha256=").ok_or(VerifyError::Malformed(HEADER))?;
    let sig = hex::decode(hex_sig).map_err(|_| VerifyError::Malformed(HEADER))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(webhook_secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(&req.body);
    mac.verify_slice(&sig).map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(sig: &str, body: &[u8]) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: "/webhooks/gh".into(),
            headers: vec![(HEADER.into(), sig.into()), ("x-github-event".into(), "push".into())],
            body: body.to_vec(),
            timeout_ms: None,
        }
    }

    /// docs.github.com "Validating webhook deliveries": secret `It's a Secret to Everybody`,
    /// payload `Hello, World!`.
    const DOCS_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn docs_example() {
        let s = Secret::new("It's a Secret to Everybody");
        assert_eq!(verify_github_sha256(&s, &req(DOCS_SIG, b"Hello, World!")), Ok(()));
        assert_eq!(verify_github_sha256(&s, &req(DOCS_SIG, b"Hello, World?")), Err(VerifyError::Mismatch));
        assert_eq!(verify_github_sha256(&s, &req(&DOCS_SIG.replace("sha256=", "sha1="), b"Hello, World!")), Err(VerifyError::Malformed(HEADER)));
        assert_eq!(verify_github_sha256(&s, &req("sha256=zz", b"Hello, World!")), Err(VerifyError::Malformed(HEADER)));
        let mut legacy_only = req("sha1=abcd", b"Hello, World!");
        legacy_only.headers[0].0 = "x-hub-signature".into();
        assert_eq!(verify_github_sha256(&s, &legacy_only), Err(VerifyError::Missing(HEADER)));
    }

    #[test]
    fn fixtures() {
        super::super::vectors::check(super::super::Scheme::GithubSha256, include_str!("vectors/github.json"));
    }

    proptest! {
        /// Any single-byte change to the body (including appending or truncating) rejects.
        #[test]
        fn any_single_byte_change_to_the_body_rejects(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            idx in any::<prop::sample::Index>(),
            xor in 1u8..=255,
            op in 0u8..3,
        ) {
            let s = Secret::new("prop-secret");
            let mut mac = Hmac::<Sha256>::new_from_slice(b"prop-secret").unwrap();
            mac.update(&body);
            let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            prop_assert_eq!(verify_github_sha256(&s, &req(&sig, &body)), Ok(()));
            let mut changed = body.clone();
            match op {
                0 => { let i = idx.index(changed.len()); changed[i] ^= xor; }
                1 => changed.insert(idx.index(changed.len() + 1), xor),
                _ => { changed.remove(idx.index(changed.len())); }
            }
            prop_assert_eq!(verify_github_sha256(&s, &req(&sig, &changed)), Err(VerifyError::Mismatch));
        }
    }
}
