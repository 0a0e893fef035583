//! Twilio webhooks (`X-Twilio-Signature`), as the official `twilio-python` `RequestValidator`
//! checks them.
//!
//! Signed string: the URL Twilio called, then for every form parameter sorted by key (code-point
//! order) and, within a key, by value — **de-duplicated**, as the SDK's `sorted(set(values))` —
//! the key immediately followed by the value, both form-decoded. HMAC-SHA1 with the account's
//! Auth Token, base64. (With `X-Twilio-Webhooks-Signature-Settings: …,algorithm=HMAC_SHA256`,
//! SharedKey mode, it is HMAC-SHA256 keyed with whatever the account's `auth_token` holds: put
//! the SharedKey secret there for such accounts.)
//!
//! JSON bodies: Twilio adds `bodySHA256=<hex sha256(body)>` to the URL's query; the parameters
//! are then empty and the hash must equal the body's (compared as the SDK does: exact lowercase
//! hex string). Without `bodySHA256` the body is always read as form parameters, whatever its
//! content type, so an unsigned body cannot ride along with a URL-only signature.
//!
//! ## Which URL
//! See [`twilio_signed_url`]. Ports follow the SDK: the URL is tried **with** its port
//! (`:443`/`:80` added when absent) and **without** any port (stripped when present); either
//! signature is accepted.
//!
//! Note that Twilio signs decoded parameters, not the raw body: `a+b`, `a%20b`, reordered pairs
//! and a repeated identical pair all verify alike. Plugins must not give such differences meaning.

use super::{BASE64, VerifyError};
use crate::model::HttpRequest;
use crate::redact::Secret;
use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use subtle::{Choice, ConstantTimeEq};

const SIGNATURE: &str = "x-twilio-signature";
const SETTINGS: &str = "x-twilio-webhooks-signature-settings";
const HOST: &str = "host";
const FORWARDED_PROTO: &str = "x-forwarded-proto";
const BODY_SHA256: &str = "bodySHA256";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    HmacSha1,
    HmacSha256,
}

/// `key=<id>,algorithm=<alg>`; absent header or no `algorithm=` means the legacy HMAC-SHA1.
fn algorithm(req: &HttpRequest) -> Result<Algorithm, VerifyError> {
    let Some(settings) = req.header(SETTINGS) else {
        return Ok(Algorithm::HmacSha1);
    };
    for part in settings.split(',') {
        if let Some((name, value)) = part.split_once('=')
            && name.trim() == "algorithm"
            && !value.trim().is_empty()
        {
            return match value.trim().to_ascii_uppercase().as_str() {
                "HMAC_SHA1" => Ok(Algorithm::HmacSha1),
                "HMAC_SHA256" => Ok(Algorithm::HmacSha256),
                // The SDK refuses algorithms it does not know; so do we.
                _ => Err(VerifyError::Malformed(SETTINGS)),
            };
        }
    }
    Ok(Algorithm::HmacSha1)
}

/// The URL Twilio called, as this account sees it:
///
/// * With `public_url` configured (recommended; required behind a proxy that rewrites the path
///   or host): its scheme, host, port and path, followed by the query **the request arrived
///   with**. The query is what Twilio actually called (proxies pass it through), and it carries
///   what Twilio appends to the configured URL (`bodySHA256` for JSON bodies, callback
///   parameters). `public_url`'s own query is used only when the request arrived without one.
/// * Without it: `{x-forwarded-proto or https}://{host header}{path and query}`. The first
///   `x-forwarded-proto` value counts; anything other than `http`/`https` is refused.
///
/// Either way the URL is then tried with and without its port (see the module docs).
pub fn twilio_signed_url(public_url: Option<&str>, req: &HttpRequest) -> Result<String, VerifyError> {
    let (path, query) = match req.url.split_once('?') {
        Some((p, q)) => (p, Some(q).filter(|q| !q.is_empty())),
        None => (req.url.as_str(), None),
    };
    if let Some(public) = public_url {
        return Ok(match query {
            Some(q) => {
                let base = public.split_once('?').map_or(public, |(b, _)| b);
                format!("{base}?{q}")
            }
            None => public.to_string(),
        });
    }
    let host = req.header(HOST).ok_or(VerifyError::Missing(HOST))?.trim();
    if host.is_empty()
        || host
            .bytes()
            .any(|b| matches!(b, b'/' | b'\\' | b'?' | b'#' | b'@') || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(VerifyError::Malformed(HOST));
    }
    let proto = match req.header(FORWARDED_PROTO) {
        None => "https",
        Some(v) => match v.split(',').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
            "https" => "https",
            "http" => "http",
            _ => return Err(VerifyError::Malformed(FORWARDED_PROTO)),
        },
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(match query {
        Some(q) => format!("{proto}://{host}{path}?{q}"),
        None => format!("{proto}://{host}{path}"),
    })
}

/// `(with port, without port)` exactly as the SDK's `add_port`/`remove_port`: a URL without a
/// port gets `:443` (https) or `:80` (anything else); a URL with a port loses it. The scheme is
/// lowercased as Python's `urlparse` does.
fn port_variants(url: &str) -> (String, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), url.to_string());
    };
    let scheme = scheme.to_ascii_lowercase();
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    // An IPv6 literal's port follows the closing bracket.
    let host_end = if hostport.starts_with('[') {
        hostport.find(']').map_or(hostport.len(), |i| i + 1)
    } else {
        hostport.find(':').unwrap_or(hostport.len())
    };
    let (host, port) = hostport.split_at(host_end);
    if port.len() > 1 {
        (format!("{scheme}://{authority}{tail}"), format!("{scheme}://{userinfo}{host}{tail}"))
    } else {
        let default = if scheme == "https" { 443 } else { 80 };
        (format!("{scheme}://{authority}:{default}{tail}"), format!("{scheme}://{authority}{tail}"))
    }
}

type Params = BTreeMap<String, BTreeSet<String>>;

/// Form-decoded, sorted by key then value, values de-duplicated (BTree order on `String` is
/// byte order on UTF-8, which is code-point order, as Python's `sorted`).
fn form_params(body: &[u8]) -> Params {
    let mut params = Params::new();
    for (k, v) in form_urlencoded::parse(body) {
        params.entry(k.into_owned()).or_default().insert(v.into_owned());
    }
    params
}

fn tag<M: Mac + KeyInit>(key: &[u8], url: &str, params: &Params) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (k, values) in params {
        for v in values {
            mac.update(k.as_bytes());
            mac.update(v.as_bytes());
        }
    }
    mac.finalize().into_bytes().to_vec()
}

fn matches(alg: Algorithm, key: &[u8], url: &str, params: &Params, sig: &[u8]) -> Choice {
    let expected = match alg {
        Algorithm::HmacSha1 => tag::<Hmac<Sha1>>(key, url, params),
        Algorithm::HmacSha256 => tag::<Hmac<Sha256>>(key, url, params),
    };
    expected.as_slice().ct_eq(sig)
}

/// The first non-empty `bodySHA256` of the URL's query (Python's `parse_qs(...)[0]`, which
/// drops blank values).
fn body_sha256_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, v)| k == BODY_SHA256 && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// Verifies a Twilio webhook with the account's `auth_token` and `public_url`.
pub fn verify_twilio(auth_token: &Secret, public_url: Option<&str>, req: &HttpRequest) -> Result<(), VerifyError> {
    let header = req.header(SIGNATURE).ok_or(VerifyError::Missing(SIGNATURE))?;
    let sig = BASE64.decode(header.trim()).map_err(|_| VerifyError::Malformed(SIGNATURE))?;
    let alg = algorithm(req)?;
    let url = twilio_signed_url(public_url, req)?;

    let (params, body_ok) = match body_sha256_param(&url) {
        Some(claimed) => {
            let actual = hex::encode(Sha256::digest(&req.body));
            (Params::new(), actual.as_bytes().ct_eq(claimed.as_bytes()))
        }
        None => (form_params(&req.body), Choice::from(1)),
    };
    let (with_port, without_port) = port_variants(&url);
    let key = auth_token.expose().as_bytes();
    let sig_ok = matches(alg, key, &without_port, &params, &sig) | matches(alg, key, &with_port, &params, &sig);
    if bool::from(body_ok & sig_ok) { Ok(()) } else { Err(VerifyError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Signs like Twilio does (for unit tests; the fixtures use the official SDK).
    fn sign(token: &str, url: &str, body: &[u8]) -> String {
        let params = match body_sha256_param(url) {
            Some(_) => Params::new(),
            None => form_params(body),
        };
        BASE64.encode(tag::<Hmac<Sha1>>(token.as_bytes(), url, &params))
    }

    fn req(url: &str, headers: &[(&str, &str)], body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            timeout_ms: None,
        }
    }

    const SDK_PARAMS: &str = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";

    /// twilio-python `tests/unit/test_request_validator.py`: token `12345`,
    /// `https://mycompany.com/myapp.php?foo=1&bar=2` → `RSOYDt4T1cUTdK1PDd93/VVr8B8=`.
    #[test]
    fn sdk_published_vector_from_host_header() {
        let r = req(
            "/myapp.php?foo=1&bar=2",
            &[("host", "mycompany.com"), (SIGNATURE, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")],
            SDK_PARAMS,
        );
        assert_eq!(verify_twilio(&Secret::new("12345"), None, &r), Ok(()));
        assert_eq!(verify_twilio(&Secret::new("12346"), None, &r), Err(VerifyError::Mismatch));
    }

    #[test]
    fn sdk_published_vector_through_public_url() {
        let r = req("/webhooks/tw?foo=1&bar=2", &[(SIGNATURE, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")], SDK_PARAMS);
        let token = Secret::new("12345");
        assert_eq!(verify_twilio(&token, Some("https://mycompany.com/myapp.php"), &r), Ok(()));
        // The public URL's own query is replaced by the request's.
        assert_eq!(verify_twilio(&token, Some("https://mycompany.com/myapp.php?stale=1"), &r), Ok(()));
        // Verbatim when the request has no query.
        let bare = req("/webhooks/tw", &[(SIGNATURE, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")], SDK_PARAMS);
        assert_eq!(verify_twilio(&token, Some("https://mycompany.com/myapp.php?foo=1&bar=2"), &bare), Ok(()));
        assert_eq!(verify_twilio(&token, Some("https://mycompany.com/myapp.php"), &bare), Err(VerifyError::Mismatch));
    }

    /// The SDK tests' port vectors.
    #[test]
    fn sdk_published_port_vectors() {
        let token = Secret::new("12345");
        let u = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let ok = |url: &str, sig: &str| {
            let r = req("/x", &[(SIGNATURE, sig)], SDK_PARAMS);
            verify_twilio(&token, Some(url), &r)
        };
        // removes port on https
        assert_eq!(ok(&u.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="), Ok(()));
        // removes port on http (signature of the URL *with* :1234)
        assert_eq!(ok(&u.replace(".com", ".com:1234").replace("https", "http"), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="), Ok(()));
        // adds :443 / :80
        assert_eq!(ok(u, "kvajT1Ptam85bY51eRf/AJRuM3w="), Ok(()));
        assert_eq!(ok(&u.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="), Ok(()));
    }

    /// The SDK tests' JSON-body vector.
    #[test]
    fn sdk_published_body_sha256_vector() {
        let body = r#"{"property": "value", "boolean": true}"#;
        let hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let r = req(
            &format!("/myapp.php?foo=1&bar=2&bodySHA256={hash}"),
            &[("host", "mycompany.com"), (SIGNATURE, "a9nBmqA0ju/hNViExpshrM61xv4=")],
            body,
        );
        let token = Secret::new("12345");
        assert_eq!(verify_twilio(&token, None, &r), Ok(()));
        let mut changed = r.clone();
        changed.body[3] ^= 1;
        assert_eq!(verify_twilio(&token, None, &changed), Err(VerifyError::Mismatch), "hash covers the body");
    }

    /// The SDK tests' repeated-key vector (`Digits=5678&Digits=1234`), plus a duplicate pair.
    #[test]
    fn sdk_published_duplicate_key_vector() {
        let token = Secret::new("12345");
        for body in ["Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234", "Digits=1234&Sid=CA123&Digits=5678&SidAccount=AC123&Digits=1234"] {
            let r = req("/myapp.php?foo=1&bar=2", &[("host", "mycompany.com"), (SIGNATURE, "IK+Dwps556ElfBT0I3Rgjkr1wJU=")], body);
            assert_eq!(verify_twilio(&token, None, &r), Ok(()), "{body}");
        }
    }

    #[test]
    fn port_variants_follow_the_sdk() {
        assert_eq!(
            port_variants("https://h.example/p?q=1"),
            ("https://h.example:443/p?q=1".into(), "https://h.example/p?q=1".into())
        );
        assert_eq!(port_variants("HTTP://h.example"), ("http://h.example:80".into(), "http://h.example".into()));
        assert_eq!(port_variants("https://h.example:8443/p"), ("https://h.example:8443/p".into(), "https://h.example/p".into()));
        assert_eq!(port_variants("https://u:pw@h.example:8443/p"), ("https://u:pw@h.example:8443/p".into(), "https://u:pw@h.example/p".into()));
        assert_eq!(port_variants("https://[::1]:8443/p"), ("https://[::1]:8443/p".into(), "https://[::1]/p".into()));
        assert_eq!(port_variants("https://[::1]/p"), ("https://[::1]:443/p".into(), "https://[::1]/p".into()));
    }

    #[test]
    fn url_from_headers() {
        let r = |h: &[(&str, &str)]| twilio_signed_url(None, &req("/webhooks/tw?a=1", h, ""));
        assert_eq!(r(&[("host", "hooks.example")]), Ok("https://hooks.example/webhooks/tw?a=1".into()));
        assert_eq!(
            r(&[("host", "hooks.example:8080"), (FORWARDED_PROTO, "HTTP, https")]),
            Ok("http://hooks.example:8080/webhooks/tw?a=1".into())
        );
        assert_eq!(r(&[]), Err(VerifyError::Missing(HOST)));
        assert_eq!(r(&[("host", "evil.example/x?")]), Err(VerifyError::Malformed(HOST)));
        assert_eq!(r(&[("host", "a@b")]), Err(VerifyError::Malformed(HOST)));
        assert_eq!(r(&[("host", "h"), (FORWARDED_PROTO, "ws")]), Err(VerifyError::Malformed(FORWARDED_PROTO)));
    }

    #[test]
    fn json_body_needs_the_right_hash_and_signature() {
        let token = Secret::new("tok");
        let body = br#"{"a":"b"}"#;
        let hash = hex::encode(Sha256::digest(body));
        let url = format!("https://h.example/j?bodySHA256={hash}");
        let sig = sign("tok", &url, body);
        let good = req(&format!("/j?bodySHA256={hash}"), &[("host", "h.example"), (SIGNATURE, &sig)], r#"{"a":"b"}"#);
        assert_eq!(verify_twilio(&token, None, &good), Ok(()));
        // Uppercase hex in the URL: the SDK compares the hex strings, so it fails.
        let upper = hash.to_uppercase();
        let url = format!("https://h.example/j?bodySHA256={upper}");
        let sig = sign("tok", &url, body);
        let r = req(&format!("/j?bodySHA256={upper}"), &[("host", "h.example"), (SIGNATURE, &sig)], r#"{"a":"b"}"#);
        assert_eq!(verify_twilio(&token, None, &r), Err(VerifyError::Mismatch));
        // A URL-only signature does not cover a body it does not hash.
        let url_only = sign("tok", "https://h.example/j", b"");
        let r = req("/j", &[("host", "h.example"), (SIGNATURE, &url_only)], r#"{"a":"b"}"#);
        assert_eq!(verify_twilio(&token, None, &r), Err(VerifyError::Mismatch));
    }

    #[test]
    fn sha256_signature_settings() {
        let token = Secret::new("shared-key-secret");
        let body = "Body=hi&From=%2B1555";
        let mac = tag::<Hmac<Sha256>>(b"shared-key-secret", "https://h.example/s", &form_params(body.as_bytes()));
        let sig = BASE64.encode(mac);
        let with = |settings: &str| {
            req("/s", &[("host", "h.example"), (SIGNATURE, &sig), (SETTINGS, settings)], body)
        };
        assert_eq!(verify_twilio(&token, None, &with("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256")), Ok(()));
        assert_eq!(verify_twilio(&token, None, &with("key=k,algorithm=hmac_sha1")), Err(VerifyError::Mismatch));
        assert_eq!(verify_twilio(&token, None, &with("key=k,algorithm=HMAC_MD5")), Err(VerifyError::Malformed(SETTINGS)));
    }

    #[test]
    fn missing_and_malformed_signature() {
        let token = Secret::new("tok");
        assert_eq!(verify_twilio(&token, None, &req("/", &[("host", "h")], "")), Err(VerifyError::Missing(SIGNATURE)));
        assert_eq!(
            verify_twilio(&token, None, &req("/", &[("host", "h"), (SIGNATURE, "not base64!")], "")),
            Err(VerifyError::Malformed(SIGNATURE))
        );
        // Well-formed but wrong length: a mismatch, not a panic.
        assert_eq!(
            verify_twilio(&token, None, &req("/", &[("host", "h"), (SIGNATURE, "AAAA")], "")),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn fixtures_from_the_official_sdk() {
        super::super::vectors::check(super::super::Scheme::Twilio, include_str!("vectors/twilio.json"));
    }

    /// Form bodies as a hostile sender writes them: arbitrary bytes, broken percent-encoding
    /// (`%`, `%4`, `%zz`), encoded invalid UTF-8 (`%FF`, `%C3%28`), `+`, empty keys and values,
    /// repeated pairs.
    fn hostile_form() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            "[A-Za-z0-9]{0,8}",
            Just("%".to_string()),
            Just("%4".to_string()),
            Just("%zz".to_string()),
            Just("%FF".to_string()),
            Just("%C3%28".to_string()),
            Just("%E2%82".to_string()),
            Just("+".to_string()),
            Just("=".to_string()),
            Just("&".to_string()),
            Just("%26%3D".to_string()),
        ];
        prop_oneof![
            prop::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..512),
        ]
    }

    const PUBLIC: &str = "https://hooks.example/webhooks/tw";

    proptest! {
        /// A signed form body, whatever its bytes, verifies (also with unrelated headers); it
        /// stops verifying when a parameter is added, and arbitrary `X-Twilio-Signature` and
        /// settings values never verify and never panic.
        #[test]
        fn hostile_form_bodies(
            body in hostile_form(),
            value in crate::verify::tests::hostile_value(),
            settings in crate::verify::tests::hostile_value(),
            extra in prop::collection::vec(("x-[a-z]{1,10}", crate::verify::tests::hostile_value()), 0..4),
        ) {
            let token = Secret::new("tok");
            let sig = sign("tok", PUBLIC, &body);
            let mut good = HttpRequest { body: body.clone(), ..req("/webhooks/tw", &[(SIGNATURE, &sig)], "") };
            good.headers.extend(extra);
            prop_assert_eq!(verify_twilio(&token, Some(PUBLIC), &good), Ok(()));
            // Without public_url, from the Host header.
            let mut by_host = good.clone();
            by_host.headers.push((HOST.into(), "hooks.example".into()));
            prop_assert_eq!(verify_twilio(&token, None, &by_host), Ok(()));

            let mut added = good.clone();
            if !form_params(&body).contains_key("ZzAdded") {
                added.body.extend_from_slice(b"&ZzAdded=1");
                prop_assert_eq!(verify_twilio(&token, Some(PUBLIC), &added), Err(VerifyError::Mismatch));
            }
            let mut forged = good.clone();
            forged.headers[0].1 = value;
            prop_assert!(verify_twilio(&token, Some(PUBLIC), &forged).is_err());
            let mut with_settings = good.clone();
            with_settings.headers.push((SETTINGS.into(), settings));
            // SHA-1 settings keep verifying; anything else is a mismatch or malformed, never a panic.
            let _ = verify_twilio(&token, Some(PUBLIC), &with_settings);
        }

        /// JSON mode: any body (invalid UTF-8 included) is covered by `bodySHA256`; any other
        /// body, or the URL without the hash, is refused.
        #[test]
        fn hostile_json_bodies(
            body in prop::collection::vec(any::<u8>(), 0..1024),
            other in prop::collection::vec(any::<u8>(), 0..1024),
        ) {
            let token = Secret::new("tok");
            let hash = hex::encode(Sha256::digest(&body));
            let path = format!("/webhooks/tw?bodySHA256={hash}");
            let sig = sign("tok", &format!("{PUBLIC}?bodySHA256={hash}"), &body);
            let good = HttpRequest { body: body.clone(), ..req(&path, &[(SIGNATURE, &sig)], "") };
            prop_assert_eq!(verify_twilio(&token, Some(PUBLIC), &good), Ok(()));
            let mut moved = good.clone();
            moved.body = other.clone();
            prop_assert_eq!(verify_twilio(&token, Some(PUBLIC), &moved).is_ok(), other == body);
            let mut no_hash = good.clone();
            no_hash.url = "/webhooks/tw".into();
            prop_assert_eq!(verify_twilio(&token, Some(PUBLIC), &no_hash), Err(VerifyError::Mismatch));
        }

        /// Arbitrary request URLs and Host / X-Forwarded-Proto values never panic, and with a
        /// wrong signature never verify.
        #[test]
        fn hostile_urls_and_hosts(
            url in any::<String>(),
            host in crate::verify::tests::hostile_value(),
            proto in crate::verify::tests::hostile_value(),
            public in prop::option::of(any::<String>()),
        ) {
            let r = HttpRequest {
                url,
                ..req("/", &[(SIGNATURE, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), (HOST, &host), (FORWARDED_PROTO, &proto)], SDK_PARAMS)
            };
            let _ = twilio_signed_url(public.as_deref(), &r);
            prop_assert!(verify_twilio(&Secret::new("other"), public.as_deref(), &r).is_err());
            let _ = port_variants(public.as_deref().unwrap_or(&r.url));
        }
    }

    /// Twilio signs decoded parameters and so does this check: bytes that are not UTF-8 decode
    /// to U+FFFD, so `%FF` and `%FE` verify alike. That is safe because a plugin reads the
    /// same decoding (`switchboard_sdk::http::decode_form` is the same lossy
    /// `form_urlencoded::parse`): what was verified is exactly what the plugin sees.
    #[test]
    fn invalid_utf8_in_forms_is_verified_as_the_plugin_reads_it() {
        let token = Secret::new("tok");
        let sig = sign("tok", PUBLIC, b"Body=%FF&From=a");
        let r = HttpRequest { body: b"Body=%FE&From=a".to_vec(), ..req("/webhooks/tw", &[(SIGNATURE, &sig)], "") };
        assert_eq!(verify_twilio(&token, Some(PUBLIC), &r), Ok(()));
        assert_eq!(form_params(b"Body=%FF&From=a"), form_params(b"Body=%FE&From=a"));
        // Broken escapes are kept literally, on both sides.
        assert_eq!(form_params(b"a=%zz&b=%"), form_params(b"b=%&a=%zz"));
        assert_eq!(form_params(b"a=%zz")["a"].iter().next().map(String::as_str), Some("%zz"));
    }
}
