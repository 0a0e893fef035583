//! Tables the webhook path uses, opened once per group-committed transaction instead of once
//! per use.
//!
//! Opening a redb table (and closing it, which stages its root) costs about as much as a small
//! insert; a webhook used to open and close ~14 of them, ~17 % of the writer's time under
//! ingest load. The writer hands every job of a batch one [`SharedTables`]: consecutive
//! ingests (and outbound history records) reuse the open handles, and any other job first
//! closes them (redb refuses to open a table twice in one transaction), so a batch that mixes
//! kinds is correct and only the runs of the same kind share.

use super::tables::{CONVERSATIONS, DEDUPE, DEDUPE_EXPIRY, HISTORY, INBOX, INBOX_READY, META, SESSION_ACTIVITY};
use crate::store::StoreError;
use redb::{ReadableTable, Table, WriteTransaction};

/// The open tables of the webhook path.
pub(super) struct IngestTables<'t> {
    pub dedupe: Table<'t, &'static str, u64>,
    pub dedupe_expiry: Table<'t, (u64, &'static str), ()>,
    pub conversations: Table<'t, &'static str, &'static [u8]>,
    pub session_activity: Table<'t, (&'static str, u64, &'static str), ()>,
    pub history: Table<'t, (&'static str, u64), &'static [u8]>,
    pub inbox: Table<'t, u64, &'static [u8]>,
    pub inbox_ready: Table<'t, (u64, u64), ()>,
    pub meta: Table<'t, &'static str, u64>,
}

impl IngestTables<'_> {
    /// Increments and returns a counter (as [`super::tables::next_counter`], on the open META).
    pub fn next_counter(&mut self, name: &str) -> Result<u64, StoreError> {
        let next = self.meta.get(name)?.map_or(0, |v| v.value()) + 1;
        self.meta.insert(name, next)?;
        Ok(next)
    }
}

/// One transaction's [`IngestTables`], opened on first use and closed before any job that
/// opens tables itself.
pub(super) struct SharedTables<'t> {
    txn: &'t WriteTransaction,
    open: Option<IngestTables<'t>>,
}

impl<'t> SharedTables<'t> {
    pub(super) fn new(txn: &'t WriteTransaction) -> Self {
        Self { txn, open: None }
    }

    /// The transaction, for code that opens its own tables: call [`Self::close`] first.
    pub(super) fn txn(&self) -> &'t WriteTransaction {
        self.txn
    }

    /// The webhook path's tables, opened if they are not.
    pub(super) fn tables(&mut self) -> Result<&mut IngestTables<'t>, StoreError> {
        if self.open.is_none() {
            let txn = self.txn;
            self.open = Some(IngestTables {
                dedupe: txn.open_table(DEDUPE)?,
                dedupe_expiry: txn.open_table(DEDUPE_EXPIRY)?,
                conversations: txn.open_table(CONVERSATIONS)?,
                session_activity: txn.open_table(SESSION_ACTIVITY)?,
                history: txn.open_table(HISTORY)?,
                inbox: txn.open_table(INBOX)?,
                inbox_ready: txn.open_table(INBOX_READY)?,
                meta: txn.open_table(META)?,
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Closes the shared tables, so that code using `txn()` may open any table.
    pub(super) fn close(&mut self) {
        self.open = None;
    }
}
