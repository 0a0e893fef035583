//! `switchboard store export`: every durable record of a redb store as [`ExportRecord`]s, read
//! in one read transaction. The daemon must be stopped (redb opens a file once).

use super::tables::{self, CONVERSATIONS, DEAD_LETTERS, DEDUPE, DEDUPE_EXPIRY, HISTORY, IDEMPOTENCY, IDEMPOTENCY_EXPIRY, INBOX, META, OUTBOX, PLUGIN_KV, PUSH, TOOL_CALLS};
use crate::store::inbox_log::InboxLog;
use crate::store::{ExportRecord, StoreError};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::collections::HashMap;
use std::path::Path;

const COUNTERS: &[&str] = &["fence", "inbox_seq", "outbox_seq", "history_seq"];

fn split(key: &str) -> (String, String) {
    let (a, b) = key.split_once('\0').unwrap_or((key, ""));
    (a.to_string(), b.to_string())
}

/// Calls `emit` with every record; returns how many.
pub fn export(path: &Path, mut emit: impl FnMut(ExportRecord) -> std::io::Result<()>) -> Result<usize, StoreError> {
    let db = Database::open(path)?;
    let txn = db.begin_read()?;
    let io = |e: std::io::Error| StoreError::Io(e.to_string());
    let mut n = 0;
    let mut out = |r: ExportRecord| -> Result<(), StoreError> {
        n += 1;
        emit(r).map_err(io)
    };
    let meta = txn.open_table(META)?;
    for name in COUNTERS {
        if let Some(v) = meta.get(*name)? {
            out(ExportRecord::Counter { name: name.to_string(), value: v.value() })?;
        }
    }
    // A store that never opened since the inbox moved to its log still has its events here.
    for r in txn.open_table(INBOX)?.iter()? {
        out(ExportRecord::Inbox { row: tables::decode("inbox", r?.1.value())? })?;
    }
    let log = super::inbox::read_log_end(&txn)?.map(|end| InboxLog::open(&InboxLog::dir_for(path), Some(end), crate::store::inbox_log::SEGMENT_BYTES)).transpose()?;
    if let Some(log) = &log {
        for row in log.rows()? {
            out(ExportRecord::Inbox { row })?;
        }
        log.for_each_seen(|k, expires_at_ms| {
            let (account, event_id) = split(k);
            out(ExportRecord::Dedupe { account, event_id, expires_at_ms })
        })?;
    }
    let expiry: HashMap<String, u64> = txn.open_table(DEDUPE_EXPIRY)?.iter()?.map(|r| r.map(|(k, _)| (k.value().1.to_string(), k.value().0))).collect::<Result<_, _>>()?;
    for r in txn.open_table(DEDUPE)?.iter()? {
        let (k, v) = r?;
        let (account, event_id) = split(k.value());
        let expires_at_ms = expiry.get(k.value()).copied().unwrap_or(v.value());
        out(ExportRecord::Dedupe { account, event_id, expires_at_ms })?;
    }
    for r in txn.open_table(OUTBOX)?.iter()? {
        out(ExportRecord::Outbox { row: tables::decode("outbox", r?.1.value())? })?;
    }
    let expiry: HashMap<String, u64> = txn.open_table(IDEMPOTENCY_EXPIRY)?.iter()?.map(|r| r.map(|(k, _)| (k.value().1.to_string(), k.value().0))).collect::<Result<_, _>>()?;
    for r in txn.open_table(IDEMPOTENCY)?.iter()? {
        let (k, v) = r?;
        let rec: serde_json::Value = tables::decode("idempotency", v.value())?;
        out(ExportRecord::Idempotency {
            key: k.value().to_string(),
            message_id: rec["id"].as_str().unwrap_or_default().to_string(),
            fingerprint: rec["fingerprint"].as_str().unwrap_or_default().to_string(),
            expires_at_ms: expiry.get(k.value()).copied().unwrap_or(0),
        })?;
    }
    for r in txn.open_table(DEAD_LETTERS)?.iter()? {
        out(ExportRecord::DeadLetter { entry: tables::decode("dead_letters", r?.1.value())? })?;
    }
    for r in txn.open_table(CONVERSATIONS)?.iter()? {
        let (k, v) = r?;
        let (account, conversation) = split(k.value());
        let state: serde_json::Value = tables::decode("conversations", v.value())?;
        out(ExportRecord::Conversation {
            account,
            conversation,
            last_inbound_ms: state["last_inbound_ms"].as_u64(),
            session: state["session"].as_u64().unwrap_or(0),
            last_activity_ms: state["last_activity_ms"].as_u64(),
        })?;
    }
    // A store not opened since the history moved to the log still has it here; the log's is
    // read below, by the conversations' rings.
    for r in txn.open_table(HISTORY)?.iter()? {
        let (k, v) = r?;
        let (account, conversation) = split(k.value().0);
        out(ExportRecord::History { account, conversation, entry: tables::decode("history", v.value())? })?;
    }
    if let Some(log) = &log {
        super::history::for_each_kept(&txn, &log.history_reader(), |key, _, entry| {
            let (account, conversation) = split(key);
            out(ExportRecord::History { account, conversation, entry })
        })?;
    }
    for r in txn.open_table(PLUGIN_KV)?.iter()? {
        let (k, v) = r?;
        let (plugin, key) = split(k.value());
        out(ExportRecord::PluginKv { plugin, key, value: v.value().to_vec() })?;
    }
    for r in txn.open_table(PUSH)?.iter()? {
        out(ExportRecord::Push { row: tables::decode("push", r?.1.value())? })?;
    }
    for r in txn.open_table(TOOL_CALLS)?.iter()? {
        out(ExportRecord::ToolCall { call: tables::decode("tool_calls", r?.1.value())? })?;
    }
    match txn.open_table(super::ingest::POLL_CURSORS) {
        Ok(t) => {
            for r in t.iter()? {
                let (k, v) = r?;
                out(ExportRecord::PollCursor { account: k.value().to_string(), cursor: v.value().to_string() })?;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(n)
}
