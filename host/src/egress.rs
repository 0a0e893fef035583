//! Outbound HTTP performed by the host on behalf of plugins: allowlisted hosts only, no
//! redirects (a redirect could leave the allowlist), bounded time and response size.

use crate::model::{HttpRequest, HttpResponse};
use hyper::http;
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

/// How requests leave the host. Direct is hyper's pooled client over rustls, with nothing
/// between it and the plugin's request. Measured on the dispatch benchmark (2026-12-07,
/// `bench/ab.sh -r 5 dispatch`, one binary with either client) it took 12 % off the request
/// threads' CPU a message (7.5 % off the daemon's) against reqwest, whose redirect and retry
/// layers, URL-to-URI round trip and per-request timer came on top of that same hyper client.
/// reqwest stays for one case: an environment naming a proxy (`HTTP_PROXY`, `HTTPS_PROXY`,
/// `ALL_PROXY`), which it speaks to (`CONNECT` for https, `NO_PROXY` honoured) as this host
/// always has; hyper alone does not.
#[derive(Clone)]
enum Route {
    Direct(DirectClient),
    Proxied(reqwest::Client),
}

type DirectClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// Whether the environment names a proxy for outbound HTTP (the variables reqwest reads).
fn proxy_in_environment() -> bool {
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Egress {
    route: Route,
    max_timeout: Duration,
    max_body: usize,
}

impl Egress {
    /// Direct, or through the proxy the environment names.
    pub fn new(max_timeout: Duration, max_body: usize) -> Self {
        if proxy_in_environment() { Self::proxied(max_timeout, max_body) } else { Self::direct(max_timeout, max_body) }
    }

    fn direct(max_timeout: Duration, max_body: usize) -> Self {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false); // the TLS layer takes https
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(https);
        Self { route: Route::Direct(client), max_timeout, max_body }
    }

    fn proxied(max_timeout: Duration, max_body: usize) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .expect("TLS backend initialises");
        Self { route: Route::Proxied(client), max_timeout, max_body }
    }

    pub async fn fetch(&self, req: HttpRequest, allowed: &[HostPattern]) -> Result<HttpResponse, EgressError> {
        let url = url::Url::parse(&req.url).map_err(|e| EgressError::InvalidRequest(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::InvalidRequest(format!("scheme {} not supported", url.scheme())));
        }
        if !allowed.iter().any(|p| p.allows(&url)) {
            return Err(EgressError::Denied(url.host_str().unwrap_or("").to_string()));
        }
        let method = http::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| EgressError::InvalidRequest(format!("bad method {}", req.method)))?;
        let timeout = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(self.max_timeout)
            .min(self.max_timeout);
        match &self.route {
            Route::Direct(client) => {
                let request = direct_request(method, &url, req)?;
                tokio::time::timeout(timeout, self.exchange(client, request)).await.map_err(|_| EgressError::Timeout)?
            }
            Route::Proxied(client) => self.fetch_proxied(client, method, url, timeout, req).await,
        }
    }

    /// One request and its whole answer, on the direct route (the caller bounds its time).
    async fn exchange(&self, client: &DirectClient, request: http::Request<http_body_util::Full<bytes::Bytes>>) -> Result<HttpResponse, EgressError> {
        use http_body_util::BodyExt;
        let resp = client.request(request).await.map_err(|e| EgressError::Transport(chain(&e)))?;
        let status = resp.status().as_u16();
        let headers = response_headers(resp.headers());
        let body = http_body_util::Limited::new(resp.into_body(), self.max_body).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() { EgressError::TooLarge } else { EgressError::Transport(chain(&*e)) }
        })?;
        Ok(HttpResponse { status, headers, body: body.to_bytes().to_vec() })
    }

    async fn fetch_proxied(
        &self,
        client: &reqwest::Client,
        method: http::Method,
        url: url::Url,
        timeout: Duration,
        req: HttpRequest,
    ) -> Result<HttpResponse, EgressError> {
        let mut builder = client.request(method, url).timeout(timeout).body(req.body);
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let mut resp = builder.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let headers = response_headers(resp.headers());
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

/// The plugin's request as hyper's, to the URL as `url` normalised it. As reqwest did, it asks
/// for any content type unless the plugin said otherwise, and credentials in the URL
/// (`https://user:pass@host/`) become a Basic `authorization` header (replacing one the
/// plugin sent, as reqwest's did) instead of going out in the URL.
fn direct_request(method: http::Method, url: &url::Url, req: HttpRequest) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>, EgressError> {
    let invalid = |e: http::Error| EgressError::InvalidRequest(e.to_string());
    let mut basic = None;
    let mut url = std::borrow::Cow::Borrowed(url);
    if !url.username().is_empty() || url.password().is_some() {
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = format!("{}:{}", decode(url.username()), decode(url.password().unwrap_or("")));
        basic = Some(format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, credentials)));
        let bare = url.to_mut();
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
    }
    let mut builder = http::Request::builder().method(method).uri(url.as_str());
    let headers = builder.headers_mut().expect("a fresh builder has headers");
    for (k, v) in &req.headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(e.into()))?;
        let value = http::HeaderValue::from_str(v).map_err(|e| invalid(e.into()))?;
        headers.append(name, value);
    }
    if !headers.contains_key(http::header::ACCEPT) {
        headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    }
    if let Some(basic) = basic {
        let mut value = http::HeaderValue::from_str(&basic).map_err(|e| invalid(e.into()))?;
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    builder.body(http_body_util::Full::new(bytes::Bytes::from(req.body))).map_err(invalid)
}

fn response_headers(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))).collect()
}

/// An error and its causes, `: `-joined. hyper's errors name no URL (a provider may carry
/// credentials in it, as Telegram's `/bot{token}/` does): the text goes back to the plugin
/// and into logs.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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

    /// A loopback provider, and an allowlist naming it for `scheme`: `/echo` answers with the
    /// request's `accept` and `x-probe` headers and body, `/big` with 2 KiB, `/slow` never.
    async fn provider(scheme: &str) -> (String, [HostPattern; 1]) {
        use axum::routing::{get, post};
        let app = axum::Router::new()
            .route(
                "/echo",
                post(|h: axum::http::HeaderMap, body: bytes::Bytes| async move {
                    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
                    ([("x-seen", format!("{} {}", header("accept"), header("x-probe"))), ("x-auth", header("authorization"))], body)
                }),
            )
            .route("/big", get(|| async { vec![b'x'; 2048] }))
            .route("/slow", get(|| std::future::pending::<&'static str>()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let host = format!("127.0.0.1:{}", addr.port());
        let allowed = [HostPattern::parse(&format!("{scheme}://{host}")).unwrap()];
        (host, allowed)
    }

    fn get(url: String, timeout_ms: Option<u32>) -> HttpRequest {
        HttpRequest { method: "GET".into(), url, timeout_ms, ..Default::default() }
    }

    /// The direct route and the proxied one (with no proxy in this environment, reqwest goes
    /// direct too) answer alike.
    fn both_routes(max_body: usize) -> [(&'static str, Egress); 2] {
        let t = Duration::from_secs(5);
        [("direct", Egress::direct(t, max_body)), ("proxied", Egress::proxied(t, max_body))]
    }

    #[tokio::test]
    async fn a_request_and_its_answer_go_through_unchanged() {
        let (host, allowed) = provider("http").await;
        for (route, e) in both_routes(1024) {
            let req = HttpRequest {
                method: "POST".into(),
                url: format!("http://{host}/echo"),
                headers: vec![("x-probe".into(), "1".into())],
                body: b"hello".to_vec(),
                timeout_ms: None,
            };
            let resp = e.fetch(req, &allowed).await.unwrap();
            assert_eq!((resp.status, resp.body.as_slice()), (200, &b"hello"[..]), "{route}");
            let seen = resp.headers.iter().find(|(k, _)| k == "x-seen").map(|(_, v)| v.as_str());
            assert_eq!(seen, Some("*/* 1"), "{route}: accept defaults to */*, the plugin's headers pass");
        }
    }

    #[tokio::test]
    async fn credentials_in_the_url_become_a_basic_authorization_header() {
        let (host, allowed) = provider("http").await;
        for (route, e) in both_routes(1024) {
            let post = |url: String, headers: Vec<(String, String)>| HttpRequest { method: "POST".into(), url, headers, ..Default::default() };
            let auth = |r: HttpResponse| r.headers.into_iter().find(|(k, _)| k == "x-auth").map(|(_, v)| v);
            let r = e.fetch(post(format!("http://AC1:s%40cret@{host}/echo"), vec![]), &allowed).await.unwrap();
            // base64("AC1:s@cret")
            assert_eq!(auth(r).as_deref(), Some("Basic QUMxOnNAY3JldA=="), "{route}: decoded, then encoded");
            let own = vec![("authorization".into(), "Bearer t".into())];
            let r = e.fetch(post(format!("http://AC1:x@{host}/echo"), own), &allowed).await.unwrap();
            assert_eq!(auth(r).as_deref(), Some("Basic QUMxOng="), "{route}: the URL's credentials win, as they always have");
            let r = e.fetch(post(format!("http://{host}/echo"), vec![("authorization".into(), "Bearer t".into())]), &allowed).await.unwrap();
            assert_eq!(auth(r).as_deref(), Some("Bearer t"), "{route}: without any, the plugin's header goes as it is");
        }
    }

    #[tokio::test]
    async fn an_answer_over_the_size_cap_is_refused() {
        let (host, allowed) = provider("http").await;
        for (route, e) in both_routes(1024) {
            let err = e.fetch(get(format!("http://{host}/big"), None), &allowed).await.unwrap_err();
            assert_eq!(err, EgressError::TooLarge, "{route}");
        }
        for (route, e) in both_routes(2048) {
            assert_eq!(e.fetch(get(format!("http://{host}/big"), None), &allowed).await.unwrap().body.len(), 2048, "{route}: the cap itself fits");
        }
    }

    #[tokio::test]
    async fn a_request_past_its_timeout_is_a_timeout() {
        let (host, allowed) = provider("http").await;
        for (route, e) in both_routes(1024) {
            let err = e.fetch(get(format!("http://{host}/slow"), Some(50)), &allowed).await.unwrap_err();
            assert_eq!(err, EgressError::Timeout, "{route}");
        }
    }

    #[tokio::test]
    async fn https_is_spoken_and_its_failure_names_no_url() {
        // A plain-HTTP server where TLS is expected: the handshake fails, as it does for a
        // certificate that does not verify, and the error carries no part of the URL.
        let (host, allowed) = provider("https").await;
        for (route, e) in both_routes(1024) {
            let err = e.fetch(get(format!("https://{host}/bot123:SECRET/echo"), None), &allowed).await.unwrap_err();
            match err {
                EgressError::Transport(m) => assert!(!m.contains("SECRET") && !m.contains("/echo"), "{route}: {m}"),
                other => panic!("{route}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn requests_outside_the_allowlist_are_denied_before_any_io() {
        let e = Egress::new(Duration::from_secs(1), 1024);
        let req = HttpRequest { method: "GET".into(), url: "http://10.1.2.3/".into(), ..Default::default() };
        let err = e.fetch(req, &[HostPattern::parse("example.com").unwrap()]).await.unwrap_err();
        assert_eq!(err, EgressError::Denied("10.1.2.3".into()));
    }
}
