//! Runs the JSON fixtures in this folder. They are written by
//! `scripts/verify-vectors/generate.py` with the providers' official SDKs (see its header to
//! re-run it); each vector carries the verdict the official SDK gives (`sdk`) and ours
//! (`expect`, plus the error kind for rejections). They differ only where a `note` says why.

use super::{Scheme, VerifyError, VerifyInput, verify};
use crate::model::HttpRequest;
use crate::redact::Secret;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    scheme: String,
    generator: String,
    sdk: String,
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    /// `published` (provider docs / SDK tests), `sdk` (signed by the official SDK) or
    /// `tampered` (an SDK-signed request changed afterwards).
    source: String,
    secret: Option<String>,
    public_url: Option<String>,
    now_ms: u64,
    request: Request,
    /// What the official SDK says.
    sdk: Verdict,
    /// What Switchboard must say.
    expect: Verdict,
    /// For rejections: `missing`, `malformed`, `mismatch`, `stale`, `bad_secret`, `no_secret`.
    error: Option<String>,
    note: Option<String>,
    /// Documentation only: what the sender signed over (e.g. the URL Twilio called).
    #[serde(default)]
    #[allow(dead_code)]
    signed: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    /// UTF-8 text, or `body_hex` for arbitrary bytes.
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_hex: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Accept,
    Reject,
}

fn kind(e: &VerifyError) -> &'static str {
    match e {
        VerifyError::Missing(_) => "missing",
        VerifyError::Malformed(_) => "malformed",
        VerifyError::Mismatch => "mismatch",
        VerifyError::StaleTimestamp { .. } => "stale",
        VerifyError::NoSecret => "no_secret",
        VerifyError::BadSecret(_) => "bad_secret",
    }
}

/// Asserts every vector of one fixture file, which must be for `scheme`. Returns how many ran.
pub(super) fn check(scheme: Scheme, json: &str) -> usize {
    let file: File = serde_json::from_str(json).expect("fixture parses");
    assert_eq!(file.scheme, scheme.name(), "fixture for another scheme");
    assert!(file.generator.contains("generate.py"), "{}", file.generator);
    assert!(!file.sdk.is_empty());
    let (mut accepts, mut rejects) = (0, 0);
    let mut failures = Vec::new();
    for v in &file.vectors {
        assert!(matches!(v.source.as_str(), "published" | "sdk" | "tampered"), "{}: source {}", v.name, v.source);
        if v.sdk != v.expect {
            assert!(v.note.is_some(), "{}: differs from the SDK without a note", v.name);
        }
        let body = match (&v.request.body, &v.request.body_hex) {
            (Some(b), None) => b.as_bytes().to_vec(),
            (None, Some(h)) => hex::decode(h).expect("body_hex"),
            (None, None) => Vec::new(),
            (Some(_), Some(_)) => panic!("{}: body and body_hex", v.name),
        };
        let req = HttpRequest {
            method: v.request.method.clone(),
            url: v.request.url.clone(),
            headers: v.request.headers.iter().map(|(k, val)| (k.to_ascii_lowercase(), val.clone())).collect(),
            body,
            timeout_ms: None,
        };
        let secret = v.secret.as_deref().map(Secret::new);
        let input = VerifyInput { secret: secret.as_ref(), public_url: v.public_url.as_deref(), now_ms: v.now_ms };
        let got = verify(scheme, &input, &req);
        let ok = match (v.expect, &got) {
            (Verdict::Accept, Ok(())) => true,
            (Verdict::Reject, Err(e)) => v.error.as_deref().is_none_or(|want| want == kind(e)),
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: expected {:?} {:?}, got {:?}", v.name, v.expect, v.error, got));
        }
        match v.expect {
            Verdict::Accept => accepts += 1,
            Verdict::Reject => rejects += 1,
        }
    }
    assert!(failures.is_empty(), "{} of {} {} vectors failed:\n{}", failures.len(), file.vectors.len(), file.scheme, failures.join("\n"));
    assert!(accepts > 0 && rejects > 0, "{}: needs both verdicts ({accepts} accept, {rejects} reject)", file.scheme);
    file.vectors.len()
}
