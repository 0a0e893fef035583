//! Outbound HTTP performed by the host on behalf of plugins: allowlisted hosts only, no
//! redirects (a redirect could leave the allowlist), bounded time and response size.

use crate::model::{HttpRequest, HttpResponse};
use std::time::Duration;

/// One allowed destination. Without a port, only the scheme's default port is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    pub host: String,
    pub port: Option<u16>,
}

impl HostPattern {
    /// Parses `example.com`, `example.com:8443`, or a URL (`http://127.0.0.1:9000/x`).
    pub fn parse(raw: &str) -> Option<Self> {
        let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("https://{raw}") };
        let url = url::Url::parse(&with_scheme).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        Some(Self { host, port: url.port() })
    }

    fn allows(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else { return false };
        host.eq_ignore_ascii_case(&self.host) && url.port() == self.port
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("host not allowed: {0}")]
    Denied(String),
    #[error("timed out")]
    Timeout,
    #[error("transport: {0}")]
    Transport(String),
    #[error("response body too large")]
    TooLarge,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    max_timeout: Duration,
    max_body: usize,
}

impl Egress {
    pub fn new(max_timeout: Duration, max_body: usize) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .expect("TLS backend initialises");
        Self { client, max_timeout, max_body }
    }

    pub async fn fetch(&self, req: HttpRequest, allowed: &[HostPattern]) -> Result<HttpResponse, EgressError> {
        let url = url::Url::parse(&req.url).map_err(|e| EgressError::InvalidRequest(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::InvalidRequest(format!("scheme {} not supported", url.scheme())));
        }
        if !allowed.iter().any(|p| p.allows(&url)) {
            return Err(EgressError::Denied(url.host_str().unwrap_or("").to_string()));
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| EgressError::InvalidRequest(format!("bad method {}", req.method)))?;
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(self.max_timeout)
            .min(self.max_timeout);
        let mut builder = self.client.request(method, url).timeout(timeout).body(req.body);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let mut resp = builder.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_body {
                return Err(EgressError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse { status, headers, body })
    }
}

fn classify(e: reqwest::Error) -> EgressError {
    // Some providers put credentials in the URL (Telegram: `/bot{token}/sendMessage`): the
    // message goes back to the plugin and into logs, so it never carries the URL.
    let e = e.without_url();
    if e.is_timeout() {
        EgressError::Timeout
    } else if e.is_builder() {
        EgressError::InvalidRequest(e.to_string())
    } else {
        EgressError::Transport(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(p: &str, url: &str) -> bool {
        HostPattern::parse(p).unwrap().allows(&url::Url::parse(url).unwrap())
    }

    #[test]
    fn a_bare_host_allows_only_its_default_port() {
        assert!(allowed("graph.facebook.com", "https://graph.facebook.com/v21.0/1/messages"));
        assert!(!allowed("graph.facebook.com", "https://graph.facebook.com:8443/"));
        assert!(!allowed("graph.facebook.com", "https://evil.com/graph.facebook.com"));
        assert!(!allowed("graph.facebook.com", "https://graph.facebook.com.evil.com/"));
    }

    #[test]
    fn a_url_pattern_pins_host_and_port() {
        assert!(allowed("http://127.0.0.1:9000", "http://127.0.0.1:9000/v21.0/x"));
        assert!(!allowed("http://127.0.0.1:9000", "http://127.0.0.1:9001/"));
    }

    #[tokio::test]
    async fn requests_outside_the_allowlist_are_denied_before_any_io() {
        let e = Egress::new(Duration::from_secs(1), 1024);
        let req = HttpRequest { method: "GET".into(), url: "http://10.1.2.3/".into(), ..Default::default() };
        let err = e.fetch(req, &[HostPattern::parse("example.com").unwrap()]).await.unwrap_err();
        assert_eq!(err, EgressError::Denied("10.1.2.3".into()));
    }
}
