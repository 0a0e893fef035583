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
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<(u16, String)>>,
    verbose: bool,
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
        self.shared.script.lock().unwrap().push_back((status, body.into()));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

async fn handle(State(s): State<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let n = {
        let mut reqs = s.requests.lock().unwrap();
        reqs.push(Recorded {
            path: uri.path().to_string(),
            authorization: headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
            body: json.clone(),
        });
        reqs.len()
    };
    if s.verbose {
        println!("mock provider received #{n}: POST {} {}", uri.path(), json);
    }
    let scripted = s.script.lock().unwrap().pop_front();
    let (status, body) = scripted.unwrap_or_else(|| {
        let to = json.get("to").and_then(|v| v.as_str()).unwrap_or("").to_string();
        let ok = serde_json::json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": to, "wa_id": to }],
            "messages": [{ "id": format!("wamid.MOCK{n:06}") }],
        });
        (200, ok.to_string())
    });
    (StatusCode::from_u16(status).unwrap(), [("content-type", "application/json")], body)
}
