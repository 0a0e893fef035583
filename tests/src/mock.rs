//! A mock WhatsApp Graph API on 127.0.0.1: records every request and answers from a script
//! (then with success). It plays the provider; nothing of Switchboard is mocked.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: serde_json::Value,
    pub method: String,
    /// The query string, if any (without `?`).
    pub query: Option<String>,
    /// Every header, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body exactly as received (form posts, signed bodies).
    pub raw_body: Vec<u8>,
    /// When the request arrived (to check that a retry waited).
    pub at: std::time::Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.raw_body).into_owned().collect()
    }

    pub fn form_value(&self, key: &str) -> Option<String> {
        self.form().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The answer to a request nothing was scripted for: (status, JSON body). `n` is the request's
/// 1-based number.
pub type DefaultResponder = dyn Fn(&Recorded, usize) -> (u16, String) + Send + Sync;

/// One scripted answer.
struct Scripted {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
    /// Answer only after this is notified (a slow provider).
    hold: Option<Arc<tokio::sync::Notify>>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Scripted>>,
    /// Requests answered with a 2xx.
    accepted: std::sync::atomic::AtomicUsize,
    verbose: bool,
    /// Replaces the WhatsApp-shaped success answer (other providers' mocks).
    default: Mutex<Option<Arc<DefaultResponder>>>,
}

#[derive(Clone)]
pub struct MockProvider {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl MockProvider {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0", false).await
    }

    /// `verbose` prints each request (for the README walkthrough's mock).
    pub async fn start_on(addr: &str, verbose: bool) -> Self {
        let shared = Arc::new(Shared { verbose, ..Default::default() });
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind mock provider");
        let addr = listener.local_addr().unwrap();
        let app = Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request is answered with this status and body.
    pub fn respond_next(&self, status: u16, body: impl Into<String>) {
        self.respond_next_with(status, body, &[]);
    }

    pub fn respond_next_with(&self, status: u16, body: impl Into<String>, headers: &[(&str, &str)]) {
        let headers = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.shared.script.lock().unwrap().push_back(Scripted { status, body: body.into(), headers, hold: None });
    }

    /// The next request is held until the returned handle is notified, then answered.
    pub fn hold_next(&self, status: u16, body: impl Into<String>) -> Arc<tokio::sync::Notify> {
        let hold = Arc::new(tokio::sync::Notify::new());
        let s = Scripted { status, body: body.into(), headers: Vec::new(), hold: Some(hold.clone()) };
        self.shared.script.lock().unwrap().push_back(s);
        hold
    }

    /// Unscripted requests are answered by `f` instead of with a Graph API success: how a test
    /// plays Twilio, Telegram, Slack or a webhook receiver.
    pub fn set_default(&self, f: impl Fn(&Recorded, usize) -> (u16, String) + Send + Sync + 'static) {
        *self.shared.default.lock().unwrap() = Some(Arc::new(f));
    }

    /// How many requests were answered with a 2xx (messages the provider accepted).
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let recorded = Recorded {
        path: uri.path().to_string(),
        authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
        body: json.clone(),
        method: method.to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        raw_body: body.to_vec(),
        at: std::time::Instant::now(),
    };
    let n = {
        let mut reqs = s.requests.lock().unwrap();
        reqs.push(recorded.clone());
        reqs.len()
    };
    if s.verbose {
        println!("mock provider received #{n}: POST {} {}", uri.path(), json);
    }
    let scripted = s.script.lock().unwrap().pop_front();
    let custom = s.default.lock().unwrap().clone();
    let answer = scripted.unwrap_or_else(|| {
        if let Some(f) = custom {
            let (status, body) = f(&recorded, n);
            return Scripted { status, body, headers: Vec::new(), hold: None };
        }
        let to = json.get("to").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let ok = serde_json::json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": to }],
            "messages": [{ "id": format!("wamid.MOCK{n:06}") }],
        });
        Scripted { status: 200, body: ok.to_string(), headers: Vec::new(), hold: None }
    });
    if let Some(h) = &answer.hold {
        h.notified().await;
    }
    if (200..300).contains(&answer.status) {
        s.accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let mut resp = (StatusCode::from_u16(answer.status).unwrap(), [("content-type", "application/json")], answer.body).into_response();
    for (k, v) in answer.headers {
        resp.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            axum::http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}
