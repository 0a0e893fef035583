//! Test support for the conformance suite: a store under test is a redb file in a temp dir, or
//! a fresh PostgreSQL schema (`sb_test_<random>`, set as the connection's `search_path`, dropped
//! at the end) in the database named by `SWITCHBOARD_TEST_PG_URL`, so tests run in parallel
//! without seeing each other. Without the variable the PostgreSQL half is skipped, not failed.

use super::postgres::PgStore;
use super::{Store, StoreOptions};
use crate::clock::ManualClock;
use std::sync::Arc;

pub(crate) const PG_URL_VAR: &str = "SWITCHBOARD_TEST_PG_URL";

pub(crate) enum TestStore {
    Redb { dir: tempfile::TempDir },
    Postgres { url: String, schema: String },
}

/// Runs `sql` on a one-off connection to `url`.
async fn admin(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to SWITCHBOARD_TEST_PG_URL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect("admin statement");
    drop(client);
    let _ = task.await;
}

impl TestStore {
    pub(crate) fn redb() -> Self {
        TestStore::Redb { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// A fresh schema, or `None` (with a note on stderr) when no test database is configured.
    pub(crate) async fn postgres() -> Option<Self> {
        let Ok(url) = std::env::var(PG_URL_VAR) else {
            eprintln!("skipped the PostgreSQL half: {PG_URL_VAR} is not set");
            return None;
        };
        let schema = format!("sb_test_{}", uuid::Uuid::now_v7().simple());
        admin(&url, &format!("CREATE SCHEMA {schema}")).await;
        Some(TestStore::Postgres { url, schema })
    }

    pub(crate) fn engine(&self) -> &'static str {
        match self {
            TestStore::Redb { .. } => "redb",
            TestStore::Postgres { .. } => "postgres",
        }
    }

    /// Opens the store (again, after a `close`: the same file or schema).
    pub(crate) async fn open_with(&self, clock: &ManualClock, opts: StoreOptions) -> Store {
        let clock: crate::clock::SharedClock = Arc::new(clock.clone());
        match self {
            TestStore::Redb { dir } => Store::open(&dir.path().join("s.redb"), clock, opts).expect("open redb"),
            TestStore::Postgres { url, schema } => {
                let mut config: tokio_postgres::Config = url.parse().expect("valid SWITCHBOARD_TEST_PG_URL");
                config.options(format!("-c search_path={schema}"));
                let pg = PgStore::connect_config(config, None, 4, clock.clone(), opts).await.expect("connect postgres");
                Store::from_backend(Arc::new(pg), clock)
            }
        }
    }

    pub(crate) async fn open(&self, clock: &ManualClock) -> Store {
        self.open_with(clock, StoreOptions::default()).await
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let TestStore::Postgres { url, schema } = self {
            // A test that panicked inside a transaction leaves its row locks held by a
            // connection of the test's runtime, which waits here: without a lock timeout the
            // drop would wait for them forever (a hang instead of the test's failure). The
            // schema is then left behind in the throwaway cluster.
            let (url, sql) = (url.clone(), format!("SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE"));
            // Drop runs inside the test's runtime: do the async clean-up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                rt.block_on(admin(&url, &sql));
            })
            .join();
        }
    }
}

/// Defines each test once and runs it against every available engine:
/// `mod <name> { fn redb(); fn postgres(); }`.
macro_rules! conformance {
    ($(async fn $name:ident($db:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($db: &$crate::store::testing::TestStore) $body

            #[tokio::test]
            async fn redb() {
                run(&$crate::store::testing::TestStore::redb()).await
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = $crate::store::testing::TestStore::postgres().await {
                    run(&db).await
                }
            }
        }
    )*};
}
pub(crate) use conformance;
