//! Benchmark-only stand-ins for the webhook path's store work (cargo feature `ceiling`, never
//! in a normal build): they answer webhooks as stored **without storing them**, to measure
//! what the rest of the daemon allows on a machine (`bench/ceiling.sh`).
//!
//! Why: issue 9 asks for 30k durable webhooks a second on two cores, and the question the
//! benchmarks kept leaving open was whether any store could get there under this daemon's
//! HTTP, verification and sandbox, or whether the target is out of reach whatever the store
//! does. `SWITCHBOARD_CEILING` (read once) picks the stand-in:
//!
//! - `skip`: the store is not called at all (HTTP, verification and the plugin alone);
//! - `empty`: each webhook is an empty job in the writer's group commit (adds the queue to
//!   the writer thread, the batching and one fsync per batch);
//! - `memlog`: what a store that keeps the webhook path out of B-trees would do in that
//!   batch: dedupe keys and conversations in hash maps, the inbox row encoded and appended to
//!   a file, the empty commit's fsync standing in for the log's. No index, history ring or
//!   recovery: a lower bound on such a store's cost, not a store.
//! - `bulk`: `memlog`, and every `SWITCHBOARD_CEILING_BULK` webhooks (default 4096) the real
//!   ingest of all of them in one job of the writer: what a log in front of the redb store
//!   would cost if the B-tree work were done later in large batches instead of per group
//!   commit (the writer's CPU per webhook counts both halves).
//!
//! `SWITCHBOARD_CEILING_CACHE_MIB` sets redb's page cache (default: the store's, 16 MiB) for any mode.
//!
//! Unset (or any other value), the daemon stores webhooks as always.

use super::RedbStore;
use super::tables::{self, key2};
use crate::store::StoreError;
use crate::store::inbox::InboxRow;
use crate::store::ingest::{IngestEffects, IngestOptions, IngestOutcome, IngestRequest, Ingested};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Skip,
    Empty,
    Memlog,
    Bulk,
}

/// The stand-in chosen by `SWITCHBOARD_CEILING`, if any (read once, warned about once).
pub(super) fn mode() -> Option<Mode> {
    static MODE: OnceLock<Option<Mode>> = OnceLock::new();
    *MODE.get_or_init(|| {
        let mode = match std::env::var("SWITCHBOARD_CEILING").as_deref() {
            Ok("skip") => Some(Mode::Skip),
            Ok("empty") => Some(Mode::Empty),
            Ok("memlog") => Some(Mode::Memlog),
            Ok("bulk") => Some(Mode::Bulk),
            _ => None,
        };
        if let Some(m) = mode {
            tracing::warn!(mode = ?m, "SWITCHBOARD_CEILING is set: webhooks are answered as stored but NOT stored (benchmark build)");
        }
        mode
    })
}

/// The `memlog` stand-in's state: one per process (the benchmark runs one store).
struct Memlog {
    dedupe: HashMap<String, u64>,
    conversations: HashMap<String, u64>,
    log: std::fs::File,
    next_id: AtomicU64,
}

static MEMLOG: Mutex<Option<Memlog>> = Mutex::new(None);

/// `SWITCHBOARD_CEILING_CACHE_MIB` sets redb's page cache (in any mode, the real store's
/// too): a bulk transaction dirties more pages than the default cache holds, and redb then
/// writes and rereads them within the transaction.
pub(super) fn options(mut opts: crate::store::StoreOptions) -> crate::store::StoreOptions {
    if let Some(mib) = std::env::var("SWITCHBOARD_CEILING_CACHE_MIB").ok().and_then(|v| v.parse::<usize>().ok()) {
        opts.cache_bytes = mib << 20;
    }
    opts
}

/// Webhooks waiting for the `bulk` stand-in's batched ingest.
static PENDING: Mutex<Vec<(IngestRequest, IngestOptions)>> = Mutex::new(Vec::new());

/// Answers `req` as the stand-in `mode` would.
pub(super) async fn ingest(store: &RedbStore, mode: Mode, req: IngestRequest, opts: IngestOptions, now: u64, ttl: u64) -> Result<Ingested, StoreError> {
    let events = req.events.len();
    let stored = move || Ingested::Stored(IngestOutcome { stored: events, ..Default::default() }, IngestEffects::default());
    match mode {
        Mode::Skip => Ok(stored()),
        Mode::Empty => store.write_shared(move |_| Ok(stored())).await,
        Mode::Memlog => {
            let log_path = store.path.with_extension("ceiling-log");
            store.write_shared(move |_| memlog(&log_path, req, now, ttl)).await
        }
        Mode::Bulk => {
            static BULK: OnceLock<usize> = OnceLock::new();
            let bulk = *BULK.get_or_init(|| std::env::var("SWITCHBOARD_CEILING_BULK").ok().and_then(|v| v.parse().ok()).unwrap_or(4096));
            let log_path = store.path.with_extension("ceiling-log");
            let kept = req.clone();
            let out = store.write_shared(move |_| memlog(&log_path, req, now, ttl)).await?;
            let due = {
                let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
                pending.push((kept, opts));
                (pending.len() >= bulk).then(|| std::mem::take(&mut *pending))
            };
            if let Some(batch) = due {
                // The webhook that filled the batch waits for it: one in `bulk` answers late.
                store
                    .write_shared(move |shared| {
                        for (req, opts) in batch {
                            super::ingest::ingest_in(shared, req, opts, now, ttl)?;
                        }
                        Ok(())
                    })
                    .await?;
            }
            Ok(out)
        }
    }
}

fn memlog(log_path: &std::path::Path, req: IngestRequest, now: u64, ttl: u64) -> Result<Ingested, StoreError> {
    let io = |e: std::io::Error| StoreError::Io(e.to_string());
    let mut guard = MEMLOG.lock().unwrap_or_else(|p| p.into_inner());
    let m = match &mut *guard {
        Some(m) => m,
        empty => empty.insert(Memlog {
            dedupe: HashMap::new(),
            conversations: HashMap::new(),
            log: std::fs::File::create(log_path).map_err(io)?,
            next_id: AtomicU64::new(1),
        }),
    };
    let mut out = IngestOutcome::default();
    for event in req.events {
        if m.dedupe.insert(key2(&req.account, &event.provider_event_id), now + ttl).is_some_and(|e| e > now) {
            out.duplicates += 1;
            continue;
        }
        m.conversations.insert(key2(&req.account, &event.conversation), now);
        let id = m.next_id.fetch_add(1, Ordering::Relaxed);
        let row = InboxRow::received(id, &req.account, &req.correlation_id, event, now);
        m.log.write_all(&tables::encode(&row)).map_err(io)?;
        out.stored += 1;
    }
    Ok(Ingested::Stored(out, IngestEffects::default()))
}
