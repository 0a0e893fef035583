//! The mock provider `plugin test` starts on 127.0.0.1: it answers each request with the next
//! scripted response and records what it received.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One request the plugin made (through the host's `http-fetch`).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    seen: Vec<Seen>,
}

pub struct Mock {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What the mock says when the plugin makes more requests than the case scripted.
pub const UNSCRIPTED: &str = "plugin test: no scripted response left for this request";

impl Mock {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let script = Arc::new(Mutex::new(Script::default()));
        let app = axum::Router::new().fallback(answer).with_state(script.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { addr, script, stop: Some(stop) })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the script and forgets what was seen (one case at a time).
    pub fn reset(&self, answers: Vec<Answer>) {
        let mut s = self.script.lock().unwrap_or_else(|e| e.into_inner());
        *s = Script { answers: answers.into(), seen: Vec::new() };
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap_or_else(|e| e.into_inner()).seen.clone()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(State(script): State<Arc<Mutex<Script>>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let next = {
        let mut s = script.lock().unwrap_or_else(|e| e.into_inner());
        s.seen.push(Seen {
            method: method.to_string(),
            uri: uri.path_and_query().map_or_else(|| uri.path().to_string(), |p| p.to_string()),
            headers: headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            body: body.to_vec(),
        });
        s.answers.pop_front()
    };
    let Some(a) = next else {
        return (StatusCode::INTERNAL_SERVER_ERROR, UNSCRIPTED).into_response();
    };
    let mut resp = (StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), a.body).into_response();
    for (k, v) in a.headers {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(k), axum::http::HeaderValue::try_from(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
