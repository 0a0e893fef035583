//! Operator commands that talk to a running daemon over its API (the daemon holds the redb
//! file open, so the CLI never opens it behind its back).

use crate::config::Config;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Config(String),
    #[error("daemon not reachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("daemon answered {status}: {body}")]
    Api { status: u16, body: String },
    #[error("{0}")]
    Io(String),
}

/// Where the daemon is and how to authenticate to it.
pub struct Remote {
    pub base: String,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    /// From flags, falling back to the config file (`listen`, first resolvable `api_tokens`)
    /// and `SWITCHBOARD_API_TOKEN`.
    pub fn resolve(config: &Path, url: Option<String>, token: Option<String>) -> Result<Self, AdminError> {
        let cfg = if config.exists() {
            Some(Config::load(config).map_err(|e| AdminError::Config(e.to_string()))?)
        } else {
            None
        };
        let base = url.unwrap_or_else(|| format!("http://{}", cfg.as_ref().map_or_else(|| Config::default().listen, |c| c.listen)));
        let token = token
            .or_else(|| std::env::var("SWITCHBOARD_API_TOKEN").ok())
            .or_else(|| cfg.as_ref()?.api_tokens.iter().find_map(|t| t.resolve().ok()).map(|s| s.expose().to_string()))
            .ok_or_else(|| AdminError::Config("no API token: pass --token, set SWITCHBOARD_API_TOKEN, or configure api_tokens".into()))?;
        Ok(Self { base: base.trim_end_matches('/').to_string(), token, http: reqwest::Client::new() })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<serde_json::Value, AdminError> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| AdminError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(AdminError::Api { status, body });
        }
        serde_json::from_str(&body).map_err(|e| AdminError::Api { status, body: format!("{e}: {body}") })
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, AdminError> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// Streams an online backup (`POST /v1/admin/backup`) into `out`: written to
    /// `out.partial`, synced, checked (it opens as a store and holds the rows the daemon
    /// copied), then renamed to `out`.
    pub async fn backup(&self, out: &Path) -> Result<crate::store::BackupSummary, AdminError> {
        use tokio::io::AsyncWriteExt;
        let unreachable = |e: reqwest::Error| AdminError::Unreachable { url: self.base.clone(), reason: e.to_string() };
        let mut resp = self.http.post(format!("{}/v1/admin/backup", self.base)).bearer_auth(&self.token).send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(AdminError::Api { status, body: resp.text().await.unwrap_or_default() });
        }
        let expected: Option<std::collections::BTreeMap<String, u64>> =
            resp.headers().get("x-switchboard-backup").and_then(|v| serde_json::from_slice(v.as_bytes()).ok());
        let partial = std::path::PathBuf::from(format!("{}.partial", out.display()));
        let io = |e: std::io::Error| AdminError::Io(format!("{}: {e}", partial.display()));
        let mut f = tokio::fs::File::create(&partial).await.map_err(io)?;
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            f.write_all(&chunk).await.map_err(io)?;
        }
        f.sync_all().await.map_err(io)?;
        drop(f);
        let summary = crate::store::Store::inspect(&partial).map_err(|e| AdminError::Io(format!("the backup does not open as a store: {e}")))?;
        if let Some(expected) = expected
            && expected != summary.tables
        {
            return Err(AdminError::Io(format!("the backup is incomplete: the daemon copied {expected:?}, the file holds {:?}", summary.tables)));
        }
        std::fs::rename(&partial, out).map_err(|e| AdminError::Io(format!("{}: {e}", out.display())))?;
        Ok(summary)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> Result<serde_json::Value, AdminError> {
        let req = self.http.post(format!("{}{path}", self.base)).header("content-type", "application/json").body(body.to_string());
        self.send(req).await
    }
}

/// Renders dead letters as a table.
pub fn dlq_table(items: &serde_json::Value) -> String {
    let mut out = format!("{:<44} {:<8} {:<14} {:>5}  {}\n", "ID", "KIND", "ACCOUNT", "TRIES", "REASON");
    for i in items.as_array().into_iter().flatten() {
        let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
        out.push_str(&format!("{:<44} {:<8} {:<14} {:>5}  {}\n", s("id"), s("kind"), s("account"), i["tries"], s("reason")));
    }
    out
}

pub fn messages_table(items: &serde_json::Value) -> String {
    let mut out = format!("{:<38} {:<14} {:<10} {:>8}  {}\n", "ID", "ACCOUNT", "STATUS", "ATTEMPTS", "TO");
    for i in items.as_array().into_iter().flatten() {
        let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
        let attempts = i["attempts"].as_array().map_or(0, Vec::len);
        out.push_str(&format!(
            "{:<38} {:<14} {:<10} {:>8}  {}\n",
            s("id"),
            s("account"),
            s("status"),
            attempts,
            crate::redact::mask_phone(&s("to"))
        ));
    }
    out
}
