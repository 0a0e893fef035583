//! Building outbound requests and reading inbound requests / provider responses.

use serde::de::DeserializeOwned;

use crate::{HttpRequest, HttpResponse, ParseError};

/// Builder for an outbound [`HttpRequest`] (to pass to `http-fetch`).
///
/// ```ignore
/// let req = Request::post("https://api.example.com/send")
///     .bearer(&token)
///     .json(&serde_json::json!({"to": "123", "text": "hi"}))
///     .build();
/// ```
#[derive(Debug, Clone)]
pub struct Request(HttpRequest);

impl Request {
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request(HttpRequest {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        })
    }
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }

    /// Adds a header; the name is lowercased as the WIT requires.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0
            .headers
            .push((name.to_ascii_lowercase(), value.into()));
        self
    }
    /// `authorization: Bearer {token}`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }
    /// A JSON body with `content-type: application/json`.
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.0.body = body.to_string().into_bytes();
        self.header("content-type", "application/json")
    }
    /// An `application/x-www-form-urlencoded` body.
    pub fn form<'a>(mut self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        self.0.body = encode_form(pairs).into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = body.into();
        self
    }
    /// The host caps this at its own maximum.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.0.timeout_ms = Some(ms);
        self
    }
    pub fn build(self) -> HttpRequest {
        self.0
    }
}

/// `POST url` with a JSON body and an optional bearer token.
pub fn post_json(
    url: impl Into<String>,
    bearer: Option<&str>,
    body: &serde_json::Value,
) -> HttpRequest {
    let mut req = Request::post(url);
    if let Some(token) = bearer {
        req = req.bearer(token);
    }
    req.json(body).build()
}

/// Case-insensitive header lookup (first value).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Parses a JSON body; a body that is not JSON (or not the expected shape) is `malformed`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body)
        .map_err(|e| ParseError::Malformed(format!("invalid JSON body: {e}")))
}

/// Decodes an `application/x-www-form-urlencoded` body (or query string) into ordered pairs.
pub fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Decodes an `application/x-www-form-urlencoded` body strictly, for providers that always
/// send well-formed UTF-8 forms: a `%` not followed by two hex digits, or names and values that
/// are not UTF-8 once decoded, make it `malformed` instead of being kept literally or replaced
/// by U+FFFD as [`decode_form`] does. Well-formed bodies decode exactly as with [`decode_form`].
pub fn decode_form_strict(body: &[u8]) -> Result<Vec<(String, String)>, ParseError> {
    fn decode(part: &[u8]) -> Result<String, ParseError> {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                    match (hex(part.get(i + 1)), hex(part.get(i + 2))) {
                        (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                        _ => {
                            return Err(ParseError::Malformed(format!(
                                "form body: broken percent-escape at byte {i}"
                            )));
                        }
                    }
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out)
            .map_err(|_| ParseError::Malformed("form body: not UTF-8 once decoded".into()))
    }
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Encodes pairs as `application/x-www-form-urlencoded`.
pub fn encode_form<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Parses an HTTP `Retry-After` given in seconds into milliseconds (HTTP dates are ignored).
pub fn retry_after_ms(value: &str) -> Option<u64> {
    let secs: f64 = value.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64)
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
    /// The path part of `url` (inbound: the path the provider called).
    pub fn path(&self) -> &str {
        let end = self.url.find(['?', '#']).unwrap_or(self.url.len());
        &self.url[..end]
    }
    /// The decoded query string pairs.
    pub fn query(&self) -> Vec<(String, String)> {
        match self.url.split_once('?') {
            Some((_, q)) => decode_form(q.split('#').next().unwrap_or("").as_bytes()),
            None => Vec::new(),
        }
    }
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
    /// The body as JSON (`malformed` if it is not).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ParseError> {
        parse_json(&self.body)
    }
    /// The body as form pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        decode_form(&self.body)
    }
}

impl HttpResponse {
    /// A response with a body and no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
    /// The `Retry-After` header in milliseconds, if present and numeric.
    pub fn retry_after_ms(&self) -> Option<u64> {
        self.header("retry-after").and_then(retry_after_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_json_post_with_bearer() {
        let req = post_json("https://x.test/send", Some("tok"), &json!({"a": 1}));
        assert_eq!(req.method, "POST");
        assert_eq!(req.header("Authorization"), Some("Bearer tok"));
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.body, br#"{"a":1}"#);
        assert_eq!(req.timeout_ms, None);
    }

    #[test]
    fn builder_lowercases_headers_and_encodes_forms() {
        let req = Request::post("https://x.test")
            .header("X-Thing", "1")
            .form([("a b", "c&d")])
            .timeout_ms(500)
            .build();
        assert_eq!(req.headers[0], ("x-thing".to_string(), "1".to_string()));
        assert_eq!(req.body, b"a+b=c%26d");
        assert_eq!(req.timeout_ms, Some(500));
        assert_eq!(req.form(), vec![("a b".to_string(), "c&d".to_string())]);
    }

    #[test]
    fn reads_query_and_path() {
        let req = Request::get("/webhooks/wa?hub.mode=subscribe&hub.challenge=a+b%21").build();
        assert_eq!(req.path(), "/webhooks/wa");
        assert_eq!(req.query_param("hub.challenge").as_deref(), Some("a b!"));
        assert_eq!(req.query_param("missing"), None);
    }

    #[test]
    fn strict_form_decoding() {
        let ok = decode_form_strict(b"a=1&b=x+y%21&&c&=d&e=%C3%A9").unwrap();
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(ok, pairs(&[("a", "1"), ("b", "x y!"), ("c", ""), ("", "d"), ("e", "é")]));
        assert_eq!(decode_form(b"a=1&b=x+y%21&&c&=d&e=%C3%A9"), ok);
        for bad in [&b"a=%"[..], b"a=%4", b"a=%zz", b"%G0=1", b"a=%FF", b"a=%C3%28", b"a=\xff", b"\xc3=1"] {
            assert!(matches!(decode_form_strict(bad), Err(ParseError::Malformed(_))), "{bad:?}");
        }
    }

    #[test]
    fn parse_json_reports_malformed() {
        let err = parse_json::<serde_json::Value>(b"not json").unwrap_err();
        assert!(matches!(err, ParseError::Malformed(_)));
        let v: serde_json::Value = parse_json(br#"{"k":"\u00e9"}"#).unwrap();
        assert_eq!(v["k"], "é");
    }

    #[test]
    fn retry_after_parses_seconds() {
        assert_eq!(retry_after_ms("30"), Some(30_000));
        assert_eq!(retry_after_ms(" 1.5 "), Some(1_500));
        assert_eq!(retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_ms("-1"), None);
        let mut resp = HttpResponse::new(429, "");
        resp.headers.push(("retry-after".into(), "2".into()));
        assert_eq!(resp.retry_after_ms(), Some(2_000));
        assert!(!resp.is_success());
    }

    mod hostile {
        use super::*;
        use proptest::prelude::*;

        /// Form bodies with broken percent-encoding and invalid UTF-8, or any bytes at all.
        fn hostile_form() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                "[A-Za-z0-9]{0,6}",
                prop::sample::select(vec!["%", "%4", "%zz", "%FF", "%C3%28", "%E2%82", "+", "=", "&", "%26%3D", "%00"])
                    .prop_map(String::from),
            ];
            prop_oneof![
                prop::collection::vec(piece, 0..24).prop_map(|p| p.concat().into_bytes()),
                prop::collection::vec(any::<u8>(), 0..512),
            ]
        }

        proptest! {
            /// Never panics; what it returns re-encodes to something that decodes the same
            /// (invalid UTF-8 is U+FFFD, a broken escape is kept as its literal characters).
            #[test]
            fn decode_form_takes_any_bytes(body in hostile_form()) {
                let pairs = decode_form(&body);
                let again = encode_form(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                prop_assert_eq!(decode_form(again.as_bytes()), pairs.clone());
                let req = Request::post("/x").body(body.clone()).build();
                prop_assert_eq!(req.form(), pairs);
            }

            /// Any pairs of strings survive encode → decode exactly, strictly too.
            #[test]
            fn forms_round_trip(pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..8)) {
                let encoded = encode_form(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                prop_assert!(encoded.is_ascii());
                prop_assert_eq!(decode_form(encoded.as_bytes()), pairs.clone());
                prop_assert_eq!(decode_form_strict(encoded.as_bytes()).ok(), Some(pairs));
            }

            /// Strict decoding never panics; it refuses exactly what the lenient decoding had
            /// to repair, and otherwise agrees with it.
            #[test]
            fn strict_decoding_refuses_what_lenient_decoding_repairs(body in hostile_form()) {
                let lenient = decode_form(&body);
                match decode_form_strict(&body) {
                    Ok(strict) => prop_assert_eq!(strict, lenient),
                    Err(e) => {
                        prop_assert!(matches!(e, ParseError::Malformed(_)));
                        let broken_escape = body.iter().enumerate().any(|(i, b)| {
                            *b == b'%' && !(body.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && body.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                        });
                        prop_assert!(broken_escape || lenient.iter().any(|(k, v)| k.contains('\u{fffd}') || v.contains('\u{fffd}')), "{:?}", body);
                    }
                }
            }

            /// Any bytes: JSON or `malformed`, never a panic; a JSON string of any text
            /// round-trips; invalid UTF-8 inside a JSON string is refused.
            #[test]
            fn parse_json_takes_any_bytes(body in prop::collection::vec(any::<u8>(), 0..512), text in any::<String>()) {
                match parse_json::<serde_json::Value>(&body) {
                    Ok(v) => prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).ok(), Some(v)),
                    Err(e) => prop_assert!(matches!(e, ParseError::Malformed(_))),
                }
                let encoded = serde_json::Value::String(text.clone()).to_string();
                prop_assert_eq!(parse_json::<String>(encoded.as_bytes()).ok(), Some(text.clone()));
                let mut broken = format!("\"{text}").into_bytes();
                broken.extend_from_slice(b"\xff\"");
                prop_assert!(matches!(parse_json::<String>(&broken), Err(ParseError::Malformed(_))));
                let req = Request::post("/x").body(body).build();
                let _ = req.json::<serde_json::Value>();
            }

            /// Any URL, header and Retry-After value: the readers never panic.
            #[test]
            fn readers_take_any_text(url in any::<String>(), name in any::<String>(), value in any::<String>()) {
                let req = Request::get(url.clone()).header(&name, value.clone()).build();
                prop_assert!(url.starts_with(req.path()));
                let _ = req.query();
                let _ = req.query_param(&name);
                prop_assert_eq!(req.header(&name.to_ascii_uppercase()), Some(value.as_str()));
                let _ = retry_after_ms(&value);
            }
        }
    }
}
