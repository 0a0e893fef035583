//! Table definitions. Rows are JSON (serde) so that a store can be inspected and migrated
//! without the daemon; keys are chosen for the range scans each queue needs.

use crate::store::StoreError;
use redb::{Database, ReadableTable, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

/// Inbox rows by sequence id.
pub const INBOX: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("inbox");
/// Claimable inbox events: (visible-at ms, id). A claimed event is re-keyed at its lease
/// expiry, so an expired lease makes it claimable again without a sweeper.
pub const INBOX_READY: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("inbox_ready");
/// Outbox rows by message id.
pub const OUTBOX: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("outbox");
/// Due outbox messages: (priority rank, due ms, id); rank 0 is claimed first. In-flight
/// messages sit at their lease expiry.
pub const OUTBOX_DUE: TableDefinition<'_, (u8, u64, &str), ()> = TableDefinition::new("outbox_due");
/// Per-conversation FIFO of unfinished messages: (account \0 conversation, seq) → id. Only
/// the head may be in flight, which keeps a conversation's messages in order.
pub const CONV_QUEUE: TableDefinition<'_, (&str, u64), &str> = TableDefinition::new("conv_queue");
/// Dead letters: `out:<message id>` / `in:<event id>` → entry.
pub const DEAD_LETTERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("dead_letters");
/// Resource leases (e.g. `poll:<account>`): resource → holder, fencing token, expiry.
pub const LEASES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("leases");
/// (expiry ms, idempotency key), swept in batches.
pub const IDEMPOTENCY_EXPIRY: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("idempotency_expiry");
/// `account \0 provider message id` → message id, for status webhooks.
pub const OUTBOX_BY_PROVIDER: TableDefinition<'_, &str, &str> = TableDefinition::new("outbox_by_provider");
/// `account \0 provider event id` → expiry ms.
pub const DEDUPE: TableDefinition<'_, &str, u64> = TableDefinition::new("dedupe");
/// (expiry ms, dedupe key), swept in batches.
pub const DEDUPE_EXPIRY: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("dedupe_expiry");
/// Idempotency key → message id and request fingerprint.
pub const IDEMPOTENCY: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("idempotency");
/// `account \0 conversation` → conversation state.
pub const CONVERSATIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("conversations");
/// `plugin \0 key` → value.
pub const PLUGIN_KV: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("plugin_kv");
/// Agent-tool invocations by id (`call_…`), approvals included.
pub const TOOL_CALLS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("tool_calls");
/// Calls awaiting approval: (account \0 conversation, call id); one reply resolves a whole range.
pub const APPROVALS_PENDING: TableDefinition<'_, (&str, &str), ()> = TableDefinition::new("approvals_pending");
/// Calls awaiting approval by expiry: (expires ms, call id).
pub const APPROVALS_EXPIRY: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("approvals_expiry");
/// Calls approved and not yet started.
pub const APPROVED_CALLS: TableDefinition<'_, &str, ()> = TableDefinition::new("approved_calls");
/// Calls running now (failed at the next start if the process dies).
pub const RUNNING_CALLS: TableDefinition<'_, &str, ()> = TableDefinition::new("running_calls");
/// Push deliveries by event id.
pub const PUSH: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("push");
/// Due push deliveries: (due ms, event id); in-flight ones sit at their lease expiry.
pub const PUSH_DUE: TableDefinition<'_, (u64, u64), ()> = TableDefinition::new("push_due");
/// Per-conversation FIFO of push deliveries: (account \0 conversation, event id). Only the
/// head is delivered, so an agent sees a conversation's events in order.
pub const PUSH_CONV: TableDefinition<'_, (&str, u64), ()> = TableDefinition::new("push_conv");
/// Inbox events held under a lease, by consumer: (consumer, event id) → lease expiry ms.
pub const INBOX_HELD: TableDefinition<'_, (&str, u64), u64> = TableDefinition::new("inbox_held");
/// Conversation history: (account \0 conversation, seq) → entry; trimmed to the retention.
pub const HISTORY: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("history");
/// Last activity of each conversation: (account, last activity ms, conversation), to count
/// an account's open sessions.
pub const SESSION_ACTIVITY: TableDefinition<'_, (&str, u64, &str), ()> = TableDefinition::new("session_activity");
/// Counters: inbox sequence, fencing tokens.
pub const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

pub fn create_all(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(INBOX)?;
    txn.open_table(INBOX_READY)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(OUTBOX_DUE)?;
    txn.open_table(OUTBOX_BY_PROVIDER)?;
    txn.open_table(CONV_QUEUE)?;
    txn.open_table(DEAD_LETTERS)?;
    txn.open_table(LEASES)?;
    txn.open_table(IDEMPOTENCY_EXPIRY)?;
    txn.open_table(DEDUPE)?;
    txn.open_table(DEDUPE_EXPIRY)?;
    txn.open_table(IDEMPOTENCY)?;
    txn.open_table(CONVERSATIONS)?;
    txn.open_table(PLUGIN_KV)?;
    txn.open_table(META)?;
    txn.open_table(TOOL_CALLS)?;
    txn.open_table(APPROVALS_PENDING)?;
    txn.open_table(APPROVALS_EXPIRY)?;
    txn.open_table(APPROVED_CALLS)?;
    txn.open_table(RUNNING_CALLS)?;
    txn.open_table(PUSH)?;
    txn.open_table(PUSH_DUE)?;
    txn.open_table(PUSH_CONV)?;
    txn.open_table(INBOX_HELD)?;
    txn.open_table(HISTORY)?;
    txn.open_table(SESSION_ACTIVITY)?;
    super::history::count_entries_once(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Composite string key; `\0` cannot appear in account ids or provider ids we accept.
pub fn key2(a: &str, b: &str) -> String {
    let mut k = String::with_capacity(a.len() + 1 + b.len());
    k.push_str(a);
    k.push('\0');
    k.push_str(b);
    k
}

/// A row's JSON. The buffer starts at 1 KiB: rows are written on the store's one writer
/// thread, and growing a webhook's ~2 KiB row from serde_json's 128 bytes took four
/// reallocations there.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    serde_json::to_writer(&mut out, v).expect("row types serialize infallibly");
    out
}

pub fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec { table, reason: e.to_string() })
}

/// Adds `delta` to a gauge-like counter (never below zero) and returns the new value.
pub fn add_counter(txn: &redb::WriteTransaction, name: &str, delta: i64) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let cur = meta.get(name)?.map_or(0, |v| v.value());
    let next = (cur as i64 + delta).max(0) as u64;
    meta.insert(name, next)?;
    Ok(next)
}

/// Increments and returns a counter. Fencing tokens and ids come from here, so they grow
/// strictly across restarts.
pub fn next_counter(txn: &redb::WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let next = meta.get(name)?.map_or(0, |v| v.value()) + 1;
    meta.insert(name, next)?;
    Ok(next)
}
