//! What operations need from the store: an online backup (a consistent snapshot copied into a
//! new redb file while the daemon keeps running), a summary of a backup file, a census of the
//! outbox for `/metrics`, a writer round trip for the watchdog, and resource-lease lookups for
//! `/readyz`.

use crate::store::ops::*;
use crate::store::leases::LeaseRecord;
use crate::store::outbox::{MessageStatus, OutboxRow};
use super::tables::{self, CONV_QUEUE, LEASES, OUTBOX, OUTBOX_DUE};
use super::{RedbStore, StoreError};
use crate::store::inbox_log::InboxLog;
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};
use std::path::Path;


impl RedbStore {
    /// Writes a consistent copy of the whole store to a new redb file at `path` while the
    /// daemon runs. The file is copied by a job on the writer thread: while that job holds the
    /// write transaction no commit can happen, so the bytes copied are exactly the last
    /// committed state (what a crash at that moment would leave, which redb recovers from by
    /// design). Writes wait for the copy (roughly a second per GB), reads do not. The copy is
    /// then opened once, which recovers it and closes it cleanly, made durable, checked, and
    /// renamed from `path.partial` to `path`. Copies every table, whoever added it.
    ///
    /// The pull inbox's log is copied by the same job (its committed frames are exactly what
    /// the copied file's last commit recorded: a batch's frames are appended only when it
    /// commits) and folded into the copy's `inbox` table, so a backup stays one redb file; a
    /// store opened from it moves those events back into a log of its own.
    pub async fn backup_to(&self, path: &Path) -> Result<BackupSummary, StoreError> {
        let partial = path.with_extension("partial");
        let (src, dst) = (self.path.clone(), partial.clone());
        // The job returns its own result so a failed copy never rolls back the other writes
        // that share its transaction.
        let copied = self
            .write(move |_txn| {
                let copy = || -> std::io::Result<()> {
                    let mut from = std::fs::File::open(&*src)?;
                    let mut to = std::fs::File::create(&dst)?;
                    std::io::copy(&mut from, &mut to)?;
                    to.sync_all()?;
                    copy_dir(&InboxLog::dir_for(&src), &InboxLog::dir_for(&dst))
                };
                Ok(copy())
            })
            .await?;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            let _ = std::fs::remove_dir_all(InboxLog::dir_for(&partial));
            return Err(io_error(&partial, e));
        }
        let target = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let r = recover_copy(&partial, &target);
            if r.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            let _ = std::fs::remove_dir_all(InboxLog::dir_for(&partial));
            r
        })
        .await
        .map_err(|e| StoreError::Io(e.to_string()))?
    }

    /// Opens a store file read-only (e.g. a backup, never the live file of a running daemon)
    /// and counts its rows.
    pub fn inspect(path: &Path) -> Result<BackupSummary, StoreError> {
        let db = ReadOnlyDatabase::open(path)?;
        let txn = db.begin_read()?;
        let mut summary = BackupSummary::default();
        for t in txn.list_tables()? {
            let n = txn.open_untyped_table(t.clone())?.len()?;
            summary.tables.insert(t.name().to_string(), n);
        }
        summary.bytes = std::fs::metadata(path).map_err(|e| StoreError::Io(e.to_string()))?.len();
        Ok(summary)
    }

    /// Unfinished outbox messages by status and how long the oldest due one has waited.
    /// Reads the due index (one entry per unfinished message) in one read transaction.
    pub fn outbox_census(&self) -> Result<OutboxCensus, StoreError> {
        let now = self.now_ms();
        let txn = self.read()?;
        let due = txn.open_table(OUTBOX_DUE)?;
        let outbox = txn.open_table(OUTBOX)?;
        let mut c = OutboxCensus { stored: outbox.len()?, ..Default::default() };
        for entry in due.iter()? {
            let (k, _) = entry?;
            let (_, at, id) = k.value();
            let Some(v) = outbox.get(id)? else { continue };
            let row: OutboxRow = tables::decode("outbox", v.value())?;
            match row.status {
                MessageStatus::Queued => c.queued += 1,
                MessageStatus::Sending if row.lease.as_ref().is_some_and(|l| l.expires_at_ms > now) => c.sending += 1,
                // A lease that ran out (its holder died) is waiting again.
                MessageStatus::Sending => c.queued += 1,
                MessageStatus::Retrying => c.retrying += 1,
                _ => {}
            }
            if at <= now {
                c.oldest_due_ms = Some(c.oldest_due_ms.map_or(at, |o| o.min(at)));
            }
        }
        // Messages an ordered claim parked behind their conversation's head are out of the due
        // index but wait all the same.
        for entry in txn.open_table(CONV_QUEUE)?.iter()? {
            let (_, id) = entry?;
            let Some(v) = outbox.get(id.value())? else { continue };
            let row: OutboxRow = tables::decode("outbox", v.value())?;
            match (row.due_at_ms, row.status) {
                (None, MessageStatus::Queued) => c.queued += 1,
                (None, MessageStatus::Retrying) => c.retrying += 1,
                _ => continue,
            }
            // Parked since it was last due (a claim parks without touching `updated_at_ms`).
            if row.updated_at_ms <= now {
                let at = row.updated_at_ms;
                c.oldest_due_ms = Some(c.oldest_due_ms.map_or(at, |o| o.min(at)));
            }
        }
        Ok(c)
    }

    /// One round trip through the writer with a real (tiny) write: proves that writes still
    /// commit, so `/readyz` and the watchdog see a full disk. An empty transaction would not:
    /// it commits without allocating a page.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.write(|txn| tables::add_counter(txn, "pings", 1).map(|_| ())).await
    }

    /// The current record of a resource lease (e.g. `poll:<account>`), live or expired.
    pub fn lease_get(&self, resource: &str) -> Result<Option<LeaseRecord>, StoreError> {
        let txn = self.read()?;
        let t = txn.open_table(LEASES)?;
        t.get(resource)?.map(|v| tables::decode("leases", v.value())).transpose()
    }
}

/// Copies the files of `from` (the inbox log's segments and its dedupe runs) into a new
/// directory `to`; nothing when `from` does not exist. A run being written meanwhile (off the
/// writer's thread) may be missed or copied torn: its keys are still in the copied log, and
/// opening the copy deletes a torn run's temporary file.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dst = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dst)?;
            continue;
        }
        match std::fs::copy(entry.path(), &dst) {
            Ok(_) => std::fs::File::open(&dst)?.sync_all()?,
            // Renamed or deleted by the dedupe runs' housekeeping since it was listed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes the events of the copied inbox log (up to the end the copy's last commit recorded)
/// into the copy's inbox tables and forgets the log.
fn fold_inbox(db: &Database, log_dir: &Path) -> Result<(), StoreError> {
    let Some(end) = super::inbox::read_log_end(&db.begin_read()?)? else { return Ok(()) };
    let log = InboxLog::open(log_dir, Some(end), crate::store::inbox_log::SEGMENT_BYTES)?;
    // The dedupe keys in transactions of their own, a chunk at a time: a week of keys can be
    // millions, and the copy is not the store until it is renamed into place.
    let mut chunk = Vec::new();
    let write_chunk = |chunk: &mut Vec<(String, u64)>| -> Result<(), StoreError> {
        let txn = db.begin_write()?;
        super::inbox::write_dedupe_tables(&txn, chunk.drain(..))?;
        txn.commit()?;
        Ok(())
    };
    log.for_each_seen(|k, e| {
        chunk.push((k.to_string(), e));
        if chunk.len() >= 100_000 {
            write_chunk(&mut chunk)?;
        }
        Ok(())
    })?;
    write_chunk(&mut chunk)?;
    super::history::fold_history(db, &log.history_reader())?;
    let rows = log.rows()?;
    let txn = db.begin_write()?;
    super::inbox::write_tables(&txn, &rows)?;
    super::inbox::forget_log_end(&txn)?;
    txn.commit()?;
    Ok(())
}

fn io_error(what: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", what.display()))
}

/// Opens the raw copy once (redb recovers it to its last commit and closes it cleanly), syncs
/// it, counts its rows and moves it into place.
fn recover_copy(partial: &Path, target: &Path) -> Result<BackupSummary, StoreError> {
    fold_inbox(&Database::create(partial)?, &InboxLog::dir_for(partial))?;
    std::fs::File::open(partial).and_then(|f| f.sync_all()).map_err(|e| io_error(partial, e))?;
    let summary = RedbStore::inspect(partial)?;
    std::fs::rename(partial, target).map_err(|e| io_error(target, e))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::MessageBody;
    use crate::store::{NewMessage, Priority, StoreOptions};
    use std::sync::Arc;

    fn open(path: &Path) -> RedbStore {
        RedbStore::open(path, Arc::new(ManualClock::new(1_000)), StoreOptions::default()).unwrap()
    }

    fn msg(i: u32) -> NewMessage {
        NewMessage {
            account: "a".into(),
            to: format!("+2507881234{i:02}"),
            conversation: format!("c{i}"),
            body: MessageBody::Text(format!("m{i}")),
            metadata: None,
            idempotency_key: Some(format!("k{i}")),
            fingerprint: "f".into(),
            correlation_id: "c".into(),
            priority: Priority::Normal,
            max_queued: 1_000,
            idempotency_ttl_ms: 60_000,
            window_ms: None,
            history: None,
        }
    }

    #[tokio::test]
    async fn an_online_backup_is_a_consistent_copy_that_opens_as_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("live.redb"));
        for i in 0..20 {
            store.enqueue(msg(i)).await.unwrap();
        }
        let claimed = store.claim_outbox(5, 30_000, true).await.unwrap();
        assert_eq!(claimed.len(), 5);
        let census = store.outbox_census().unwrap();
        assert_eq!((census.queued, census.sending, census.retrying, census.stored), (15, 5, 0, 20));
        assert_eq!(census.oldest_due_ms, Some(1_000));

        let out = dir.path().join("backup.redb");
        let summary = store.backup_to(&out).await.unwrap();
        assert_eq!(summary.tables["outbox"], 20);
        let mut live: Vec<String> = store.read().unwrap().list_tables().unwrap().map(|t| t.name().to_string()).collect();
        live.sort();
        assert_eq!(summary.tables.keys().cloned().collect::<Vec<_>>(), live, "every table is copied");
        assert!(!dir.path().join("backup.partial").exists());
        // Writes go on while (and after) the backup is taken.
        store.enqueue(msg(99)).await.unwrap();
        assert_eq!(RedbStore::inspect(&out).unwrap().tables["outbox"], 20);
        let restored = open(&out);
        assert_eq!(restored.list_messages(None, 100).unwrap().len(), 20);
        assert_eq!(restored.queued_count("a").unwrap(), 20);
        store.close().await;
        restored.close().await;
    }
}
