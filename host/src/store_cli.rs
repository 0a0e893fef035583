//! `switchboard store export|import`: moving a store from the embedded redb file into
//! PostgreSQL (see docs/operations.md, "Choosing a store backend"). Export reads the redb file
//! of a stopped daemon; import writes into the backend the config names, idempotently, so an
//! interrupted import is simply run again.

use crate::clock::SystemClock;
use crate::config::Config;
use crate::store::{ExportRecord, Store, StoreError, StoreLocation, StoreOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Config(String),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{path}:{line}: not an export record: {reason}")]
    Record { path: String, line: usize, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records written per import transaction.
const IMPORT_CHUNK: usize = 500;

/// What was moved, per table.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransferSummary {
    pub records: BTreeMap<String, u64>,
    /// Rows that were new in the target (import only; the rest were there already).
    pub written: u64,
}

/// Writes every record of the config's redb store to `out` as JSON lines.
pub fn export(config: &Config, out: &Path) -> Result<TransferSummary, TransferError> {
    let Some(db) = config.redb_path() else {
        return Err(TransferError::Config("export reads a redb store; this config's store is postgres (use pg_dump)".into()));
    };
    let file_err = |e: std::io::Error| TransferError::File { path: out.display().to_string(), reason: e.to_string() };
    let mut w = BufWriter::new(std::fs::File::create(out).map_err(file_err)?);
    let mut summary = TransferSummary::default();
    Store::export_redb(&db, |r| {
        *summary.records.entry(r.table().to_string()).or_default() += 1;
        serde_json::to_writer(&mut w, &r).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    })
    .map_err(|e| match e {
        StoreError::Storage(_) => TransferError::Config(format!("cannot open {} (is the daemon still running? stop it first): {e}", db.display())),
        other => other.into(),
    })?;
    w.into_inner().map_err(|e| file_err(e.into_error()))?.sync_all().map_err(file_err)?;
    Ok(summary)
}

/// Reads `from` (an export) into the config's store.
pub async fn import(config: &Config, from: &Path) -> Result<TransferSummary, TransferError> {
    let location = config.store_location().map_err(|e| TransferError::Config(format!("store.url: {e}")))?;
    if matches!(location, StoreLocation::Redb { .. }) {
        return Err(TransferError::Config("import writes into a postgres store; set store = { kind = \"postgres\", ... } in the config".into()));
    }
    let store = Store::connect(&location, Arc::new(SystemClock), StoreOptions::default()).await?;
    let file_err = |e: std::io::Error| TransferError::File { path: from.display().to_string(), reason: e.to_string() };
    let reader = std::io::BufReader::new(std::fs::File::open(from).map_err(file_err)?);
    let mut summary = TransferSummary::default();
    let mut chunk = Vec::with_capacity(IMPORT_CHUNK);
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(file_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let record: ExportRecord = serde_json::from_str(&line)
            .map_err(|e| TransferError::Record { path: from.display().to_string(), line: n + 1, reason: e.to_string() })?;
        *summary.records.entry(record.table().to_string()).or_default() += 1;
        chunk.push(record);
        if chunk.len() >= IMPORT_CHUNK {
            summary.written += store.import(std::mem::take(&mut chunk)).await?;
        }
    }
    summary.written += store.import(chunk).await?;
    store.close().await;
    Ok(summary)
}
