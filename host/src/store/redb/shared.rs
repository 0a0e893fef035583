//! Tables the webhook, enqueue and delivery-outcome paths use, opened once per group-committed transaction
//! instead of once per use.
//!
//! Opening a redb table (and closing it, which stages its root) costs about as much as a small
//! insert; a webhook used to open and close ~14 of them, ~17 % of the writer's time under
//! ingest load, and an enqueue ~20 (~40 % of the writer under dispatch load). The writer hands
//! every job of a batch one [`SharedTables`]: consecutive ingests, enqueues and outcomes reuse the open
//! handles, and any other job first closes them (redb refuses to open a table twice in one
//! transaction), so a batch that mixes kinds is correct and only the runs of these share.

use super::tables::{
    CONV_QUEUE, CONVERSATIONS, IDEMPOTENCY, IDEMPOTENCY_EXPIRY, META, OUTBOX, OUTBOX_BY_PROVIDER,
    OUTBOX_DUE, SESSION_ACTIVITY,
};
use crate::store::StoreError;
use crate::store::inbox_log::InboxLog;
use redb::{ReadableTable, Table, WriteTransaction};

/// The open tables of the webhook, enqueue and delivery-outcome paths.
pub(super) struct HotTables<'t> {
    pub conversations: Table<'t, &'static str, &'static [u8]>,
    pub session_activity: Table<'t, (&'static str, u64, &'static str), ()>,
    pub meta: Table<'t, &'static str, u64>,
    pub outbox: Table<'t, &'static str, &'static [u8]>,
    pub outbox_due: Table<'t, (u8, u64, &'static str), ()>,
    pub outbox_by_provider: Table<'t, &'static str, &'static str>,
    pub conv_queue: Table<'t, (&'static str, u64), &'static str>,
    pub idempotency: Table<'t, &'static str, &'static [u8]>,
    pub idempotency_expiry: Table<'t, (u64, &'static str), ()>,
    /// META counters changed since the tables opened, written back when they close.
    counters: Vec<(String, u64)>,
}

/// The counters are kept here while the tables are open and written to META once, when they
/// close ([`SharedTables::close`]): a webhook takes two sequence numbers (inbox id, history
/// entry), and a META read and write for each was a tenth of the writer's time per webhook.
/// Nothing else can see META meanwhile (redb opens a table once per transaction, and these
/// tables hold it), so the values are exact.
impl HotTables<'_> {
    /// Increments and returns a counter (as [`super::tables::next_counter`], on the open META).
    pub fn next_counter(&mut self, name: &str) -> Result<u64, StoreError> {
        self.add_counter(name, 1)
    }

    /// As [`super::tables::add_counter`], on the open META.
    pub fn add_counter(&mut self, name: &str, delta: i64) -> Result<u64, StoreError> {
        let next = (self.read_counter(name)? as i64 + delta).max(0) as u64;
        match self.counters.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = next,
            None => self.counters.push((name.to_string(), next)),
        }
        Ok(next)
    }

    /// A counter's value (0 before its first write).
    pub fn read_counter(&self, name: &str) -> Result<u64, StoreError> {
        if let Some((_, v)) = self.counters.iter().find(|(n, _)| n == name) {
            return Ok(*v);
        }
        Ok(self.meta.get(name)?.map_or(0, |v| v.value()))
    }

    /// Writes the changed counters to META.
    fn flush(&mut self) -> Result<(), StoreError> {
        for (name, value) in self.counters.drain(..) {
            self.meta.insert(name.as_str(), value)?;
        }
        Ok(())
    }
}

/// One transaction's [`HotTables`], opened on first use and closed before any job that
/// opens tables itself; and the pull inbox, which lives in a log beside the database
/// ([`InboxLog`]) and commits with this transaction.
pub(super) struct SharedTables<'t> {
    txn: &'t WriteTransaction,
    open: Option<HotTables<'t>>,
    inbox: &'t mut InboxLog,
}

impl<'t> SharedTables<'t> {
    pub(super) fn new(txn: &'t WriteTransaction, inbox: &'t mut InboxLog) -> Self {
        Self { txn, open: None, inbox }
    }

    /// The pull inbox (its frames are appended and synced just before this transaction
    /// commits, which records where they end).
    pub(super) fn inbox(&mut self) -> &mut InboxLog {
        self.inbox
    }

    /// The inbox and the open tables together (a claim takes its fencing token from META).
    pub(super) fn inbox_and_tables(&mut self) -> Result<(&mut InboxLog, &mut HotTables<'t>), StoreError> {
        self.tables()?;
        Ok((self.inbox, self.open.as_mut().expect("opened above")))
    }

    /// The transaction, for code that opens its own tables: call [`Self::close`] first.
    pub(super) fn txn(&self) -> &'t WriteTransaction {
        self.txn
    }

    /// The webhook and enqueue paths' tables, opened if they are not.
    pub(super) fn tables(&mut self) -> Result<&mut HotTables<'t>, StoreError> {
        if self.open.is_none() {
            let txn = self.txn;
            self.open = Some(HotTables {
                conversations: txn.open_table(CONVERSATIONS)?,
                session_activity: txn.open_table(SESSION_ACTIVITY)?,
                meta: txn.open_table(META)?,
                outbox: txn.open_table(OUTBOX)?,
                outbox_due: txn.open_table(OUTBOX_DUE)?,
                outbox_by_provider: txn.open_table(OUTBOX_BY_PROVIDER)?,
                conv_queue: txn.open_table(CONV_QUEUE)?,
                idempotency: txn.open_table(IDEMPOTENCY)?,
                idempotency_expiry: txn.open_table(IDEMPOTENCY_EXPIRY)?,
                counters: Vec::new(),
            });
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Closes the shared tables (writing back their counters), so that code using `txn()` may
    /// open any table. The writer calls it before it commits: tables dropped without it lose
    /// their counters, which only a failed (rolled back) batch may do.
    pub(super) fn close(&mut self) -> Result<(), StoreError> {
        if let Some(mut t) = self.open.take() {
            t.flush()?;
        }
        Ok(())
    }
}
