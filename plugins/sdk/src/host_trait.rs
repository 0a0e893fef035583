//! The host imports behind a trait, so plugin logic can run against a fake host in native
//! unit tests.

use crate::{HttpError, HttpRequest, HttpResponse, LogLevel};

/// What the host offers a plugin (the `host` interface of the WIT).
pub trait Host {
    fn secret(&self, name: &str) -> Option<String>;
    fn setting(&self, name: &str) -> Option<String>;
    fn http_fetch(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError>;
    fn now_ms(&self) -> u64;
    fn log(&self, level: LogLevel, message: &str);
    fn kv_get(&self, key: &str) -> Option<Vec<u8>>;
    fn kv_set(&self, key: &str, value: Option<&[u8]>);
}

/// The real host: every call goes to the WIT imports. Only usable inside a component.
#[derive(Debug, Clone, Copy, Default)]
pub struct WasmHost;

impl Host for WasmHost {
    fn secret(&self, name: &str) -> Option<String> {
        crate::imports::secret(name)
    }
    fn setting(&self, name: &str) -> Option<String> {
        crate::imports::setting(name)
    }
    fn http_fetch(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        crate::imports::http_fetch(request)
    }
    fn now_ms(&self) -> u64 {
        crate::imports::now_ms()
    }
    fn log(&self, level: LogLevel, message: &str) {
        crate::imports::log(level, message)
    }
    fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        crate::imports::kv_get(key)
    }
    fn kv_set(&self, key: &str, value: Option<&[u8]>) {
        crate::imports::kv_set(key, value)
    }
}
