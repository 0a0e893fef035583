//! A scripted in-memory [`Host`] for native unit tests of plugin logic.
//!
//! ```ignore
//! let host = MockHost::new()
//!     .secret("access_token", "tok")
//!     .setting("phone_number_id", "123")
//!     .respond(Ok(HttpResponse::new(200, r#"{"ok":true}"#)));
//! let outcome = my_plugin::deliver(&host, &message);
//! assert_eq!(host.requests()[0].url, "https://...");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use crate::{DeliveryOutcome, Failure, Host, HttpError, HttpRequest, HttpResponse, LogLevel, Transient};

/// The failure of a `permanent` outcome; panics on any other outcome.
pub fn permanent(outcome: DeliveryOutcome) -> Failure {
    match outcome {
        DeliveryOutcome::Permanent(f) => f,
        other => panic!("expected permanent, got {other:?}"),
    }
}

/// Why a `retry` outcome retries; panics on any other outcome.
pub fn retried(outcome: DeliveryOutcome) -> Transient {
    match outcome {
        DeliveryOutcome::Retry(t) => t,
        other => panic!("expected retry, got {other:?}"),
    }
}

#[derive(Debug, Default)]
pub struct MockHost {
    secrets: BTreeMap<String, String>,
    settings: BTreeMap<String, String>,
    responses: RefCell<VecDeque<Result<HttpResponse, HttpError>>>,
    requests: RefCell<Vec<HttpRequest>>,
    logs: RefCell<Vec<(LogLevel, String)>>,
    kv: RefCell<BTreeMap<String, Vec<u8>>>,
    now_ms: u64,
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.insert(name.into(), value.into());
        self
    }
    /// Queues the answer to the next `http_fetch` (answers are used in order).
    pub fn respond(self, response: Result<HttpResponse, HttpError>) -> Self {
        self.responses.borrow_mut().push_back(response);
        self
    }
    pub fn now(mut self, ms: u64) -> Self {
        self.now_ms = ms;
        self
    }
    /// Every request passed to `http_fetch`, in order.
    pub fn requests(&self) -> Vec<HttpRequest> {
        self.requests.borrow().clone()
    }
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        self.logs.borrow().clone()
    }
}

impl Host for MockHost {
    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }
    fn setting(&self, name: &str) -> Option<String> {
        self.settings.get(name).cloned()
    }
    /// Records the request; with no queued answer it fails with `transport`.
    fn http_fetch(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        self.requests.borrow_mut().push(request.clone());
        self.responses
            .borrow_mut()
            .pop_front()
            .unwrap_or_else(|| Err(HttpError::Transport("MockHost: no response queued".into())))
    }
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }
    fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.kv.borrow().get(key).cloned()
    }
    fn kv_set(&self, key: &str, value: Option<&[u8]>) {
        let mut kv = self.kv.borrow_mut();
        match value {
            Some(v) => kv.insert(key.to_string(), v.to_vec()),
            None => kv.remove(key),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn mock_host_scripts_and_records() {
        let host = MockHost::new()
            .secret("token", "t")
            .setting("blank", "  ")
            .respond(Ok(HttpResponse::new(204, "")));
        assert_eq!(config::require_secret(&host, "token").unwrap(), "t");
        let missing = config::require_setting(&host, "blank").unwrap_err();
        assert_eq!(missing.code, "config");
        assert!(
            missing.reason.contains("`blank` setting"),
            "{}",
            missing.reason
        );
        assert_eq!(config::setting_or(&host, "absent", "dflt"), "dflt");

        let req = crate::http::Request::get("https://x.test/").build();
        assert_eq!(host.http_fetch(&req).unwrap().status, 204);
        assert!(matches!(
            host.http_fetch(&req),
            Err(HttpError::Transport(_))
        ));
        assert_eq!(host.requests().len(), 2);

        host.kv_set("k", Some(b"v"));
        assert_eq!(host.kv_get("k").as_deref(), Some(&b"v"[..]));
        host.kv_set("k", None);
        assert_eq!(host.kv_get("k"), None);
    }
}
