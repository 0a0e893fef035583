//! `store = { kind = "redb", path = "...", cache_mib = 16 }` (the default) or
//! `store = { kind = "postgres", url = "env:DATABASE_URL", pool_size = 16, ca_file = "..." }`
//! (`ca_file`: extra trusted roots, PEM, for a URL with `sslmode=require`).
//!
//! The PostgreSQL URL is a [`SecretRef`] like any other secret: it usually carries a password,
//! so it is read from the environment or a file at start and never printed.

use super::walk::Walker;
use super::{SecretError, SecretRef};
use crate::store::StoreLocation;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreConfig {
    /// One embedded redb file; `None`: `data_dir/switchboard.redb`.
    #[default]
    RedbDefault,
    Redb { path: PathBuf },
    Postgres { url: SecretRef, pool_size: usize, ca_file: Option<PathBuf> },
}

const REDB_KEYS: &[&str] = &["kind", "path", "cache_mib"];
const PG_KEYS: &[&str] = &["kind", "url", "pool_size", "ca_file"];
pub(super) const DEFAULT_POOL_SIZE: usize = 16;

/// `store.cache_mib`: redb's page cache in MiB (a redb store's only tunable; PostgreSQL caches
/// on its server). The default is [`crate::store::DEFAULT_CACHE_BYTES`].
pub(super) fn cache_mib(w: &mut Walker, t: &toml::Table) -> Option<u64> {
    let st = t.get("store")?.as_table()?;
    if st.get("kind").and_then(toml::Value::as_str).is_some_and(|k| k != "redb") {
        return None; // an unknown key there: `parse` reports it
    }
    w.int(st, "store", "cache_mib", 1, 1 << 20)
}

pub(super) fn parse(w: &mut Walker, t: &toml::Table) -> StoreConfig {
    let Some(st) = w.table(t, "", "store") else { return StoreConfig::default() };
    let p = "store";
    // Without `kind` the table describes a redb file.
    let kind = if st.contains_key("kind") { w.string(st, p, "kind") } else { Some("redb".to_string()) };
    match kind.as_deref() {
        Some("redb") => {
            w.unknown_keys(p, st, REDB_KEYS);
            match w.string(st, p, "path") {
                Some(path) if path.is_empty() => {
                    w.issue("store.path", "is empty; leave it out for data_dir/switchboard.redb");
                    StoreConfig::default()
                }
                Some(path) => StoreConfig::Redb { path: PathBuf::from(path) },
                None => StoreConfig::RedbDefault,
            }
        }
        Some("postgres") => {
            w.unknown_keys(p, st, PG_KEYS);
            let url = match w.string(st, p, "url") {
                Some(raw) => w.secret_ref("store.url", &raw),
                None => {
                    if !st.contains_key("url") {
                        w.issue("store.url", "missing; e.g. url = \"env:DATABASE_URL\" holding postgres://user:pass@host/db");
                    }
                    None
                }
            };
            let pool_size = w.int(st, p, "pool_size", 1, 1_000).map_or(DEFAULT_POOL_SIZE, |v| v as usize);
            let ca_file = match w.string(st, p, "ca_file") {
                Some(path) if path.is_empty() => {
                    w.issue("store.ca_file", "is empty; leave it out to trust only the public roots");
                    None
                }
                path => path.map(PathBuf::from),
            };
            url.map_or(StoreConfig::default(), |url| StoreConfig::Postgres { url, pool_size, ca_file })
        }
        Some(other) => {
            w.issue("store.kind", format!("unknown store kind `{other}`; use \"redb\" or \"postgres\""));
            StoreConfig::default()
        }
        None => StoreConfig::default(), // a non-string kind: the walker filed it
    }
}

impl StoreConfig {
    /// Relative redb paths in a config file are relative to the file.
    pub(super) fn rebase(&mut self, base: &Path) {
        match self {
            StoreConfig::Redb { path } | StoreConfig::Postgres { ca_file: Some(path), .. } => *path = base.join(&*path),
            _ => {}
        }
    }

    /// Where the store lives, with the PostgreSQL URL read from its secret now.
    pub fn location(&self, data_dir: &Path) -> Result<StoreLocation, SecretError> {
        Ok(match self {
            StoreConfig::RedbDefault => StoreLocation::Redb { path: data_dir.join("switchboard.redb") },
            StoreConfig::Redb { path } => StoreLocation::Redb { path: path.clone() },
            StoreConfig::Postgres { url, pool_size, ca_file } => StoreLocation::Postgres {
                url: url.resolve()?.expose().to_string(),
                pool_size: *pool_size,
                ca_file: ca_file.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    fn store_of(text: &str) -> Result<StoreConfig, ConfigError> {
        Config::parse(text, "t").map(|c| c.store)
    }

    #[test]
    fn redb_is_the_default_and_postgres_takes_a_secret_url() {
        assert_eq!(store_of("").unwrap(), StoreConfig::RedbDefault);
        assert_eq!(store_of("store = { kind = \"redb\" }").unwrap(), StoreConfig::RedbDefault);
        assert_eq!(store_of("store = { kind = \"redb\", path = \"/x/s.redb\" }").unwrap(), StoreConfig::Redb { path: "/x/s.redb".into() });
        let pg = store_of("store = { kind = \"postgres\", url = \"env:DATABASE_URL\", pool_size = 4 }").unwrap();
        assert_eq!(pg, StoreConfig::Postgres { url: SecretRef::Env("DATABASE_URL".into()), pool_size: 4, ca_file: None });
        let tls = store_of("store = { kind = \"postgres\", url = \"env:DATABASE_URL\", ca_file = \"/etc/pg-ca.pem\" }").unwrap();
        assert!(matches!(tls, StoreConfig::Postgres { ca_file: Some(p), .. } if p == Path::new("/etc/pg-ca.pem")));
        let sized = Config::parse("store = { path = \"/x/s.redb\", cache_mib = 8 }", "t").unwrap();
        assert_eq!((sized.store, sized.store_cache_bytes), (StoreConfig::Redb { path: "/x/s.redb".into() }, 8 << 20));
        assert_eq!(Config::default().store_cache_bytes, crate::store::DEFAULT_CACHE_BYTES);
        let loc = Config::default().store.location(Path::new("/d")).unwrap();
        assert_eq!(loc, StoreLocation::Redb { path: "/d/switchboard.redb".into() });
    }

    #[test]
    fn every_store_mistake_is_reported() {
        let Err(ConfigError::Invalid(issues)) = store_of("store = { kind = \"postgres\", pool_size = 0, user = \"x\" }") else { panic!() };
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["store.user", "store.url", "store.pool_size"], "{issues:?}");
        let Err(ConfigError::Invalid(issues)) = store_of("store = { kind = \"mysql\" }") else { panic!() };
        assert!(issues[0].message.contains("\"postgres\""), "{issues:?}");
        // The page cache is redb's: PostgreSQL caches on its server.
        let Err(ConfigError::Invalid(issues)) = store_of("store = { kind = \"postgres\", url = \"env:U\", cache_mib = 8 }") else { panic!() };
        assert_eq!(issues[0].path, "store.cache_mib", "{issues:?}");
        let Err(ConfigError::Invalid(issues)) = store_of("store = { cache_mib = 0 }") else { panic!() };
        assert_eq!(issues[0].path, "store.cache_mib", "{issues:?}");
    }

    #[test]
    fn a_password_in_the_url_never_reaches_debug_output() {
        let loc = StoreLocation::Postgres { url: "postgres://sb:hunter2@db/sb".into(), pool_size: 2, ca_file: None };
        let shown = format!("{loc:?}");
        assert!(!shown.contains("hunter2") && shown.contains("***"), "{shown}");
    }
}
