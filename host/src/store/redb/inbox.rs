//! The agent-facing inbox: claim with a lease, ack, nack. A lease carries a fencing token
//! that grows on every grant, so an ack from a consumer whose lease expired and was re-granted
//! is refused instead of deleting the new holder's work.
//!
//! The events themselves live in the inbox log beside the database ([`InboxLog`], owned by
//! the writer thread), not in redb: every operation here is a writer job that changes the log
//! and commits with the batch's transaction. redb keeps the fencing counter, the dead-letter
//! queue and, in META, where the committed log ends. The `inbox` tables are still read once:
//! a store written before the log (or restored from a backup, which carries its inbox there)
//! has its events moved into the log when it opens ([`migrate_tables`]).

use crate::store::inbox::*;
use crate::store::inbox_log::InboxLog;
use crate::store::log::Position;
use super::tables::{self, DEDUPE, DEDUPE_EXPIRY, INBOX, INBOX_HELD, INBOX_READY, META};
use super::{RedbStore, StoreError};
use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// META keys of the committed inbox log's end.
const LOG_SEGMENT: &str = "inbox_log_segment";
const LOG_END: &str = "inbox_log_end";

/// Where the committed inbox log ends; `None` before the first commit that wrote to it.
pub(super) fn read_log_end(txn: &ReadTransaction) -> Result<Option<Position>, StoreError> {
    let meta = txn.open_table(META)?;
    let (Some(segment), Some(offset)) = (meta.get(LOG_SEGMENT)?, meta.get(LOG_END)?) else { return Ok(None) };
    Ok(Some(Position { segment: segment.value(), offset: offset.value() }))
}

pub(super) fn record_log_end(txn: &WriteTransaction, end: Position) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.insert(LOG_SEGMENT, end.segment)?;
    meta.insert(LOG_END, end.offset)?;
    Ok(())
}

/// Forgets the log's end (a backup carries its inbox in its tables instead).
pub(super) fn forget_log_end(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.remove(LOG_SEGMENT)?;
    meta.remove(LOG_END)?;
    Ok(())
}

/// Writes `rows` into the inbox tables (the backup's format, read by [`migrate_tables`]).
pub(super) fn write_tables(txn: &WriteTransaction, rows: &[InboxRow]) -> Result<(), StoreError> {
    let mut inbox = txn.open_table(INBOX)?;
    let mut ready = txn.open_table(INBOX_READY)?;
    for row in rows {
        inbox.insert(row.id, tables::encode(row).as_slice())?;
        ready.insert((row.visible_at_ms, row.id), ())?;
    }
    Ok(())
}

/// Moves the events of the inbox tables into the log, in one commit; a no-op when they are
/// empty (every start after the first).
pub(super) fn migrate_tables(db: &redb::Database, inbox: &mut InboxLog) -> Result<usize, StoreError> {
    let txn = db.begin_write()?;
    let rows: Vec<InboxRow> = {
        let table = txn.open_table(INBOX)?;
        table.iter()?.map(|r| r.map_err(StoreError::from).and_then(|(_, v)| tables::decode("inbox", v.value()))).collect::<Result<_, _>>()?
    };
    if rows.is_empty() {
        return Ok(0);
    }
    let n = rows.len();
    for row in rows {
        inbox.put(row);
    }
    txn.open_table(INBOX)?.retain(|_, _| false)?;
    txn.open_table(INBOX_READY)?.retain(|_, _| false)?;
    txn.open_table(INBOX_HELD)?.retain(|_, _| false)?;
    commit_with_log(txn, inbox)?;
    Ok(n)
}

/// Commits `txn` with the inbox log: the log's frames are appended and synced first, the
/// transaction records where they end, and the log learns it was committed. The one way
/// anything that wrote to the log commits (the writer's batches, the migrations here).
pub(super) fn commit_with_log(txn: WriteTransaction, inbox: &mut InboxLog) -> Result<CommitPhases, StoreError> {
    let started = Instant::now();
    let end = inbox.flush()?;
    let flushed = Instant::now();
    if let Some(end) = end {
        record_log_end(&txn, end)?;
    }
    txn.commit()?;
    let committed = Instant::now();
    inbox.committed_at(end);
    Ok(CommitPhases { log_sync: flushed - started, engine_commit: committed - flushed, housekeeping: committed.elapsed(), ..CommitPhases::default() })
}

/// Where a group commit's time went: the store writer logs the slow ones (at debug level),
/// which is how the housekeeping stalls of the runs were found (see `dedupe_runs::remove_files`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CommitPhases {
    /// Applying the batch's requests in the transaction.
    pub apply: Duration,
    /// Appending the inbox log's frames and syncing them.
    pub log_sync: Duration,
    /// redb's commit (its own sync included).
    pub engine_commit: Duration,
    /// After the commit: publishing the inbox state, the runs' housekeeping, dropping segments.
    pub housekeeping: Duration,
}

/// Moves webhook dedupe keys from the tables stores kept them in before they moved to the
/// log and its runs (and backups keep them in, see `ops.rs`): logged like the daemon's own, in
/// one commit that also empties the tables. Returns how many moved.
pub(super) fn migrate_dedupe(db: &redb::Database, inbox: &mut InboxLog) -> Result<usize, StoreError> {
    let txn = db.begin_write()?;
    let keys: Vec<(String, u64)> = {
        let expiry: std::collections::HashMap<String, u64> =
            txn.open_table(DEDUPE_EXPIRY)?.iter()?.map(|r| r.map(|(k, _)| (k.value().1.to_string(), k.value().0))).collect::<Result<_, _>>()?;
        let table = txn.open_table(DEDUPE)?;
        table
            .iter()?
            .map(|r| r.map(|(k, v)| (k.value().to_string(), expiry.get(k.value()).copied().unwrap_or(v.value()).max(v.value()))))
            .collect::<Result<_, _>>()?
    };
    if keys.is_empty() {
        return Ok(0);
    }
    let n = keys.len();
    for (key, expires) in keys {
        inbox.mark_seen(&key, expires);
    }
    txn.open_table(DEDUPE)?.retain(|_, _| false)?;
    txn.open_table(DEDUPE_EXPIRY)?.retain(|_, _| false)?;
    commit_with_log(txn, inbox)?;
    Ok(n)
}

/// Writes dedupe keys into the tables [`migrate_dedupe`] reads (a backup's copy).
pub(super) fn write_dedupe_tables(txn: &WriteTransaction, keys: impl IntoIterator<Item = (String, u64)>) -> Result<(), StoreError> {
    let mut dedupe = txn.open_table(DEDUPE)?;
    let mut expiry = txn.open_table(DEDUPE_EXPIRY)?;
    for (k, exp) in keys {
        dedupe.insert(k.as_str(), exp)?;
        expiry.insert((exp, k.as_str()), ())?;
    }
    Ok(())
}

impl RedbStore {
    pub async fn claim_inbox(&self, req: ClaimRequest) -> Result<InboxClaim, StoreError> {
        let now = self.now_ms();
        self.write_shared(move |shared| {
            let (inbox, t) = shared.inbox_and_tables()?;
            let (claim, dead) = inbox.claim(&req, now, || t.next_counter("fence"))?;
            if !dead.is_empty() {
                shared.close()?;
                for row in &dead {
                    super::dlq::put(shared.txn(), &crate::store::dlq::DeadLetter::inbound(row, now))?;
                }
            }
            Ok(claim)
        })
        .await
    }

    /// Deletes events held under `lease`.
    pub async fn ack_inbox(&self, ids: Vec<String>, lease: String) -> Result<AckResult, StoreError> {
        self.write_shared(move |shared| Ok(shared.inbox().ack(&ids, &lease))).await
    }

    /// Returns events held under `lease` to the queue after `delay_ms`.
    pub async fn nack_inbox(&self, ids: Vec<String>, lease: String, delay_ms: u64) -> Result<AckResult, StoreError> {
        let now = self.now_ms();
        self.write_shared(move |shared| Ok(shared.inbox().nack(&ids, &lease, now + delay_ms))).await
    }

    /// Events waiting (claimable now or later, or leased), as of the last commit: for stats
    /// and tests.
    pub fn inbox_len(&self) -> Result<u64, StoreError> {
        Ok(self.inbox_len.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::{EventKind, InboundEvent};
    use crate::store::ingest::{IngestOptions, IngestRequest};
    use crate::store::StoreOptions;
    use std::path::Path;
    use std::sync::Arc;

    fn open(path: &Path) -> RedbStore {
        RedbStore::open(path, Arc::new(ManualClock::new(1_000)), StoreOptions::default()).unwrap()
    }

    fn webhook(n: u32) -> IngestRequest {
        let event = InboundEvent {
            provider_event_id: format!("wamid.{n}"),
            kind: EventKind::Message,
            conversation: format!("c{}", n % 3),
            sender: None,
            text: Some(format!("m{n}")),
            timestamp_ms: None,
            status: None,
            payload: serde_json::json!({ "n": n }).into(),
        };
        IngestRequest { account: "a".into(), correlation_id: format!("corr{n}"), events: vec![event] }
    }

    fn claim(max: usize) -> ClaimRequest {
        ClaimRequest { max, lease_ms: 30_000, consumer: "w".into(), account: None, conversation: None, max_deliveries: 5, max_held: 100 }
    }

    async fn ids(store: &RedbStore, max: usize) -> (String, Vec<String>) {
        let c = store.claim_inbox(claim(max)).await.unwrap();
        (c.lease, c.events.into_iter().map(|e| e.id).collect())
    }

    /// The inbox survives a restart from its log, and a backup carries it in its one file.
    #[tokio::test]
    async fn the_inbox_lives_in_its_log_across_restarts_and_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = open(&path);
        for n in 0..6 {
            store.ingest_with(webhook(n), IngestOptions::default()).await.unwrap();
        }
        let (lease, held) = ids(&store, 2).await;
        assert_eq!(store.ack_inbox(held[..1].to_vec(), lease).await.unwrap().acked.len(), 1);
        assert_eq!(store.inbox_len().unwrap(), 5);
        assert!(InboxLog::dir_for(&path).is_dir());
        // Nothing of the inbox is in the database's tables.
        assert_eq!(RedbStore::inspect(&path).map(|s| s.tables["inbox"]).unwrap_or(0), 0);

        let backup = dir.path().join("b.redb");
        store.backup_to(&backup).await.unwrap();
        assert!(!InboxLog::dir_for(&dir.path().join("b.partial")).exists());
        assert_eq!(RedbStore::inspect(&backup).unwrap().tables["inbox"], 5, "folded into the backup file");
        store.close().await;
        drop(store);

        for p in [&path, &backup] {
            let reopened = open(p);
            assert_eq!(reopened.inbox_len().unwrap(), 5, "{}", p.display());
            // One event is still leased (to "w", at 1_000 + 30_000): four are claimable.
            assert_eq!(ids(&reopened, 10).await.1.len(), 4, "{}", p.display());
            reopened.close().await;
        }
        assert_eq!(RedbStore::inspect(&backup).unwrap().tables["inbox"], 0, "moved into the backup's own log");
    }

    /// A failed batch takes its inbox changes with it (a job error rolls the transaction back;
    /// an i/o error also reopens the database), and later batches go on from the last commit.
    #[tokio::test]
    async fn a_failed_batch_leaves_no_inbox_change_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let store = open(&path);
        store.ingest_with(webhook(1), IngestOptions::default()).await.unwrap();
        for err in [StoreError::Codec { table: "t", reason: "job failed".into() }, StoreError::Io("injected".into())] {
            let e = err.clone();
            let failed = store
                .write_shared(move |shared| {
                    shared.inbox().put(InboxRow::received(999, "a", "c", webhook(9).events.remove(0), 1_000));
                    shared.inbox().ack(&["1".to_string()], "0");
                    Err::<(), _>(e)
                })
                .await;
            assert!(failed.is_err());
            assert_eq!(store.inbox_len().unwrap(), 1);
        }
        store.ingest_with(webhook(2), IngestOptions::default()).await.unwrap();
        let (_, claimed) = ids(&store, 10).await;
        assert_eq!(claimed.len(), 2);
        assert!(!claimed.contains(&"999".to_string()));
        store.close().await;
        drop(store);
        assert_eq!(open(&path).inbox_len().unwrap(), 2);
    }

    /// A store as an older daemon left it: `fill` writes the tables it kept things in.
    fn old_store(path: &Path, fill: impl FnOnce(&WriteTransaction)) {
        let db = redb::Database::create(path).unwrap();
        tables::create_all(&db).unwrap();
        let txn = db.begin_write().unwrap();
        fill(&txn);
        txn.commit().unwrap();
    }

    /// A store written before the inbox moved to its log: the events in its tables move into
    /// the log when it opens, once.
    #[tokio::test]
    async fn events_in_the_old_inbox_tables_move_into_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        old_store(&path, |txn| {
            let rows: Vec<InboxRow> = (1..=3).map(|n| InboxRow::received(n, "a", "c", webhook(n as u32).events.remove(0), 500)).collect();
            write_tables(txn, &rows).unwrap();
        });
        let store = open(&path);
        assert_eq!(store.inbox_len().unwrap(), 3);
        assert_eq!(ids(&store, 10).await.1, vec!["1", "2", "3"]);
        store.close().await;
        drop(store);
        assert_eq!(RedbStore::inspect(&path).unwrap().tables["inbox"], 0);
        assert_eq!(open(&path).inbox_len().unwrap(), 3);
    }

    async fn duplicates(store: &RedbStore, ns: std::ops::Range<u32>) -> usize {
        let mut dups = 0;
        for n in ns {
            if let crate::store::ingest::Ingested::Stored(out, _) = store.ingest_with(webhook(n), IngestOptions::default()).await.unwrap() {
                dups += out.duplicates;
            }
        }
        dups
    }

    /// Webhook dedupe keys live in the inbox log and its runs: they survive restarts and
    /// backups, a failed batch takes its keys with it, and keys in the old tables move over.
    #[tokio::test]
    async fn dedupe_keys_survive_restarts_and_backups_and_move_out_of_the_old_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        old_store(&path, |txn| {
            write_dedupe_tables(txn, [("a\0wamid.1000".to_string(), u64::MAX)]).unwrap();
        });
        let store = open(&path);
        assert_eq!(duplicates(&store, 1000..1001).await, 1, "a key from the old table");
        assert_eq!(duplicates(&store, 0..50).await, 0);
        assert_eq!(duplicates(&store, 0..50).await, 50);
        let e = StoreError::Io("injected".into());
        let failed = store
            .write_shared(move |shared| {
                shared.inbox().mark_seen("a\0wamid.77", u64::MAX);
                Err::<(), _>(e)
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(duplicates(&store, 77..78).await, 0, "the failed batch's key is gone");
        let backup = dir.path().join("b.redb");
        store.backup_to(&backup).await.unwrap();
        assert_eq!(RedbStore::inspect(&backup).unwrap().tables["dedupe"], 52, "folded into the backup file");
        store.close().await;
        drop(store);
        assert_eq!(RedbStore::inspect(&path).unwrap().tables["dedupe"], 0, "moved out of the table");
        for p in [&path, &backup] {
            let reopened = open(p);
            assert_eq!(duplicates(&reopened, 0..50).await, 50, "{}", p.display());
            assert_eq!(duplicates(&reopened, 77..78).await, 1, "{}", p.display());
            assert_eq!(duplicates(&reopened, 1000..1001).await, 1, "{}", p.display());
            reopened.close().await;
        }
    }
}
