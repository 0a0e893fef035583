use std::sync::Arc;

/// Failures of the storage layer itself. Domain outcomes (duplicate, lease mismatch) are
/// values, not errors, so one caller's outcome never aborts the other requests sharing its
/// transaction.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Storage(Arc<redb::Error>),
    #[error("corrupt row in {table}: {reason}")]
    Codec { table: &'static str, reason: String },
    #[error("store i/o: {0}")]
    Io(String),
    #[error("the store is closed")]
    Closed,
    /// PostgreSQL (connection, query, or pool) failure. The message never holds the password.
    #[error("postgres: {0}")]
    Postgres(String),
    /// The operation exists for one engine only (e.g. the online backup of a redb file).
    #[error("{op} is not supported by the {backend} store: {hint}")]
    Unsupported { op: &'static str, backend: &'static str, hint: &'static str },
    /// The database is being reopened after an I/O error (e.g. a full disk); nothing was
    /// written. Retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// PostgreSQL aborted the transaction to break a deadlock or a serialization conflict with
    /// another daemon's (SQLSTATE 40P01 / 40001, kept at the end of the message): running the
    /// same work again in a fresh transaction is safe and expected to succeed.
    pub fn is_retryable_conflict(&self) -> bool {
        matches!(self, StoreError::Postgres(m) if m.ends_with("(40P01)") || m.ends_with("(40001)"))
    }

    /// An I/O failure of the file underneath (disk full, EIO). redb refuses every later
    /// operation on that handle (`PreviousIo`) until the database is reopened.
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Storage(e) if matches!(**e, redb::Error::Io(_) | redb::Error::PreviousIo))
            || matches!(self, StoreError::Io(_))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(Arc::new(e.into()))
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
