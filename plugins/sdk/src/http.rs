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
}
