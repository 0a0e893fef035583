//! What operations need from the store: an online backup (a consistent snapshot copied into a
//! new redb file while the daemon keeps running), a summary of a backup file, a census of the
//! outbox for `/metrics`, a writer round trip for the watchdog, and resource-lease lookups for
//! `/readyz`.


/// What a backup file holds (and what a backup copied).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackupSummary {
    /// Rows per table, by table name.
    pub tables: std::collections::BTreeMap<String, u64>,
    pub bytes: u64,
}

/// Live outbox rows by status and the oldest due message, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCensus {
    pub queued: u64,
    pub sending: u64,
    pub retrying: u64,
    /// Due time of the message that has waited longest past its due time (`None`: nothing due).
    pub oldest_due_ms: Option<u64>,
    /// Every outbox row, finished ones included.
    pub stored: u64,
}
