//! TLS to the database server. A connection string with `sslmode=require` gets TLS with the
//! server's certificate verified (chain and host name, as libpq's `verify-full`) against the
//! Mozilla roots plus the operator's `ca_file`; without it (`prefer`, the default, or
//! `disable`) the connection is plain TCP, as before this existed.
//!
//! Verified rather than libpq's unverified `require`: a daemon's database connection carries
//! every message and secret-bearing row, and "encrypted to whoever answers" protects none of it.

use crate::store::StoreError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How a daemon reaches its database.
#[derive(Clone)]
pub(crate) enum Connector {
    Plain,
    Tls(MakeRustlsConnect),
}

impl Connector {
    /// The connector `config` asks for; `ca_file` (PEM) adds trusted roots, e.g. a managed
    /// database's own CA.
    pub(crate) fn for_config(config: &tokio_postgres::Config, ca_file: Option<&Path>) -> Result<Self, StoreError> {
        if config.get_ssl_mode() != SslMode::Require {
            return Ok(Connector::Plain);
        }
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = ca_file {
            let bad = |why: String| StoreError::Postgres(format!("store.ca_file {}: {why}", path.display()));
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?.collect::<Result<_, _>>().map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Postgres(format!("tls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Connector::Tls(MakeRustlsConnect::new(tls)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> tokio_postgres::Config {
        url.parse().unwrap()
    }

    #[test]
    fn tls_only_when_the_url_requires_it() {
        assert!(matches!(Connector::for_config(&config("postgres://u@h/db"), None), Ok(Connector::Plain)));
        assert!(matches!(Connector::for_config(&config("postgres://u@h/db?sslmode=disable"), None), Ok(Connector::Plain)));
        assert!(matches!(Connector::for_config(&config("postgres://u@h/db?sslmode=require"), None), Ok(Connector::Tls(_))));
    }

    /// With TLS on the test cluster (`.ci/run` turns it on and names its CA in
    /// `SWITCHBOARD_TEST_PG_TLS_CA`): `sslmode=require` with the CA stores over TLS; without
    /// the CA the server's certificate is refused.
    #[tokio::test]
    async fn require_stores_over_verified_tls() {
        let Ok(ca) = std::env::var("SWITCHBOARD_TEST_PG_TLS_CA") else {
            eprintln!("skipped: SWITCHBOARD_TEST_PG_TLS_CA is not set");
            return;
        };
        let Some(db) = crate::store::testing::TestStore::postgres().await else { return };
        let crate::store::testing::TestStore::Postgres { url, schema } = &db else { unreachable!() };
        let mut config = config(url);
        config.ssl_mode(SslMode::Require).options(format!("-c search_path={schema}"));
        let ca = Path::new(&ca);

        let Connector::Tls(tls) = Connector::for_config(&config, Some(ca)).unwrap() else { panic!("tls") };
        let (client, conn) = config.connect(tls).await.unwrap();
        let task = tokio::spawn(conn);
        let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
        assert!(row.get::<_, bool>(0), "the session is encrypted");
        drop(client);
        let _ = task.await;

        let clock = crate::clock::ManualClock::new(0);
        let pg = super::super::PgStore::connect_config(config.clone(), Some(ca), 2, Arc::new(clock.clone()), Default::default()).await.unwrap();
        assert_eq!(pg.queued_count("a").await.unwrap(), 0, "a round trip through the pool");
        pg.close().await;

        let Connector::Tls(tls) = Connector::for_config(&config, None).unwrap() else { panic!("tls") };
        let refused = config.connect(tls).await.err().expect("a certificate from an unknown CA is refused");
        assert!(format!("{refused:?}").contains("UnknownIssuer"), "{refused:?}");
    }

    #[test]
    fn a_bad_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let require = config("postgres://u@h/db?sslmode=require");
        let missing = dir.path().join("nope.pem");
        let Err(e) = Connector::for_config(&require, Some(&missing)) else { panic!("a missing file") };
        assert!(e.to_string().contains("store.ca_file"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let Err(e) = Connector::for_config(&require, Some(&empty)) else { panic!("no certificate") };
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
