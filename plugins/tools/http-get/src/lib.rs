//! `http-get`: an agent tool that fetches a URL and returns its text, capped in size.
//!
//! The host decides where it may go: every request goes through the host's `http-fetch`,
//! which allows only the hosts the operator lists in `[tools.http-get] allowed_hosts`
//! (no redirects, bounded time and size). This tool adds the agent-facing rules: http(s)
//! only, text content types only, at most `max_bytes` (default 64 KiB, at most 256 KiB)
//! returned, cut at a character boundary and marked `truncated`.
//!
//! Arguments: `{"url": "https://…", "max_bytes": 4096}`. Result:
//! `{"url", "status", "content_type", "text", "bytes", "truncated"}`.

use switchboard_sdk::http::Request;
use switchboard_sdk::serde_json::{self, Value, json};
use switchboard_sdk::{Host, HttpError, ToolError, ToolInfo, WasmHost};

pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;
pub const LIMIT_MAX_BYTES: usize = 256 * 1024;
const TIMEOUT_MS: u32 = 10_000;

pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "url": { "type": "string", "minLength": 8, "maxLength": 2048, "description": "http(s) URL on an allowlisted host" },
            "max_bytes": { "type": "integer", "minimum": 1, "maximum": LIMIT_MAX_BYTES, "description": "return at most this many bytes of text (default 65536)" }
        },
        "required": ["url"],
        "additionalProperties": false
    })
}

pub fn info() -> ToolInfo {
    ToolInfo {
        name: "http-get".into(),
        description: "Fetch a web page or API response from an allowlisted URL and return its text (size-capped).".into(),
        schema: schema().to_string(),
        requires_approval: false,
    }
}

fn is_text(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct == "application/json"
        || ct == "application/xml"
        || ct == "application/javascript"
        || ct.ends_with("+json")
        || ct.ends_with("+xml")
}

/// The longest prefix of `bytes` of at most `max` bytes that ends on a UTF-8 boundary.
fn cut(bytes: &[u8], max: usize) -> (String, bool) {
    if bytes.len() <= max {
        return (String::from_utf8_lossy(bytes).into_owned(), false);
    }
    let mut end = max;
    // Step back over continuation bytes (10xxxxxx) so no character is split.
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    (String::from_utf8_lossy(&bytes[..end]).into_owned(), true)
}

pub fn invoke(host: &impl Host, args: &str) -> Result<String, ToolError> {
    let args: Value = serde_json::from_str(args).map_err(|e| ToolError::InvalidArgs(format!("arguments are not JSON: {e}")))?;
    let url = args.get("url").and_then(Value::as_str).ok_or_else(|| ToolError::InvalidArgs("`url` (a string) is required".into()))?;
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(ToolError::InvalidArgs("`url` must be an http:// or https:// URL".into()));
    }
    let max = match args.get("max_bytes") {
        None => DEFAULT_MAX_BYTES,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n as usize <= LIMIT_MAX_BYTES => n as usize,
            _ => return Err(ToolError::InvalidArgs(format!("`max_bytes` must be an integer from 1 to {LIMIT_MAX_BYTES}"))),
        },
    };
    let req = Request::get(url).header("accept", "text/*, application/json;q=0.9, */*;q=0.1").timeout_ms(TIMEOUT_MS).build();
    let resp = host.http_fetch(&req).map_err(|e| match e {
        HttpError::Denied(h) => ToolError::Failed(format!("host `{h}` is not allowlisted for http-get ([tools.http-get] allowed_hosts)")),
        HttpError::Timeout => ToolError::Failed("the request timed out".into()),
        HttpError::TooLarge => ToolError::Failed("the response is larger than the host allows".into()),
        HttpError::Transport(m) => ToolError::Failed(format!("could not reach the URL: {m}")),
        HttpError::InvalidRequest(m) => ToolError::InvalidArgs(format!("bad URL: {m}")),
    })?;
    let content_type = resp.header("content-type").unwrap_or("").to_string();
    if !is_text(&content_type) {
        return Err(ToolError::Failed(format!("the response is `{content_type}`, not text")));
    }
    let (text, truncated) = cut(&resp.body, max);
    Ok(json!({
        "url": url,
        "status": resp.status,
        "content_type": content_type,
        "text": text,
        "bytes": resp.body.len(),
        "truncated": truncated,
    })
    .to_string())
}

pub struct HttpGet;

impl switchboard_sdk::Tool for HttpGet {
    fn describe() -> ToolInfo {
        info()
    }

    fn invoke(args: String) -> Result<String, ToolError> {
        invoke(&WasmHost, &args)
    }
}

#[cfg(target_arch = "wasm32")]
switchboard_sdk::export_tool!(HttpGet);

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::HttpResponse;
    use switchboard_sdk::testing::MockHost;

    fn ok(ct: &str, body: &str) -> Result<HttpResponse, HttpError> {
        let mut r = HttpResponse::new(200, body);
        r.headers.push(("content-type".into(), ct.into()));
        Ok(r)
    }

    #[test]
    fn fetches_text_and_caps_it_at_a_character_boundary() {
        let host = MockHost::new().respond(ok("text/plain; charset=utf-8", "héllo world"));
        let out: Value = serde_json::from_str(&invoke(&host, r#"{"url":"https://docs.example.com/a","max_bytes":2}"#).unwrap()).unwrap();
        assert_eq!(out["text"], "h", "é is two bytes and is not split");
        assert_eq!(out["truncated"], true);
        assert_eq!(out["bytes"], 12);
        assert_eq!(host.requests()[0].method, "GET");
        assert_eq!(host.requests()[0].url, "https://docs.example.com/a");
    }

    #[test]
    fn refuses_non_http_urls_binary_bodies_and_reports_denied_hosts() {
        assert!(matches!(invoke(&MockHost::new(), r#"{"url":"file:///etc/passwd"}"#), Err(ToolError::InvalidArgs(_))));
        let host = MockHost::new().respond(ok("image/png", "\u{89}PNG"));
        assert!(matches!(invoke(&host, r#"{"url":"https://x.example/i.png"}"#), Err(ToolError::Failed(m)) if m.contains("not text")));
        let host = MockHost::new().respond(Err(HttpError::Denied("evil.example".into())));
        assert!(matches!(invoke(&host, r#"{"url":"https://evil.example/"}"#), Err(ToolError::Failed(m)) if m.contains("allowlisted")));
        assert!(matches!(invoke(&MockHost::new(), r#"{"url":"https://x.example/","max_bytes":0}"#), Err(ToolError::InvalidArgs(_))));
    }

    #[test]
    fn the_schema_is_an_object_schema_requiring_url() {
        let s = schema();
        assert_eq!(s["required"][0], "url");
        assert_eq!(info().name, "http-get");
    }
}
