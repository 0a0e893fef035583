//! The shared backend: the store in PostgreSQL, so several daemons pointed at one database
//! share the work with the same guarantees as one daemon on a redb file. PostgreSQL does the
//! distributed part:
//!
//! - claims take rows with `FOR UPDATE SKIP LOCKED` (two daemons never claim the same row, and
//!   never wait on each other's claims);
//! - dedupe and idempotency are unique keys written with `INSERT ... ON CONFLICT`, so a
//!   webhook retried against another node is stored once;
//! - every lease carries a fencing token from one `SEQUENCE`, and every guarded write checks
//!   it in its own `WHERE` clause;
//! - time comes from the injected clock, never `now()` in SQL, so fake-clock tests (and
//!   daemons with slightly different clocks) behave the same.
//!
//! Webhook ingests and outbound enqueues are group-committed like redb's ([`batch`]); every
//! other operation is one short transaction on a pooled connection.

mod backend;
mod batch;
mod dlq;
mod history;
mod import;
mod inbox;
mod ingest;
mod kv;
mod leases;
mod ops;
mod outbox;
mod push;
mod schema;
mod tls;
mod tools;

use crate::clock::SharedClock;
use crate::store::{CommitObserver, StoreError, StoreOptions};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::path::Path;
use std::sync::Arc;
use tls::Connector;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

/// `application_name` prefix of every connection a daemon opens.
pub(crate) const APP_PREFIX: &str = "switchboard:";

pub(crate) type Tx<'a> = deadpool_postgres::Transaction<'a>;
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub struct PgStore {
    pool: Pool,
    /// This daemon's name among those sharing the database: every connection of the pool
    /// carries `switchboard:<instance>` as its `application_name`, so the others can tell
    /// whether it is still alive (see `fail_interrupted_calls`).
    instance: String,
    /// For the one-off connection `close` checks with.
    config: tokio_postgres::Config,
    connector: Connector,
    clock: SharedClock,
    opts: Arc<StoreOptions>,
    batch: batch::Batcher,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // tokio-postgres errors never carry the connection password.
        StoreError::Postgres(match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        })
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            deadpool_postgres::PoolError::Closed => StoreError::Closed,
            other => StoreError::Postgres(other.to_string()),
        }
    }
}

/// Columns are `bigint`; ids, tokens and times are `u64` in Rust and far below `i64::MAX`.
pub(crate) fn i(v: u64) -> i64 {
    v as i64
}

pub(crate) fn u(v: i64) -> u64 {
    v.max(0) as u64
}

/// A serde enum (`snake_case` unit variant) as the text stored in its column.
pub(crate) fn enum_text<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("unit enum variants serialize to strings"),
    }
}

pub(crate) fn text_enum<T: serde::de::DeserializeOwned>(table: &'static str, s: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| StoreError::Codec { table, reason: e.to_string() })
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(table: &'static str, v: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Codec { table, reason: e.to_string() })
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("row types serialize infallibly")
}

/// Runs `sql` as a cached prepared statement inside `tx`.
pub(crate) async fn query(tx: &Tx<'_>, sql: &str, params: Params<'_>) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query(&st, params).await?)
}

pub(crate) async fn query_opt(tx: &Tx<'_>, sql: &str, params: Params<'_>) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query_opt(&st, params).await?)
}

pub(crate) async fn execute(tx: &Tx<'_>, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&st, params).await?)
}

/// The next fencing token (shared by every kind of lease, so tokens grow across all of them).
pub(crate) async fn next_token(tx: &Tx<'_>) -> Result<u64, StoreError> {
    let row = query_opt(tx, "SELECT nextval('fence_seq')", &[]).await?.expect("nextval returns a row");
    Ok(u(row.get(0)))
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or a key=value string), with up to `pool_size`
    /// connections, and migrates the schema. With `sslmode=require` in `url` the connections
    /// use TLS, verified against the Mozilla roots and `ca_file` (see [`tls`]).
    pub async fn connect(url: &str, pool_size: usize, ca_file: Option<&Path>, clock: SharedClock, opts: StoreOptions) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| StoreError::Postgres(format!("invalid connection string: {e}")))?;
        let connector = Connector::for_config(&config, ca_file)?;
        Self::connect_with(config, connector, pool_size, clock, opts).await
    }

    /// [`Self::connect`] with a parsed config (tests set options on it).
    #[cfg(test)]
    pub(crate) async fn connect_config(
        config: tokio_postgres::Config,
        ca_file: Option<&Path>,
        pool_size: usize,
        clock: SharedClock,
        opts: StoreOptions,
    ) -> Result<Self, StoreError> {
        let connector = Connector::for_config(&config, ca_file)?;
        Self::connect_with(config, connector, pool_size, clock, opts).await
    }

    async fn connect_with(
        mut config: tokio_postgres::Config,
        connector: Connector,
        pool_size: usize,
        clock: SharedClock,
        opts: StoreOptions,
    ) -> Result<Self, StoreError> {
        let instance = uuid::Uuid::now_v7().simple().to_string();
        config.application_name(format!("{APP_PREFIX}{instance}"));
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &connector {
            Connector::Plain => Manager::from_config(config.clone(), NoTls, manager_config),
            Connector::Tls(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .build()
            .map_err(|e| StoreError::Postgres(e.to_string()))?;
        {
            let mut c = pool.get().await?;
            schema::migrate(&mut c).await?;
        }
        let batch = batch::Batcher::start(pool.clone(), opts.max_batch);
        Ok(Self { pool, instance, config, connector, clock, opts: Arc::new(opts), batch })
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A pooled connection; open a transaction on it with `c.transaction()`. If the caller
    /// goes away mid-way, dropping the transaction rolls it back.
    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    pub fn commit_stats(&self) -> (u64, u64) {
        self.batch.stats()
    }

    pub fn on_commit(&self, f: CommitObserver) {
        self.batch.on_commit(f);
    }

    /// Commits what was submitted, closes the pool, and returns once the server has seen every
    /// session of this daemon end (so a daemon started next knows this one is gone).
    pub async fn close(&self) {
        self.batch.close().await;
        self.pool.close();
        // Bounded: a database that went away must not hold up a shutdown.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), self.await_sessions_gone()).await;
    }

    /// Waits until the server lists no session of this daemon.
    async fn await_sessions_gone(&self) {
        // The checking connection must not carry the daemon's name: its own end is not
        // synchronous with our drop, and a daemon starting right after would still see it.
        let mut config = self.config.clone();
        config.application_name("switchboard-closing");
        let client = match &self.connector {
            Connector::Plain => config.connect(NoTls).await.map(|(client, conn)| (client, tokio::spawn(conn))),
            Connector::Tls(tls) => config.connect(tls.clone()).await.map(|(client, conn)| (client, tokio::spawn(conn))),
        };
        let Ok((client, task)) = client else { return };
        let me = format!("{APP_PREFIX}{}", self.instance);
        for _ in 0..400 {
            match client.query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", &[&me]).await {
                Ok(r) if r.get::<_, i64>(0) == 0 => break,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                Err(_) => break,
            }
        }
        drop(client);
        let _ = task.await;
    }
}
