//! A fresh PostgreSQL schema for a test that runs daemons on the shared store: created in the
//! database named by `SWITCHBOARD_TEST_PG_URL` (`.ci/run` starts a throwaway cluster and sets
//! it), given to each daemon as its connection's `search_path`, dropped at the end.

pub const PG_URL_VAR: &str = "SWITCHBOARD_TEST_PG_URL";

pub struct PgSchema {
    url: String,
    pub schema: String,
}

async fn admin(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to SWITCHBOARD_TEST_PG_URL");
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.expect("admin statement");
    drop(client);
    let _ = task.await;
}

impl PgSchema {
    /// `None` (with a note on stderr) when no test database is configured: the caller skips.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(url) = std::env::var(PG_URL_VAR) else {
            eprintln!("skipped {test}: {PG_URL_VAR} is not set (`.ci/run` sets it)");
            return None;
        };
        let schema = format!("sb_it_{}", std::process::id()) + &format!("_{}", rand_suffix());
        admin(&url, &format!("CREATE SCHEMA {schema}")).await;
        Some(Self { url, schema })
    }

    /// The connection URL a daemon uses: the test database with this schema first on its path.
    pub fn daemon_url(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.url, self.schema)
    }

    /// `store = { kind = "postgres", ... }` for a config file.
    pub fn store_toml(&self) -> String {
        format!("store = {{ kind = \"postgres\", url = \"{}\", pool_size = 8 }}\n", self.daemon_url())
    }
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{nanos}_{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, sql) = (self.url.clone(), format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(admin(&url, &sql));
        })
        .join();
    }
}
