//! Conversation history and sessions: the last `limit` messages of each conversation (both
//! directions), each tagged with its session; a message after `session_timeout_ms` of quiet
//! starts a new session. An account may have at most `max_open_sessions` conversations active
//! within the timeout; a message that would open one more is refused (the caller answers 429).

use crate::store::history::*;
use super::tables::{self, HISTORY, key2};
use super::{RedbStore, StoreError};
use super::shared::HotTables;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

/// A conversation's row in CONVERSATIONS: everything the host remembers of it between
/// messages, in one place so that a webhook reads and writes it once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ConversationState {
    /// When the user last wrote (for 24-hour windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_ms: Option<u64>,
    #[serde(default)]
    pub session: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_ms: Option<u64>,
    /// The time the conversation's SESSION_ACTIVITY entry is keyed by, when it lags
    /// `last_activity_ms` (see [`activity_step`]); `None`: keyed by `last_activity_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_entry_ms: Option<u64>,
    /// The ring the conversation's history is laid out in: `limit` slots, the next message
    /// going to slot `next % limit` (see [`record`]). `None` in rows written before the ring,
    /// whose history is keyed by sequence number: laid out again on its next message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<Ring>,
}

/// A conversation's history ring: its size and how many messages it has taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(super) struct Ring {
    pub size: u64,
    pub next: u64,
}

impl ConversationState {
    pub fn load(t: &HotTables<'_>, key: &str) -> Result<Self, StoreError> {
        Ok(match t.conversations.get(key)? {
            Some(v) => tables::decode("conversations", v.value())?,
            None => Self::default(),
        })
    }

    pub fn save(&self, t: &mut HotTables<'_>, key: &str) -> Result<(), StoreError> {
        t.conversations.insert(key, tables::encode(self).as_slice())?;
        Ok(())
    }

    pub fn session_open(&self, now: u64, timeout: u64) -> bool {
        self.last_activity_ms.is_some_and(|t| now.saturating_sub(t) < timeout)
    }
}

/// META key of how many SESSION_ACTIVITY entries `account` has: its open sessions, plus the
/// expired ones not yet pruned.
fn entries_key(account: &str) -> String {
    key2("session_entries", account)
}

/// How far a conversation's SESSION_ACTIVITY entry may lag its last activity: 1 % of the
/// session timeout. Moving the entry on every message was a B-tree delete and insert per
/// message on the writer thread; a busy conversation now moves it at most once a step.
/// [`open_sessions`] checks an entry that looks expired against the conversation's row
/// before it prunes it, so the count stays exact.
pub(super) fn activity_step(opts: &HistoryOptions) -> u64 {
    opts.session_timeout_ms / 100
}

/// Conversations of `account` active within the session timeout.
///
/// Counting them by scanning the activity index cost one B-tree step per open session, on
/// the store's one writer thread, for every message that opens a session: an account with a
/// cap of 100,000 spent milliseconds per new conversation. The account's entries are counted
/// instead ([`record`] keeps the count), and the entries that expired since the last look
/// are pruned here, each once: amortised O(1) per session. An entry that lags a conversation
/// still active ([`activity_step`]) is keyed again by its last activity instead. A session
/// timeout raised later does not bring pruned entries back: their conversations count again
/// on their next message.
pub(super) fn open_sessions(t: &mut HotTables<'_>, account: &str, now: u64, opts: &HistoryOptions) -> Result<usize, StoreError> {
    let from = now.saturating_sub(opts.session_timeout_ms) + 1;
    let expired: Vec<(u64, String)> = t
        .session_activity
        .range((account, 0, "")..(account, from, ""))?
        .map(|r| r.map(|(k, _)| (k.value().1, k.value().2.to_string())))
        .collect::<Result<_, _>>()?;
    let mut pruned = 0u64;
    for (at, conversation) in expired {
        t.session_activity.remove((account, at, conversation.as_str()))?;
        let key = key2(account, &conversation);
        let mut state = ConversationState::load(t, &key)?;
        match state.last_activity_ms {
            Some(last) if last >= from && t.session_activity.insert((account, last, conversation.as_str()), ())?.is_none() => {
                state.activity_entry_ms = None;
                state.save(t, &key)?;
            }
            _ => pruned += 1,
        }
    }
    let key = entries_key(account);
    let entries = if pruned > 0 { t.add_counter(&key, -(pruned as i64))? } else { t.read_counter(&key)? };
    Ok(entries as usize)
}

/// Counts every account's SESSION_ACTIVITY entries once, for a store written before the
/// count was kept (see [`open_sessions`]); a no-op afterwards.
pub(super) fn count_entries_once(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    const DONE: &str = "session_entries_counted";
    let mut meta = txn.open_table(super::tables::META)?;
    if meta.get(DONE)?.is_some() {
        return Ok(());
    }
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for r in txn.open_table(super::tables::SESSION_ACTIVITY)?.iter()? {
        *counts.entry(r?.0.value().0.to_string()).or_default() += 1;
    }
    for (account, n) in counts {
        meta.insert(entries_key(&account).as_str(), n)?;
    }
    meta.insert(DONE, 1)?;
    Ok(())
}

/// Appends a message to the conversation's history (trimming it to the retention) and moves
/// its session on, in `state` (the caller saves it, once, with its own changes).
pub(super) fn record(
    t: &mut HotTables<'_>,
    inbox: &mut crate::store::inbox_log::InboxLog,
    account: &str,
    conversation: &str,
    state: &mut ConversationState,
    mut entry: HistoryEntry,
    now: u64,
    opts: &HistoryOptions,
) -> Result<(), StoreError> {
    let key = key2(account, conversation);
    if !state.session_open(now, opts.session_timeout_ms) {
        state.session += 1;
    }
    let last = state.last_activity_ms.map_or(now, |t| t.max(now));
    let keyed_at = state.activity_entry_ms.or(state.last_activity_ms);
    // A session that was closed is always a step behind, so it gets its entry back.
    if keyed_at.is_none_or(|at| last.saturating_sub(at) >= activity_step(opts).max(1)) {
        // Moving an entry leaves the account's count as it is; a conversation's first entry
        // (or its first since its old one was pruned) adds one.
        let mut delta = 0;
        if let Some(prev) = keyed_at
            && t.session_activity.remove((account, prev, conversation))?.is_some()
        {
            delta -= 1;
        }
        if t.session_activity.insert((account, last, conversation), ())?.is_none() {
            delta += 1;
        }
        if delta != 0 {
            t.add_counter(&entries_key(account), delta)?;
        }
        state.activity_entry_ms = None;
    } else {
        state.activity_entry_ms = keyed_at;
    }
    state.last_activity_ms = Some(last);

    entry.seq = t.next_counter("history_seq")?;
    entry.session = state.session;
    // Message `ring.next` of the conversation goes to the inbox log and the history runs
    // (`store/history_runs.rs`), not to a B-tree; a retention changed since the last message
    // only moves the window readers keep (`next - size .. next`).
    let size = opts.limit.max(1) as u64;
    let mut ring = state.ring.unwrap_or_default();
    ring.size = size;
    inbox.record_history(&key, ring.next, size.min(u32::MAX as u64) as u32, &entry);
    ring.next += 1;
    state.ring = Some(ring);
    Ok(())
}

impl RedbStore {
    /// The conversation's kept messages, newest first, at most `limit`: the entries its row's
    /// ring says are kept, from the history runs.
    pub fn history(&self, account: &str, conversation: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let key = key2(account, conversation);
        let txn = self.read()?;
        let row = txn.open_table(super::tables::CONVERSATIONS)?;
        let Some(ring) = row.get(key.as_str())?.map(|v| tables::decode::<ConversationState>("conversations", v.value())).transpose()?.and_then(|s| s.ring) else {
            return Ok(Vec::new());
        };
        let mut out = self.history.entries(&key, ring.next.saturating_sub(ring.size), ring.next).map_err(|e| StoreError::Io(format!("history runs: {e}")))?;
        out.truncate(limit);
        Ok(out)
    }
}

/// Moves the `history` table's entries (what stores kept before the history runs, and what
/// backups keep) into the inbox log, numbering each conversation's entries by its row's ring
/// (or, for rows from before the ring, by sequence), emptying the table as it goes: whole
/// conversations at a time, about [`MIGRATE_CHUNK`] entries a commit, so a large history
/// never sits in memory at once. Returns how many moved.
pub(super) fn migrate_history(db: &redb::Database, inbox: &mut crate::store::inbox_log::InboxLog) -> Result<usize, StoreError> {
    migrate_history_by(db, inbox, MIGRATE_CHUNK)
}

fn migrate_history_by(db: &redb::Database, inbox: &mut crate::store::inbox_log::InboxLog, chunk_entries: usize) -> Result<usize, StoreError> {
    let mut moved = 0;
    loop {
        let txn = db.begin_write()?;
        let mut chunk: Vec<(String, Vec<HistoryEntry>)> = Vec::new();
        let mut n = 0;
        for r in txn.open_table(HISTORY)?.iter()? {
            let (k, v) = r?;
            let key = k.value().0;
            if chunk.last().is_none_or(|(last, _)| last != key) {
                if n >= chunk_entries {
                    break;
                }
                chunk.push((key.to_string(), Vec::new()));
            }
            chunk.last_mut().expect("pushed").1.push(tables::decode("history", v.value())?);
            n += 1;
        }
        if chunk.is_empty() {
            return Ok(moved);
        }
        {
            let mut rows = txn.open_table(super::tables::CONVERSATIONS)?;
            let mut table = txn.open_table(HISTORY)?;
            for (key, mut entries) in chunk {
                let mut state: ConversationState = match rows.get(key.as_str())? {
                    Some(v) => tables::decode("conversations", v.value())?,
                    None => ConversationState::default(),
                };
                entries.sort_by_key(|e| e.seq);
                let ring = state.ring.unwrap_or(Ring { size: entries.len() as u64, next: entries.len() as u64 });
                let keep = entries.len().min(ring.size.max(1) as usize).min(ring.next as usize);
                let first = ring.next - keep as u64;
                for (i, entry) in entries.into_iter().rev().take(keep).rev().enumerate() {
                    inbox.record_history(&key, first + i as u64, ring.size.max(1).min(u32::MAX as u64) as u32, &entry);
                    moved += 1;
                }
                state.ring = Some(ring);
                rows.insert(key.as_str(), tables::encode(&state).as_slice())?;
                table.retain_in((key.as_str(), 0)..=(key.as_str(), u64::MAX), |_, _| false)?;
            }
        }
        super::inbox::commit_with_log(txn, inbox)?;
    }
}

/// History entries [`migrate_history`] moves per commit (whole conversations, so it may pass
/// this by one conversation's).
const MIGRATE_CHUNK: usize = 20_000;

/// Writes the history `reader` holds into `db`'s `history` table, keyed (conversation,
/// n mod size) as the ring kept it, each conversation's window as its row in `db` names it (a
/// backup's copy; its next open moves them back with [`migrate_history`]). Streams, in
/// commits of about [`MIGRATE_CHUNK`] entries. Returns how many.
pub(super) fn fold_history(db: &redb::Database, reader: &crate::store::history_runs::HistoryReader) -> Result<usize, StoreError> {
    let mut pending: Vec<(String, u64, HistoryEntry)> = Vec::new();
    let mut n = 0;
    let write = |pending: &mut Vec<(String, u64, HistoryEntry)>| -> Result<(), StoreError> {
        let txn = db.begin_write()?;
        {
            let mut h = txn.open_table(HISTORY)?;
            for (key, slot, entry) in pending.drain(..) {
                h.insert((key.as_str(), slot), tables::encode(&entry).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    };
    for_each_kept(&db.begin_read()?, reader, |key, slot, entry| {
        pending.push((key.to_string(), slot, entry));
        n += 1;
        if pending.len() >= MIGRATE_CHUNK {
            write(&mut pending)?;
        }
        Ok(())
    })?;
    write(&mut pending)?;
    Ok(n)
}

/// The entries of each conversation `txn`'s rows name, in the windows they name (oldest
/// first), with each one's slot in its ring (`history` table's key), in one pass over
/// `reader` (exports, and backups folding the history into their table).
pub(super) fn for_each_kept(
    txn: &redb::ReadTransaction,
    reader: &crate::store::history_runs::HistoryReader,
    mut f: impl FnMut(&str, u64, HistoryEntry) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let rows = txn.open_table(super::tables::CONVERSATIONS)?;
    reader.for_each_conversation(|e| StoreError::Io(format!("history runs: {e}")), |key, entries| -> Result<(), StoreError> {
        let Some(ring) = rows.get(key)?.map(|v| tables::decode::<ConversationState>("conversations", v.value())).transpose()?.and_then(|s| s.ring) else {
            return Ok(());
        };
        let from = ring.next.saturating_sub(ring.size);
        for (m, entry) in entries.into_iter().filter(|(m, _)| (from..ring.next).contains(m)) {
            f(key, m % ring.size.max(1), entry)?;
        }
        Ok(())
    })
}

/// Records a message just enqueued in its conversation's history; `state` is the
/// conversation's row as the enqueue read it (saved here).
pub(super) fn record_outbound(
    t: &mut HotTables<'_>,
    inbox: &mut crate::store::inbox_log::InboxLog,
    row: &crate::store::OutboxRow,
    state: &mut ConversationState,
    now: u64,
    opts: &HistoryOptions,
) -> Result<(), StoreError> {
    let key = key2(&row.account, &row.conversation);
    let entry = HistoryEntry::outbound(row.id.clone(), row.history_text(), now);
    record(t, inbox, &row.account, &row.conversation, state, entry, now, opts)?;
    state.save(t, &key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::{IngestOptions, IngestRequest, Ingested, StoreOptions};
    use redb::{Database, ReadableTableMetadata};
    use std::sync::Arc;

    fn message(id: &str) -> IngestRequest {
        let events = vec![crate::store::tests::queues::message(id, "c1")];
        IngestRequest { account: "a".into(), correlation_id: "x".into(), events }
    }

    /// A store written before the open-session count was kept is counted once when it is
    /// opened, so its cap holds from the first message after the upgrade.
    #[tokio::test]
    async fn a_store_without_session_counts_is_counted_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let clock = Arc::new(ManualClock::new(10_000));
        let h = HistoryOptions { limit: 3, session_timeout_ms: 60_000, max_open_sessions: 2 };
        let opts = IngestOptions { history: Some(h), ..Default::default() };
        let ingest = |id: &str, c: &str| IngestRequest {
            account: "a".into(),
            correlation_id: "x".into(),
            events: vec![crate::store::tests::queues::message(id, c)],
        };
        let store = RedbStore::open(&path, clock.clone(), StoreOptions::default()).unwrap();
        store.ingest_with(ingest("e1", "c1"), opts.clone()).await.unwrap();
        store.ingest_with(ingest("e2", "c2"), opts.clone()).await.unwrap();
        // What an older version left: the activity index, no counts.
        store
            .write(|txn| {
                let mut meta = txn.open_table(super::super::tables::META)?;
                meta.remove(entries_key("a").as_str())?;
                meta.remove("session_entries_counted")?;
                Ok(())
            })
            .await
            .unwrap();
        store.close().await;
        let store = RedbStore::open(&path, clock, StoreOptions::default()).unwrap();
        let refused = store.ingest_with(ingest("e3", "c3"), opts).await.unwrap();
        assert_eq!(refused, Ingested::SessionLimit { open: 2 });
        store.close().await;
    }

    /// A conversation's activity entry moves at most once a step (1 % of the timeout), and the
    /// cap still counts exactly the open sessions: a lagging entry is keyed again, not pruned.
    #[tokio::test]
    async fn the_activity_entry_moves_once_a_step_and_the_count_stays_exact() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(10_000));
        let store = RedbStore::open(&dir.path().join("s.redb"), clock.clone(), StoreOptions::default()).unwrap();
        let h = HistoryOptions { limit: 3, session_timeout_ms: 10_000, max_open_sessions: 1 };
        let opts = IngestOptions { history: Some(h), ..Default::default() };
        let entries = |store: &RedbStore| -> Vec<u64> {
            let txn = store.read().unwrap();
            let t = txn.open_table(super::super::tables::SESSION_ACTIVITY).unwrap();
            t.iter().unwrap().map(|r| r.unwrap().0.value().1).collect()
        };
        let mut n = 0;
        let mut send = |c: &str| {
            n += 1;
            IngestRequest { account: "a".into(), correlation_id: "x".into(), events: vec![crate::store::tests::queues::message(&format!("e{n}"), c)] }
        };
        store.ingest_with(send("c1"), opts.clone()).await.unwrap();
        clock.advance_ms(50);
        store.ingest_with(send("c1"), opts.clone()).await.unwrap();
        assert_eq!(entries(&store), [10_000], "within a step: the entry stays");
        clock.advance_ms(70);
        store.ingest_with(send("c1"), opts.clone()).await.unwrap();
        assert_eq!(entries(&store), [10_120], "a step on: it moves");
        clock.advance_ms(50);
        store.ingest_with(send("c1"), opts.clone()).await.unwrap();
        assert_eq!(entries(&store), [10_120], "last activity 10,170, entry 10,120");
        // The entry looks expired before the session is: checked and keyed again.
        clock.advance_ms(9_990);
        assert_eq!(store.ingest_with(send("c2"), opts.clone()).await.unwrap(), Ingested::SessionLimit { open: 1 }, "c1 is open");
        assert_eq!(entries(&store), [10_170]);
        clock.advance_ms(10);
        assert!(matches!(store.ingest_with(send("c2"), opts.clone()).await.unwrap(), Ingested::Stored(..)), "c1 closed at 20,170");
        assert_eq!(entries(&store), [20_170], "c1's entry pruned, c2's added");
        store.close().await;
    }

    /// A large old history moves a few conversations per commit, all of it in the end.
    #[test]
    fn history_moves_out_of_the_old_table_a_chunk_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("s.redb")).unwrap();
        super::super::tables::create_all(&db).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut h = txn.open_table(HISTORY).unwrap();
            for c in 0..5 {
                for seq in 0..3u64 {
                    let entry = HistoryEntry { seq, text: Some(format!("{c}/{seq}")), ..HistoryEntry::outbound(format!("m{seq}"), None, 1) };
                    h.insert((key2("a", &format!("c{c}")).as_str(), seq), tables::encode(&entry).as_slice()).unwrap();
                }
            }
        }
        txn.commit().unwrap();
        let mut inbox = crate::store::inbox_log::InboxLog::open(&dir.path().join("s.redb.inbox"), None, 1 << 20).unwrap();
        assert_eq!(migrate_history_by(&db, &mut inbox, 4).unwrap(), 15);
        assert_eq!(db.begin_read().unwrap().open_table(HISTORY).unwrap().len().unwrap(), 0);
        let reader = inbox.history_reader();
        for c in 0..5 {
            let got: Vec<String> = reader.entries(&key2("a", &format!("c{c}")), 0, 3).unwrap().into_iter().map(|e| e.text.unwrap()).collect();
            assert_eq!(got, [format!("{c}/2"), format!("{c}/1"), format!("{c}/0")]);
        }
    }

    /// History kept in the `history` table (before the history runs: sequence-keyed rows
    /// from before the ring, or a ring of slots; and what a backup keeps) moves into the log
    /// when the store opens, numbered by the ring, and reads the same before and after; it
    /// survives restarts (replayed, then from runs) and goes back into a backup's table.
    #[tokio::test]
    async fn history_in_the_old_table_moves_to_the_log_and_survives_restarts_and_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let clock = Arc::new(ManualClock::new(10_000));
        let open = || RedbStore::open(&path, clock.clone(), StoreOptions::default()).unwrap();
        let store = open();
        store
            .write(|txn| {
                let mut h = txn.open_table(HISTORY)?;
                let old = |seq: u64| HistoryEntry { seq, text: Some(format!("old {seq}")), ..HistoryEntry::outbound(format!("m{seq}"), None, 5_000) };
                // c1: keyed by sequence number, no ring in its row.
                let c1 = key2("a", "c1");
                for seq in 100..105 {
                    h.insert((c1.as_str(), seq), tables::encode(&old(seq)).as_slice())?;
                }
                let old_row = serde_json::json!({ "last_inbound_ms": 5_000, "session": 1, "last_activity_ms": 5_000 });
                let mut rows = txn.open_table(super::super::tables::CONVERSATIONS)?;
                rows.insert(c1.as_str(), tables::encode(&old_row).as_slice())?;
                // c2: a ring of three slots that has taken seven messages (slot = n mod 3).
                let c2 = key2("a", "c2");
                for (slot, seq) in [(0, 206), (1, 204), (2, 205)] {
                    h.insert((c2.as_str(), slot), tables::encode(&old(seq)).as_slice())?;
                }
                let ring_row = ConversationState { session: 1, ring: Some(Ring { size: 3, next: 7 }), ..Default::default() };
                rows.insert(c2.as_str(), tables::encode(&ring_row).as_slice())?;
                txn.open_table(super::super::tables::META)?.insert("history_seq", 206)?;
                Ok(())
            })
            .await
            .unwrap();
        store.close().await;
        drop(store);
        let store = open();
        assert_eq!(store.read().unwrap().open_table(HISTORY).unwrap().len().unwrap(), 0, "moved out of the table");
        let texts = |v: Vec<HistoryEntry>| v.into_iter().map(|e| e.text.unwrap()).collect::<Vec<_>>();
        assert_eq!(texts(store.history("a", "c1", 10).unwrap()), ["old 104", "old 103", "old 102", "old 101", "old 100"]);
        assert_eq!(texts(store.history("a", "c2", 10).unwrap()), ["old 206", "old 205", "old 204"]);
        let h = HistoryOptions { limit: 3, session_timeout_ms: 60_000, max_open_sessions: 10 };
        let opts = IngestOptions { history: Some(h), ..Default::default() };
        store.ingest_with(message("e1"), opts.clone()).await.unwrap();
        assert_eq!(texts(store.history("a", "c1", 10).unwrap()), ["text e1", "old 104", "old 103"], "the retention now 3");
        store.ingest_with(message("e2"), opts).await.unwrap();
        let want = ["text e2", "text e1", "old 104"];
        assert_eq!(texts(store.history("a", "c1", 10).unwrap()), want);
        assert_eq!(texts(store.history("a", "c1", 2).unwrap()), want[..2]);
        store.close().await;
        drop(store);
        let store = open();
        assert_eq!(texts(store.history("a", "c1", 10).unwrap()), want, "replayed from the log");
        assert_eq!(texts(store.history("a", "c2", 10).unwrap()), ["old 206", "old 205", "old 204"]);
        let copy = dir.path().join("copy.redb");
        store.backup_to(&copy).await.unwrap();
        store.close().await;
        let rows = Database::open(&copy).unwrap().begin_read().unwrap().open_table(HISTORY).unwrap().len().unwrap();
        assert_eq!(rows, 6, "the backup carries the history in its table");
        let restored = RedbStore::open(&copy, clock.clone(), StoreOptions::default()).unwrap();
        assert_eq!(texts(restored.history("a", "c1", 10).unwrap()), want);
        assert_eq!(texts(restored.history("a", "c2", 10).unwrap()), ["old 206", "old 205", "old 204"]);
        restored.close().await;
    }
}
