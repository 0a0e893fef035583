//! The `host` interface as plugins see it. Every import acts on behalf of exactly the account
//! and plugin the call is for.

use super::HostState;
use super::bindings::switchboard::plugin::host::Host;
use super::bindings::wit::{self, HttpError, LogLevel};
use super::convert;
use crate::egress::EgressError;
use std::time::Instant;

/// Keys and values plugins may store; larger ones are refused with a trap.
const MAX_KV_KEY: usize = 512;
const MAX_KV_VALUE: usize = 64 * 1024;

impl wit::Host for HostState {}

impl Host for HostState {
    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let (plugin, account) = (&*self.plugin, self.account.id.as_str());
        let message: String = message.chars().take(2048).collect();
        match level {
            LogLevel::Trace => tracing::trace!(plugin, account, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, account, "{message}"),
            LogLevel::Info => tracing::info!(plugin, account, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, account, "{message}"),
            LogLevel::Error => tracing::error!(plugin, account, "{message}"),
        }
        Ok(())
    }

    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.services.clock.now_ms())
    }

    async fn kv_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if key.len() > MAX_KV_KEY {
            wasmtime::bail!("kv key longer than {MAX_KV_KEY} bytes");
        }
        Ok(self.services.store.kv_get(&self.kv_ns, &key).await?)
    }

    async fn kv_set(&mut self, key: String, value: Option<Vec<u8>>) -> wasmtime::Result<()> {
        if key.len() > MAX_KV_KEY || value.as_ref().is_some_and(|v| v.len() > MAX_KV_VALUE) {
            wasmtime::bail!("kv key over {MAX_KV_KEY} bytes or value over {MAX_KV_VALUE} bytes");
        }
        let t = Instant::now();
        let r = self.services.store.kv_set(&self.kv_ns, &key, value).await;
        self.host_time += t.elapsed();
        Ok(r?)
    }

    async fn secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.account.secret(&name).map(|s| s.expose().to_string()))
    }

    async fn setting(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.account.setting(&name).map(str::to_string))
    }

    async fn http_fetch(&mut self, request: wit::HttpRequest) -> wasmtime::Result<Result<wit::HttpResponse, HttpError>> {
        let t = Instant::now();
        let r = self.services.egress.fetch(convert::request_from_wit(request), &self.account.allowed_hosts).await;
        self.host_time += t.elapsed();
        if let Err(e) = &r {
            tracing::debug!(plugin = &*self.plugin, account = %self.account.id, error = %e, "http-fetch failed");
        }
        Ok(r.map(convert::response_to_wit).map_err(|e| match e {
            EgressError::Denied(h) => HttpError::Denied(h),
            EgressError::Timeout => HttpError::Timeout,
            EgressError::Transport(m) => HttpError::Transport(m),
            EgressError::TooLarge => HttpError::TooLarge,
            EgressError::InvalidRequest(m) => HttpError::InvalidRequest(m),
        }))
    }
}
